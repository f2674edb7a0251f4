/**
 * The conformance matrix and the one fixture the whole file shares: a gateway (real etcd, admin API, data plane
 * with h2c and TLS listeners), a grpc-js TestService and a byte-level TestService per upstream scheme, and one
 * route per upstream made through the admin API. All routes are on `/grpc.testing.TestService/*` and told apart by
 * `hosts`, so a client picks its upstream with its `:authority` (grpc-js `grpc.default_authority`).
 *
 * TLS clients send SNI `localhost` and verify the gateway's default certificate (SANs localhost, 127.0.0.1), which
 * the gateway serves for any SNI no ssl object matches.
 */
import assert from 'node:assert/strict';
import type { Client } from '@grpc/grpc-js';
import { startGateway, type GatewayFixture } from '../e2e/gateway-fixture.ts';
import { interopClient } from '../helpers/interop-client.ts';
import { startInteropServer, type InteropServer } from '../helpers/interop-server.ts';
import { startWireServer, type WireServer } from '../helpers/interop-wire-server.ts';

export type Scheme = 'grpc' | 'grpcs';

export interface Combination {
  readonly name: string;
  readonly downstream: 'h2c' | 'TLS';
  readonly upstream: Scheme;
}

export const COMBINATIONS: readonly Combination[] = [
  { name: 'h2c→grpc', downstream: 'h2c', upstream: 'grpc' },
  { name: 'h2c→grpcs', downstream: 'h2c', upstream: 'grpcs' },
  { name: 'TLS→grpc', downstream: 'TLS', upstream: 'grpc' },
  { name: 'TLS→grpcs', downstream: 'TLS', upstream: 'grpcs' },
];

/** Which upstream a call goes to: the grpc-js TestService, or the byte-level one (interop-wire-server.ts). */
export type UpstreamKind = 'interop' | 'wire';

/** The route's `hosts` entry, and the clients' `:authority`, per upstream. */
export function authorityOf(kind: UpstreamKind, scheme: Scheme): string {
  return kind === 'interop' ? `${scheme}.test` : `wire-${scheme}.test`;
}

/** The name the gateway's default certificate is valid for (gateway-fixture.ts: SANs localhost, 127.0.0.1). */
const GATEWAY_CERT_NAME = 'localhost';

/** What a case gets: its combination's upstreams and clients. */
export interface Context {
  readonly combination: Combination;
  /** The gateway listener the combination's clients dial, `127.0.0.1:port`. */
  readonly address: string;
  /** How to verify the gateway for a TLS downstream; undefined for h2c. */
  readonly tls: { rootCert: string; servername: string } | undefined;
  readonly upstream: InteropServer;
  readonly wire: WireServer;
  /** The combination's shared client for this upstream (gzip: a channel that compresses every request). */
  client(kind: UpstreamKind, options?: { gzip?: boolean }): Client;
  /** A client with a connection of its own, closed with the fixture. */
  freshClient(kind: UpstreamKind): Client;
}

export interface ConformanceCase {
  /** The interop spec's name where there is one; the test title is `<name> via <combination>`. */
  readonly name: string;
  run(ctx: Context): Promise<void>;
}

export interface ConformanceFixture {
  contextFor(combination: Combination): Context;
  close(): Promise<void>;
}

export async function startConformanceFixture(): Promise<ConformanceFixture> {
  const gw: GatewayFixture = await startGateway();
  const upstreams = new Map<Scheme, InteropServer>();
  const wires = new Map<Scheme, WireServer>();
  const clients = new Map<string, Client>();
  const freshClients: Client[] = [];

  for (const scheme of ['grpc', 'grpcs'] as const) {
    const tls = scheme === 'grpcs';
    const upstream = await startInteropServer({ id: `interop-${scheme}`, tls });
    const wire = await startWireServer({ id: `wire-${scheme}`, tls });
    upstreams.set(scheme, upstream);
    wires.set(scheme, wire);
    await putRoute(gw, 'interop', scheme, upstream.address);
    await putRoute(gw, 'wire', scheme, wire.address);
  }

  return {
    contextFor(combination) {
      const upstream = upstreams.get(combination.upstream);
      const wire = wires.get(combination.upstream);
      if (upstream === undefined || wire === undefined) throw new Error(`no ${combination.upstream} upstreams`);
      const address = combination.downstream === 'h2c' ? gw.h2cAddress : gw.tlsAddress;
      const tls =
        combination.downstream === 'TLS' ? { rootCert: gw.defaultCert.cert, servername: GATEWAY_CERT_NAME } : undefined;
      const open = (kind: UpstreamKind, gzip: boolean): Client =>
        interopClient(address, {
          authority: authorityOf(kind, combination.upstream),
          gzip,
          ...(tls === undefined ? {} : { tls }),
        });
      return {
        combination,
        address,
        tls,
        upstream,
        wire,
        client(kind, options = {}) {
          const gzip = options.gzip === true;
          const key = `${combination.name}/${kind}/${String(gzip)}`;
          let client = clients.get(key);
          if (client === undefined) {
            client = open(kind, gzip);
            clients.set(key, client);
          }
          return client;
        },
        freshClient(kind) {
          const client = open(kind, false);
          freshClients.push(client);
          return client;
        },
      };
    },
    async close() {
      for (const client of [...clients.values(), ...freshClients]) client.close();
      await Promise.all([...upstreams.values(), ...wires.values()].map((server) => server.close()));
      await gw.close();
    },
  };
}

/** PUT through the admin API as a user would, then wait until the data plane serves it. */
async function putRoute(gw: GatewayFixture, kind: UpstreamKind, scheme: Scheme, node: string): Promise<void> {
  const id = `${kind}-${scheme}`;
  const res = await gw.admin('PUT', `/routes/${id}`, {
    uri: '/grpc.testing.TestService/*',
    hosts: [authorityOf(kind, scheme)],
    upstream: { scheme, type: 'roundrobin', nodes: { [node]: 1 } },
  });
  assert.ok(res.status === 201 || res.status === 200, JSON.stringify(res.body));
  const expected = JSON.stringify([`${scheme}://${node}`]);
  await gw.waitForSnapshot(() => JSON.stringify(gw.routeNodes(id)) === expected, `route ${id}`);
}
