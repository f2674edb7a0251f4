/**
 * Set-up of the HTTP/2 attack tests: a real etcd, a data plane in this process with the HTTP/2 limits a test file
 * asks for (YAML under `nginx_config`, parsed by shared/config.ts like conf/config.yaml), and a scripted fake
 * upstream (test/helpers/fake-upstream.ts) routed as `/helloworld.Greeter/*`, which counts every stream that
 * reaches it. The script answers SayHello with one message and OK, and holds SayHelloServerStream open after one
 * message until the test ends it (`longStreams`): the long-lived legitimate stream that an attack must not kill.
 * Legitimate traffic comes from real grpc-js clients (test/helpers/greeter.ts). close() releases everything.
 */
import { after, before } from 'node:test';
import { status as GrpcCode, type Client } from '@grpc/grpc-js';
import { startDataPlane, type DataPlane } from '../../data-plane/data-plane.ts';
import { parseConfig } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import { makeCert, type CertAndKey } from '../helpers/certs.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { greeterClient, sayHello } from '../helpers/greeter.ts';
import { startFakeUpstream, waitUntil, type FakeUpstream, type StreamControl } from '../helpers/fake-upstream.ts';
import { answerOk, SERVER_STREAM } from '../faults/fault-kit.ts';
import { putEtcdJson } from '../flow/child-gateway.ts';
import type { AttackTarget } from './h2-attack-client.ts';

export const ROUTE_ID = 'security';
const ROUTE_LIMIT_MS = 10_000;

export interface SecurityBench {
  readonly dataPlane: DataPlane;
  readonly upstream: FakeUpstream;
  readonly h2c: AttackTarget & { address: string };
  readonly tls: AttackTarget & { address: string };
  readonly defaultCert: CertAndKey;
  /** Server streams the upstream holds open, oldest first. */
  readonly longStreams: StreamControl[];
  /** A grpc-js client to the h2c listener (closed by close()). */
  client(): Client;
  /** `count` SayHello calls through a fresh client, `parallel` at a time; resolves with the non-OK statuses. */
  legitimateCalls(count: number, parallel?: number): Promise<number[]>;
  close(): Promise<void>;
}

/** Registers before/after hooks for one bench per test file; returns a getter. */
export function useSecurityBench(nginxConfigYaml = ''): () => SecurityBench {
  let bench: SecurityBench | undefined;
  before(async () => {
    bench = await startSecurityBench(nginxConfigYaml);
  });
  after(async () => bench?.close());
  return () => {
    if (bench === undefined) throw new Error('the bench is used before before() ran');
    return bench;
  };
}

export async function startSecurityBench(nginxConfigYaml: string): Promise<SecurityBench> {
  const etcd: EtcdProcess = await startEtcd();
  const clients: Client[] = [];
  let upstream: FakeUpstream | undefined;
  let dataPlane: DataPlane | undefined;
  try {
    upstream = await startFakeUpstream();
    const longStreams: StreamControl[] = [];
    upstream.onStream(async (_stream, headers, ctl) => {
      if (headers[':path'] !== SERVER_STREAM) return answerOk(ctl);
      await ctl.requestEnded();
      await ctl.writeMessage('first');
      longStreams.push(ctl);
    });
    const config = parseConfig(`
apisix:
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { listen: [{ ip: 127.0.0.1, port: 0 }] }
deployment:
  etcd: { host: ["${etcd.endpoint}"], prefix: /apisix, timeout: 5 }
nginx_config:
${nginxConfigYaml.replace(/^/gm, '  ')}
`);
    const defaultCert = await makeCert({ sans: ['localhost', '127.0.0.1'] });
    dataPlane = await startDataPlane({ config, log: silentLogger(), defaultCert });
    const plane = dataPlane;
    await putEtcdJson(etcd.endpoint, `/apisix/routes/${ROUTE_ID}`, {
      uri: '/helloworld.Greeter/*',
      upstream: { scheme: 'grpc', type: 'roundrobin', nodes: { [upstream.address]: 1 } },
    });
    await waitUntil(() => plane.snapshots.current().targets.has(ROUTE_ID), ROUTE_LIMIT_MS, () => 'the data plane did not apply the route');
    const portOf = (kind: 'h2c' | 'tls'): number => plane.addresses.find((a) => a.kind === kind)?.port ?? 0;
    const h2cPort = portOf('h2c');
    const tlsPort = portOf('tls');
    const fake = upstream;
    const bench: SecurityBench = {
      dataPlane: plane,
      upstream: fake,
      h2c: { host: '127.0.0.1', port: h2cPort, address: `127.0.0.1:${h2cPort}` },
      tls: { host: '127.0.0.1', port: tlsPort, address: `127.0.0.1:${tlsPort}`, tls: { ca: defaultCert.cert } },
      defaultCert,
      longStreams,
      client() {
        const client = greeterClient(bench.h2c.address);
        clients.push(client);
        return client;
      },
      async legitimateCalls(count, parallel = 4) {
        const client = bench.client();
        const failures: number[] = [];
        let next = 0;
        const worker = async (): Promise<void> => {
          while (next < count) {
            next++;
            const outcome = await sayHello(client, 'legitimate');
            if (outcome.status.code !== GrpcCode.OK) failures.push(outcome.status.code);
          }
        };
        await Promise.all(Array.from({ length: parallel }, worker));
        return failures;
      },
      async close() {
        for (const client of clients) client.close();
        await plane.close();
        await fake.close();
        await etcd.close();
      },
    };
    return bench;
  } catch (err) {
    await dataPlane?.close();
    await upstream?.close();
    await etcd.close();
    throw err;
  }
}
