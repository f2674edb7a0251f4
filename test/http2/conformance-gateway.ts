/**
 * The gateway the conformance suite drives: a data plane started in-process on the native engine (forced in the
 * config, whatever $GATEWAY_HTTP2_ENGINE says), standalone (config_provider: yaml, no etcd), h2c on a loopback port
 * 0, with two routes:
 *
 * - `/helloworld.Greeter/*` to a real grpc-js Greeter, so a valid request gets `:status 200` and `grpc-status 0`;
 * - `/conformance.Hold/*` to a TCP server that accepts and never says a word, so the gateway can forward at most the
 *   upstream's initial windows of a request and a flow-control case can pass the client's window for certain.
 *
 * Limits that the cases measure against are set here: 16 concurrent streams and a 65,535-octet stream window.
 * `runPeer()` runs test/http2/h2-peer.py (python3-h2 from Debian, under /usr/bin/python3) once for many cases.
 */
import { spawn } from 'node:child_process';
import { status as GrpcCode } from '@grpc/grpc-js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDataPlane, type DataPlane } from '../../data-plane/data-plane.ts';
import { parseConfig } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { standaloneDeployment } from '../helpers/standalone.ts';

/** Debian's python3-h2 is installed for the system interpreter; a pyenv `python3` on PATH may lack it. */
export const PYTHON = '/usr/bin/python3';
export const PEER_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'h2-peer.py');
export const HOLD_PATH = '/conformance.Hold/Call';
export const MAX_CONCURRENT_STREAMS = 16;
export const STREAM_WINDOW = 65_535;

export interface ConformanceGateway {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/** One frame as the peer reports it. */
export interface PeerFrame {
  phase: 'handshake' | 'case' | 'probe';
  type: string;
  flags: number;
  stream: number;
  length: number;
  headers?: [string, string][];
  hpack_error?: string;
  block_first_byte?: number | null;
  error?: string | number;
  last_stream?: number;
  debug?: string;
  settings?: Record<string, number>;
  opaque?: string;
  increment?: number;
  data_length?: number;
  label?: string;
  malformed?: string;
}

export interface ProbeResult {
  stream: number;
  status: number | null;
  grpc_status: number | null;
  rst: string | null;
  data: number;
  goaway: boolean;
}

export interface PeerReport {
  frames: PeerFrame[];
  marks: Record<string, unknown>;
  closed: boolean;
  probe: ProbeResult | null;
  error: string | null;
  ms: number;
}

export async function startConformanceGateway(): Promise<ConformanceGateway> {
  const dir = await mkdtemp(join(tmpdir(), 'h2-conformance-'));
  const greeter: GreeterNode = await startGreeterNode({ id: 'conformance' });
  const silent = await startSilentServer();
  let plane: DataPlane | undefined;
  try {
    const file = join(dir, 'apisix.yaml');
    await writeFile(
      file,
      `
routes:
  - id: greeter
    uri: /helloworld.Greeter/*
    upstream: { scheme: grpc, type: roundrobin, nodes: { "127.0.0.1:${greeter.port}": 1 } }
  - id: hold
    uri: /conformance.Hold/*
    upstream: { scheme: grpc, type: roundrobin, nodes: { "127.0.0.1:${silent.port}": 1 } }
#END
`,
    );
    const config = parseConfig(`
apisix:
  http2_engine: native
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { enable: false }
nginx_config:
  http2:
    max_concurrent_streams: ${MAX_CONCURRENT_STREAMS}
    initial_stream_window_size: ${STREAM_WINDOW}
${standaloneDeployment(file)}`);
    if (config.http2Engine !== 'native') throw new Error(`the suite needs the native engine, config says ${config.http2Engine}`);
    plane = await startDataPlane({ config, log: silentLogger() });
    const bound = plane.addresses.find((a) => a.kind === 'h2c');
    if (bound === undefined) throw new Error('no h2c listener');
    const port = bound.port;
    // Ready when a real grpc-js call goes through (the file was read, the upstream answers).
    const client = greeterClient(`127.0.0.1:${port}`);
    try {
      const result = await sayHello(client, 'ready');
      if (result.status.code !== GrpcCode.OK) throw new Error(`gateway not ready: ${result.status.details}`);
    } finally {
      client.close();
    }
    const running = plane;
    return {
      host: '127.0.0.1',
      port,
      async close() {
        await running.close();
        await Promise.all([greeter.close(), silent.close()]);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await plane?.close();
    await Promise.all([greeter.close(), silent.close()]);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Accepts connections, reads and discards, never writes: an upstream that never finishes its handshake. */
async function startSilentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The case names the peer knows. */
export async function listPeerCases(): Promise<string[]> {
  const out = await runPython(['--list'], '');
  return JSON.parse(out) as string[];
}

/** Runs the given cases (each on its own connection, in parallel inside one Python process). */
export async function runPeer(gateway: ConformanceGateway, cases: readonly string[]): Promise<Record<string, PeerReport>> {
  const input = JSON.stringify({ host: gateway.host, port: gateway.port, cases, hold_path: HOLD_PATH, parallel: 16 });
  const out = await runPython([], input);
  return (JSON.parse(out) as { results: Record<string, PeerReport> }).results;
}

function runPython(args: string[], input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [PEER_SCRIPT, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new Error(`h2-peer.py exited with ${String(code)}: ${Buffer.concat(err).toString('utf8')}`));
    });
    child.stdin.end(input);
  });
}
