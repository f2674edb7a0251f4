/**
 * A whole local gateway for end-to-end tests: a real etcd process, the control plane's admin API on a real port,
 * and a data plane with an h2c and a TLS listener, all on loopback port 0. Tests configure it the way a user does
 * (HTTP PUT to the admin API with the key, curl's form content type) and then wait, with a bounded poll, until the
 * data plane has applied the change. close() releases everything.
 */
import http2, { type ClientHttp2Session } from 'node:http2';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../control-plane/app.ts';
import { createEtcdStore } from '../../control-plane/store/etcd-store.ts';
import type { ResourceStore } from '../../control-plane/store/resource-store.ts';
import { startDataPlane, type DataPlane } from '../../data-plane/data-plane.ts';
import type { Snapshot } from '../../data-plane/config/snapshots.ts';
import { parseConfig, type GatewayConfig } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import { makeCert, type CertAndKey } from '../helpers/certs.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { DEFAULT_LIMIT_MS, within } from '../helpers/fake-upstream.ts';

export const ADMIN_KEY = 'e2e-admin-key-3b9d';
const WAIT_LIMIT_MS = 10_000;

export interface GatewayFixture {
  etcd: EtcdProcess;
  config: GatewayConfig;
  dataPlane: DataPlane;
  /** The certificate served to TLS clients without SNI (no fallback_sni configured). */
  defaultCert: CertAndKey;
  adminUrl: string;
  h2cAddress: string;
  tlsAddress: string;
  /** PUT/DELETE through the admin API as curl does; returns status and parsed body. */
  admin(method: 'PUT' | 'DELETE' | 'GET', path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  /** Resolves once the data plane's current snapshot satisfies the predicate (bounded by WAIT_LIMIT_MS). */
  waitForSnapshot(predicate: (snapshot: Snapshot) => boolean, what: string): Promise<void>;
  /** The upstream node keys route `id` resolves to in the current snapshot. */
  routeNodes(id: string): string[] | undefined;
  startAnotherDataPlane(overrides: Partial<Pick<GatewayConfig['ssl'], 'fallbackSni'>>): Promise<DataPlane>;
  close(): Promise<void>;
}

export async function startGateway(): Promise<GatewayFixture> {
  const etcd = await startEtcd();
  const log = silentLogger();
  const config = parseConfig(
    `
apisix:
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { listen: [{ ip: 127.0.0.1, port: 0 }] }
deployment:
  admin:
    admin_listen: { ip: 127.0.0.1, port: 0 }
    admin_key: [{ name: admin, key: ${ADMIN_KEY}, role: admin }]
  etcd: { host: ["${etcd.endpoint}"], prefix: /apisix, timeout: 5 }
`,
  );
  const store: ResourceStore = createEtcdStore({ ...config.etcd, hosts: config.etcd.hosts, log });
  const app: FastifyInstance = buildApp({ store, log, config });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const adminPort = address !== null && typeof address === 'object' ? address.port : 0;
  const defaultCert = await makeCert({ sans: ['localhost', '127.0.0.1'] });
  const extraPlanes: DataPlane[] = [];
  const dataPlane = await startDataPlane({ config, log, defaultCert });
  const addressOf = (plane: DataPlane, kind: 'h2c' | 'tls'): string => {
    const bound = plane.addresses.find((a) => a.kind === kind);
    if (bound === undefined) throw new Error(`no ${kind} listener`);
    return `127.0.0.1:${bound.port}`;
  };

  const adminUrl = `http://127.0.0.1:${adminPort}/apisix/admin`;
  return {
    etcd,
    config,
    dataPlane,
    defaultCert,
    adminUrl,
    h2cAddress: addressOf(dataPlane, 'h2c'),
    tlsAddress: addressOf(dataPlane, 'tls'),
    async admin(method, path, body) {
      const res = await fetch(`${adminUrl}${path}`, {
        method,
        headers: { 'X-API-KEY': ADMIN_KEY, 'content-type': 'application/x-www-form-urlencoded' },
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      });
      const text = await res.text();
      return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
    },
    async waitForSnapshot(predicate, what) {
      const deadline = Date.now() + WAIT_LIMIT_MS;
      while (!predicate(dataPlane.snapshots.current())) {
        if (Date.now() > deadline) throw new Error(`data plane did not apply: ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    routeNodes(id) {
      return dataPlane.snapshots.current().targets.get(id)?.upstream.nodes.map((n) => n.key);
    },
    async startAnotherDataPlane(overrides) {
      const plane = await startDataPlane({
        config: { ...config, ssl: { ...config.ssl, fallbackSni: overrides.fallbackSni } },
        log,
        defaultCert,
      });
      extraPlanes.push(plane);
      return plane;
    },
    async close() {
      for (const plane of extraPlanes) await plane.close();
      await dataPlane.close();
      await app.close();
      await store.close();
      await etcd.close();
    },
  };
}

/** PUTs route `id` through the admin API (200 or 201 asserted) and waits until the data plane has rebuilt it. */
export async function putRouteAndWait(gw: GatewayFixture, id: string, body: unknown): Promise<void> {
  const previous = gw.dataPlane.snapshots.current().targets.get(id);
  const res = await gw.admin('PUT', `/routes/${id}`, body);
  if (res.status !== 200 && res.status !== 201) throw new Error(`PUT /routes/${id}: ${String(res.status)} ${JSON.stringify(res.body)}`);
  await gw.waitForSnapshot((snapshot) => {
    const target = snapshot.targets.get(id);
    return target !== undefined && target !== previous;
  }, `route ${id} rebuilt`);
}

/** The seed document's route, pointed at the given nodes. */
export function seedRoute(nodes: Record<string, number>, scheme: 'grpc' | 'grpcs' = 'grpc'): unknown {
  return {
    methods: ['POST', 'GET'],
    uri: '/helloworld.Greeter/SayHello',
    upstream: { scheme, type: 'roundrobin', nodes },
  };
}

/** A connected raw HTTP/2 session to the gateway's h2c or TLS listener. */
export async function gatewaySession(gw: GatewayFixture, kind: 'h2c' | 'tls'): Promise<ClientHttp2Session> {
  const session =
    kind === 'h2c'
      ? http2.connect(`http://${gw.h2cAddress}`)
      : http2.connect(`https://${gw.tlsAddress}`, { ca: gw.defaultCert.cert, ALPNProtocols: ['h2'] });
  session.on('error', () => undefined); // failures surface on the streams
  await within(
    new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve());
      session.once('error', reject);
    }),
    DEFAULT_LIMIT_MS,
    `connect to the gateway's ${kind} listener`,
  );
  return session;
}
