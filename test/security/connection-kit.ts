/**
 * Set-up of the connection lifecycle tests (issue #11 case 7): a data plane started in-process in standalone mode
 * (config_provider: yaml, no etcd) with the connection limits a test names under `nginx_config`, one route to a
 * real Greeter, its warnings captured as parsed pino lines; and a raw dialer that opens a TCP or TLS connection
 * from a chosen loopback source address (127.0.0.2 and 127.0.0.3 are distinct clients on Linux loopback), writes
 * what an attacker writes, and tells whether and when the gateway closed it. Every wait is bounded.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { status as GrpcCode, type Client } from '@grpc/grpc-js';
import { startDataPlane, type DataPlane } from '../../data-plane/data-plane.ts';
import { parseConfig } from '../../shared/config.ts';
import type { Logger } from '../../shared/logger.ts';
import { makeCert, type CertAndKey } from '../helpers/certs.ts';
import { DEFAULT_LIMIT_MS, waitUntil } from '../helpers/fake-upstream.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';

export { DEFAULT_LIMIT_MS, waitUntil };

/** The HTTP/2 client connection preface (RFC 9113 §3.4). */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** An empty SETTINGS frame: 9-byte header, length 0, type 4, no flags, stream 0. */
export const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
/** How often waitReset() writes; a byte that is never read costs the gateway nothing. */
const WRITE_PROBE_MS = 100;
const PROBE_BYTE = Buffer.from([0]);
/** Per-test backstop for node:test, above every bounded wait inside a test. */
export const TEST_TIMEOUT_MS = 30_000;

export interface LogLine {
  msg: string;
  [field: string]: unknown;
}

export interface ConnectionGateway {
  readonly plane: DataPlane;
  readonly h2cPort: number;
  readonly tlsPort: number;
  readonly cert: CertAndKey;
  /** Warnings and errors the data plane logged, parsed. */
  readonly logs: readonly LogLine[];
  /** A grpc-js Greeter client to the h2c or TLS listener, closed by close(). */
  client(kind: 'h2c' | 'tls'): Client;
  close(): Promise<void>;
}

/** `nginxConfig`: the body of the `nginx_config` mapping, in YAML flow style (`{ http: { … } }`). */
export async function startConnectionGateway(nginxConfig: string): Promise<ConnectionGateway> {
  const dir = await mkdtemp(join(tmpdir(), 'connection-limits-'));
  const greeter: GreeterNode = await startGreeterNode({ id: 'g' });
  const file = join(dir, 'apisix.yaml');
  await writeFile(
    file,
    `routes:\n  - id: 1\n    uri: /helloworld.Greeter/*\n    upstream: { scheme: grpc, type: roundrobin, nodes: { "127.0.0.1:${greeter.port}": 1 } }\n#END\n`,
  );
  const config = parseConfig(`
apisix:
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { listen: [{ ip: 127.0.0.1, port: 0 }] }
nginx_config: ${nginxConfig}
deployment:
  role_data_plane: { config_provider: yaml, config_file: ${JSON.stringify(file)} }
  etcd: { host: ["http://127.0.0.1:9"] }
`);
  const { lines: logs, log } = captureLog();
  const cert = await makeCert({ sans: ['localhost', '127.0.0.1'] });
  const plane = await startDataPlane({ config, log, defaultCert: cert });
  const portOf = (kind: 'h2c' | 'tls'): number => {
    const bound = plane.addresses.find((a) => a.kind === kind);
    if (bound === undefined) throw new Error(`no ${kind} listener`);
    return bound.port;
  };
  const clients: Client[] = [];
  return {
    plane,
    h2cPort: portOf('h2c'),
    tlsPort: portOf('tls'),
    cert,
    logs,
    client(kind) {
      const client =
        kind === 'h2c'
          ? greeterClient(`127.0.0.1:${portOf('h2c')}`)
          : greeterClient(`127.0.0.1:${portOf('tls')}`, { tls: { rootCert: cert.cert } });
      clients.push(client);
      return client;
    },
    async close() {
      for (const client of clients) client.close();
      await plane.close();
      await greeter.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A Greeter call through the gateway, asserted to succeed: what a legitimate client beside an attack sees. */
export async function legitimateCallSucceeds(client: Client, name: string): Promise<void> {
  const result = await sayHello(client, name);
  assert.equal(result.status.code, GrpcCode.OK, `legitimate call beside the attack: ${result.status.details}`);
  assert.equal(result.message, `Hello ${name}`);
}

/** A pino logger at `warn` whose lines land, parsed, in `lines`. */
export function captureLog(): { lines: LogLine[]; log: Logger } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { lines, log: pino({ level: 'warn' }, sink) };
}

export interface RawDial {
  readonly socket: Socket;
  /** Bytes the gateway sent so far. */
  received(): Buffer;
  readonly closed: boolean;
  /** Resolves once the gateway closed the connection; rejects naming `what` after `limitMs`. */
  waitClosed(what: string, limitMs?: number): Promise<void>;
  /**
   * For a dial made with `read: false`, which sees no FIN: writes a byte every WRITE_PROBE_MS until a write fails,
   * which shows the gateway's socket is gone (a socket only half-closed by the gateway would take the bytes).
   */
  waitReset(what: string, limitMs?: number): Promise<void>;
  /** Resolves once the gateway sent at least one byte (its SETTINGS: the connection was admitted). */
  waitForBytes(what: string, limitMs?: number): Promise<void>;
  destroy(): void;
}

/** A plain TCP connection to `port` on 127.0.0.1 from `localAddress` (default 127.0.0.1), writing `first` if given. */
export async function dialRaw(port: number, options: { localAddress?: string; first?: Buffer; read?: boolean } = {}): Promise<RawDial> {
  const socket = netConnect({ host: '127.0.0.1', port, localAddress: options.localAddress ?? '127.0.0.1' });
  const chunks: Buffer[] = [];
  let closed = false;
  let failed = false;
  if (options.read !== false) socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => (failed = true)); // a reset by the gateway is one of the outcomes under test
  socket.on('close', () => (closed = true));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  if (options.first !== undefined) socket.write(options.first);
  return {
    socket,
    received: () => Buffer.concat(chunks),
    get closed() {
      return closed;
    },
    waitClosed: (what, limitMs = DEFAULT_LIMIT_MS) => waitUntil(() => closed, limitMs, () => `the gateway did not close ${what}`),
    async waitReset(what, limitMs = DEFAULT_LIMIT_MS) {
      const deadline = Date.now() + limitMs;
      while (!failed && !closed) {
        if (Date.now() > deadline) throw new Error(`no result within ${limitMs} ms: the gateway still holds ${what}`);
        socket.write(PROBE_BYTE);
        await new Promise((resolve) => setTimeout(resolve, WRITE_PROBE_MS));
      }
    },
    waitForBytes: (what, limitMs = DEFAULT_LIMIT_MS) =>
      waitUntil(() => chunks.length > 0 || closed, limitMs, () => `the gateway sent nothing on ${what}`).then(() => {
        if (chunks.length === 0) throw new Error(`the gateway closed ${what} without a byte`);
      }),
    destroy: () => socket.destroy(),
  };
}

/** Types of the HTTP/2 frames in `bytes` (RFC 9113 §4.1: 24-bit length, 8-bit type, …). */
export function frameTypes(bytes: Buffer): number[] {
  const types: number[] = [];
  for (let offset = 0; offset + 9 <= bytes.length; offset += 9 + bytes.readUIntBE(offset, 3)) types.push(bytes.readUInt8(offset + 3));
  return types;
}

export const GOAWAY_FRAME = 7;
