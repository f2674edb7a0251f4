/**
 * Set-up of the HTTP/1.1 attack tests (issue #17's listeners serving grpc-web and transcoding): a data plane started
 * in-process from a standalone YAML file (a proto and five routes: grpc-web to a real Greeter, grpc-web to a
 * scripted fake upstream, and grpc-transcode routes to that fake, one capped by grpc-limits) with the small
 * `client_header_timeout` / `keepalive_timeout` a test names; the fake's scripts (an upstream that never reads its
 * request body, endless server streams of 64 KiB messages whose written bytes are counted, an echo); raw HTTP/1.1
 * helpers (request heads written by hand, a response parser, a client that streams a huge body and one that never
 * reads); and the legitimate calls (grpc-js gRPC and raw grpc-web over HTTP/1.1) every test runs beside its attack.
 * Every wait is bounded.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Client } from '@grpc/grpc-js';
import { startDataPlane, type DataPlane } from '../../data-plane/data-plane.ts';
import { parseConfig } from '../../shared/config.ts';
import { startFakeUpstream, type FakeUpstream, type StreamControl } from '../helpers/fake-upstream.ts';
import { greeterClient, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { frame, helloMessage, helloText, http1Request, parseWebBody } from '../helpers/grpc-web-raw.ts';
import { parseMetrics, sumOf } from '../helpers/prometheus-text.ts';
import { standaloneDeployment } from '../helpers/standalone.ts';
import { captureLog, DEFAULT_LIMIT_MS, legitimateCallSucceeds, waitUntil, type LogLine } from './connection-kit.ts';

export { DEFAULT_LIMIT_MS, waitUntil };

export const SAY_HELLO = '/helloworld.Greeter/SayHello';
/** Fake upstream paths behind the grpc-web route `/fake.Web/*`. */
export const NO_READ = '/fake.Web/NoRead';
export const ENDLESS = '/fake.Web/Endless';
/** Answers response headers and one message at once, then waits for the request's end. */
export const EARLY = '/fake.Web/Early';
/** Never answers: the call stays open until the gateway or the client ends it. */
export const HOLD = '/fake.Web/Hold';
/** Transcoded routes (HTTP paths) and the gRPC methods they call. */
export const ECHO_HTTP = '/attack/echo';
export const CAPPED_HTTP = '/attack/capped';
export const FLOOD_HTTP = '/attack/flood';
export const ECHO_GRPC = '/attack.Attack/Echo';
export const FLOOD_GRPC = '/attack.Attack/Flood';
export const WEB_BINARY = 'application/grpc-web+proto';
export const WEB_TEXT = 'application/grpc-web-text';
/** grpc-limits cap of the capped transcoding route. */
export const CAPPED_BYTES = 64 * 1024;
/** Size of each message of the endless streams (the 5-byte frame header included). */
export const MESSAGE_BYTES = 64 * 1024;
export const KiB = 1024;
export const MiB = 1024 * 1024;

/** A recursive message (deep-nesting attack), and a server stream of bytes (NDJSON flood). */
const ATTACK_PROTO = `syntax = "proto3";
package attack;
message Node { Node inner = 1; string name = 2; }
message Chunk { bytes data = 1; }
service Attack {
  rpc Echo(Node) returns (Node);
  rpc Flood(Node) returns (stream Chunk);
}
`;

/** Routes in the standalone file. */
const ROUTES = 5;

/** One endless server stream of the fake: the bytes it managed to hand to its HTTP/2 stream, and whether it ended. */
export interface Flood {
  readonly path: string;
  written: number;
  closed: boolean;
}

export interface WebGateway {
  readonly plane: DataPlane;
  readonly port: number;
  /** `127.0.0.1:<h2c port>`: the listener serves HTTP/2 and HTTP/1.1 alike. */
  readonly address: string;
  readonly greeter: GreeterNode;
  readonly fake: FakeUpstream;
  /** Endless streams the fake served, newest last. */
  readonly floods: readonly Flood[];
  /** The fake's NO_READ streams start reading their request bodies. */
  releaseNoRead(): void;
  readonly logs: readonly LogLine[];
  /** A grpc-js Greeter client on the h2c listener. */
  readonly grpc: Client;
  close(): Promise<void>;
}

/** The data plane, with `client_header_timeout`, `keepalive_timeout` and `client_body_timeout` in ms. */
export async function startWebGateway(timeouts: { headerMs: number; keepaliveMs: number; bodyMs: number }): Promise<WebGateway> {
  const dir = await mkdtemp(join(tmpdir(), 'http1-web-'));
  const greeter = await startGreeterNode({ id: 'web' });
  const fake = await startFakeUpstream();
  const floods: Flood[] = [];
  const noRead: ServerHttp2Stream[] = [];
  fake.onStream((stream, headers, ctl) => script(stream, String(headers[':path']), ctl, floods, noRead));
  try {
    return await startPlane(dir, greeter, fake, timeouts, floods, noRead);
  } catch (err) {
    await fake.close();
    await greeter.close();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function startPlane(
  dir: string,
  greeter: GreeterNode,
  fake: FakeUpstream,
  timeouts: { headerMs: number; keepaliveMs: number; bodyMs: number },
  floods: readonly Flood[],
  noRead: readonly ServerHttp2Stream[],
): Promise<WebGateway> {
  const node = (port: number): string => `{ scheme: grpc, type: roundrobin, nodes: { "127.0.0.1:${port}": 1 } }`;
  const transcode = (method: string): string => `grpc-transcode: { proto_id: attack, service: attack.Attack, method: ${method} }`;
  const file = join(dir, 'apisix.yaml');
  await writeFile(
    file,
    `protos:
  - id: attack
    content: ${JSON.stringify(ATTACK_PROTO)}
routes:
  - { id: web, uri: "/helloworld.Greeter/*", plugins: { grpc-web: {} }, upstream: ${node(greeter.port)} }
  - { id: fake-web, uri: "/fake.Web/*", plugins: { grpc-web: {} }, upstream: ${node(fake.port)} }
  - { id: echo, uri: ${ECHO_HTTP}, plugins: { ${transcode('Echo')} }, upstream: ${node(fake.port)} }
  - { id: capped, uri: ${CAPPED_HTTP}, plugins: { ${transcode('Echo')}, grpc-limits: { max_request_message_bytes: ${CAPPED_BYTES} } }, upstream: ${node(fake.port)} }
  - { id: flood, uri: ${FLOOD_HTTP}, plugins: { ${transcode('Flood')} }, upstream: ${node(fake.port)} }
#END
`,
  );
  const config = parseConfig(`
apisix:
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { enable: false }
nginx_config: { http: { client_header_timeout: ${timeouts.headerMs}ms, keepalive_timeout: ${timeouts.keepaliveMs}ms, client_body_timeout: ${timeouts.bodyMs}ms } }
${standaloneDeployment(file)}`);
  const { lines: logs, log } = captureLog();
  const plane = await startDataPlane({ config, log });
  const bound = plane.addresses.find((a) => a.kind === 'h2c');
  if (bound === undefined || plane.report().routes !== ROUTES) {
    await plane.close();
    throw new Error(`the data plane does not serve the ${ROUTES} routes of the standalone file: ${JSON.stringify(logs)}`);
  }
  const address = `127.0.0.1:${bound.port}`;
  const grpc = greeterClient(address);
  return {
    plane,
    port: bound.port,
    address,
    greeter,
    fake,
    floods,
    releaseNoRead() {
      for (const stream of noRead) stream.resume();
    },
    logs,
    grpc,
    async close() {
      grpc.close();
      await plane.close();
      await fake.close();
      await greeter.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The fake upstream's behaviour per gRPC path. */
async function script(stream: ServerHttp2Stream, path: string, ctl: StreamControl, floods: Flood[], noRead: ServerHttp2Stream[]): Promise<void> {
  switch (path) {
    case NO_READ:
      // Never reads the request body (until releaseNoRead()): Node stops returning HTTP/2 window for a paused
      // stream. Once the gateway resets it, it is read to its end, so that Node closes it.
      stream.pause();
      noRead.push(stream);
      stream.once('aborted', () => stream.resume());
      return;
    case HOLD:
      return;
    case EARLY:
      await ctl.writeMessage('early');
      await ctl.requestEnded();
      if (!stream.closed) ctl.sendTrailers();
      return;
    case ENDLESS:
    case FLOOD_GRPC: {
      await ctl.requestEnded();
      const flood: Flood = { path, written: 0, closed: false };
      floods.push(flood);
      await streamForever(stream, path === ENDLESS ? frame(Buffer.alloc(MESSAGE_BYTES - 5)) : frame(chunkMessage(MESSAGE_BYTES - 9)), flood);
      return;
    }
    case ECHO_GRPC: {
      await ctl.requestEnded();
      if (stream.closed) return;
      await ctl.writeMessage(ctl.record.messages[0] ?? Buffer.alloc(0));
      ctl.sendTrailers();
      return;
    }
    default:
      ctl.trailersOnly(12, `fake upstream: no script for ${path}`);
  }
}

/** An attack.Chunk whose `data` holds `bytes` zero bytes (field 1, length-delimited, a 3-byte varint length). */
function chunkMessage(bytes: number): Buffer {
  const out = Buffer.alloc(4 + bytes);
  out[0] = 0x0a;
  out[1] = (bytes & 0x7f) | 0x80;
  out[2] = ((bytes >> 7) & 0x7f) | 0x80;
  out[3] = bytes >> 14;
  return out;
}

/** Writes `message` until the stream closes, waiting for 'drain': the count is what the gateway let it write. */
async function streamForever(stream: ServerHttp2Stream, message: Buffer, flood: Flood): Promise<void> {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
  try {
    while (!stream.closed && !stream.destroyed) {
      const more = stream.write(message);
      flood.written += message.length;
      if (!more) await drainOrClose(stream);
    }
  } catch {
    // the gateway reset the stream: the flood is over
  } finally {
    flood.closed = true;
  }
}

/** Resolves at the writable's next 'drain' or its 'close', leaving no listener behind. */
function drainOrClose(writable: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      writable.off('drain', done);
      writable.off('close', done);
      resolve();
    };
    writable.on('drain', done);
    writable.on('close', done);
  });
}

// ---- legitimate calls -------------------------------------------------------------------------------------------

/** No keep-alive: a legitimate grpc-web call never races the gateway's idle close of a reused connection. */
const FRESH_CONNECTION = new http.Agent({ keepAlive: false, maxSockets: Infinity });

/** One grpc-web SayHello over HTTP/1.1 on its own connection, asserted to succeed. */
export async function grpcWebCallSucceeds(address: string, name: string): Promise<void> {
  const answer = await http1Request(address, { path: SAY_HELLO, headers: { 'content-type': WEB_BINARY }, body: frame(helloMessage(name)), agent: FRESH_CONNECTION });
  assert.equal(answer.status, 200, `grpc-web call beside the attack: ${answer.body.toString('latin1')}`);
  const body = parseWebBody(answer.body);
  assert.deepEqual(body.messages.map(helloText), [`Hello ${name}`], 'grpc-web call beside the attack');
  assert.equal(body.trailers?.['grpc-status'], '0', `grpc-web call beside the attack: ${JSON.stringify(body.trailers)}`);
}

/** A grpc-js call and a raw grpc-web call, concurrently: what legitimate clients beside an attack see. */
export async function legitimateCallsSucceed(gw: WebGateway, name: string): Promise<void> {
  await Promise.all([legitimateCallSucceeds(gw.grpc, name), grpcWebCallSucceeds(gw.address, name)]);
}

/** `nginx_http_current_connections{state}` of the data plane: its client connections (HTTP/2 and HTTP/1.1). */
async function connectionGauge(plane: DataPlane, state: 'active' | 'accepted'): Promise<number> {
  const registry = plane.metrics;
  assert.ok(registry !== undefined, 'metrics are on by default');
  return sumOf(parseMetrics(await registry.metrics()), 'apisix_nginx_http_current_connections', { state });
}

/** Connections accepted since the start. */
export function acceptedConnections(plane: DataPlane): Promise<number> {
  return connectionGauge(plane, 'accepted');
}

/**
 * Polls the connections the data plane holds until they are at most `most` (the grpc-js client's own connection
 * may be open until keepalive_timeout) or DEFAULT_LIMIT_MS passed; returns the last count.
 */
export async function activeConnectionsAtMost(plane: DataPlane, most: number): Promise<number> {
  const deadline = Date.now() + DEFAULT_LIMIT_MS;
  let active = await connectionGauge(plane, 'active');
  while (active > most && Date.now() < deadline) {
    await sleep(50);
    active = await connectionGauge(plane, 'active');
  }
  return active;
}

// ---- raw HTTP/1.1 -----------------------------------------------------------------------------------------------

/** A request head written by hand (`headers` as written, in order), ending with the blank line. */
export function requestHead(method: string, path: string, headers: readonly (readonly [string, string])[] = []): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: gateway.test', ...headers.map(([name, value]) => `${name}: ${value}`)];
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

export interface ParsedResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  /** The body, de-chunked; undefined while incomplete. */
  readonly body: Buffer | undefined;
  /** Bytes after this response (a second response on the connection). */
  readonly rest: Buffer;
}

/** The first HTTP/1.1 response in `bytes`; undefined while its head is incomplete. */
export function parseResponse(bytes: Buffer): ParsedResponse | undefined {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine = '', ...lines] = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let at = end + 4;
  if (headers['transfer-encoding'] === 'chunked') {
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = bytes.indexOf('\r\n', at);
      if (lineEnd < 0) return { status, headers, body: undefined, rest: Buffer.alloc(0) };
      const size = parseInt(bytes.subarray(at, lineEnd).toString('latin1'), 16);
      if (bytes.length < lineEnd + 2 + size + 2) return { status, headers, body: undefined, rest: Buffer.alloc(0) };
      parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
      if (size === 0) return { status, headers, body: Buffer.concat(parts), rest: bytes.subarray(at) };
    }
  }
  const length = Number(headers['content-length'] ?? 0);
  if (bytes.length < at + length) return { status, headers, body: undefined, rest: Buffer.alloc(0) };
  return { status, headers, body: bytes.subarray(at, at + length), rest: bytes.subarray(at + length) };
}

/** Waits until `received()` holds one complete response, and returns it. */
export async function completeResponse(received: () => Buffer, what: string, limitMs = DEFAULT_LIMIT_MS): Promise<ParsedResponse> {
  let parsed: ParsedResponse | undefined;
  await waitUntil(
    () => {
      parsed = parseResponse(received());
      return parsed?.body !== undefined;
    },
    limitMs,
    () => `no complete response to ${what}; received ${JSON.stringify(received().subarray(0, 300).toString('latin1'))}`,
  );
  assert.ok(parsed !== undefined);
  return parsed;
}

/**
 * Polls `read` until its value has not changed for `quietMs` (returned with `stable: true`), it passes `cap`, or
 * `limitMs` passed (`stable: false`): a count that stops growing is one the gateway holds back.
 */
export async function untilStable(read: () => number, options: { quietMs: number; limitMs: number; cap: number }): Promise<{ value: number; stable: boolean }> {
  const deadline = Date.now() + options.limitMs;
  let value = read();
  let since = Date.now();
  while (Date.now() < deadline && value <= options.cap) {
    await sleep(50);
    const next = read();
    if (next !== value) {
      value = next;
      since = Date.now();
    } else if (Date.now() - since >= options.quietMs) {
      return { value, stable: true };
    }
  }
  return { value, stable: false };
}

/** V8's gc(), exposed at run time: garbage a gateway dropped must not count as memory it kept. */
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/**
 * Bytes the Node process (data plane and test clients alike) still holds in ArrayBuffers (Buffers) after a full
 * garbage collection: where a gateway that kept a body, or a stream it could not send, would keep it.
 */
export function liveArrayBufferBytes(): number {
  collectGarbage();
  return process.memoryUsage().arrayBuffers;
}

/**
 * A client that writes `head`, then `bodyBytes` more (in 1 MiB writes of `fill`, as fast as the socket drains),
 * and reads and keeps whatever the gateway answers. accepted(): the bytes the gateway's side took (the socket's
 * bytesWritten counts its own queue too).
 */
export interface Firehose {
  readonly socket: Socket;
  accepted(): number;
  received(): Buffer;
  readonly closed: boolean;
  destroy(): void;
}

const FIREHOSE_CHUNK = 1 * MiB;

export async function firehose(port: number, head: Buffer, bodyBytes: number, fill: Buffer = Buffer.alloc(FIREHOSE_CHUNK)): Promise<Firehose> {
  const socket = netConnect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  let closed = false;
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => undefined); // the gateway closing the connection is one of the outcomes
  socket.on('close', () => (closed = true));
  await once(socket, 'connect');
  socket.write(head);
  const pump = async (): Promise<void> => {
    let left = bodyBytes;
    while (left > 0 && !socket.destroyed) {
      const piece = left >= fill.length ? fill : fill.subarray(0, left);
      left -= piece.length;
      if (!socket.write(piece)) await drainOrClose(socket);
    }
  };
  void pump().catch(() => undefined);
  return {
    socket,
    accepted: () => socket.bytesWritten - socket.writableLength,
    received: () => Buffer.concat(chunks),
    get closed() {
      return closed;
    },
    destroy: () => socket.destroy(),
  };
}

/** A connection that writes `request` and never reads what the gateway answers. */
export async function deafClient(port: number, request: Buffer): Promise<Socket> {
  const socket = netConnect({ host: '127.0.0.1', port });
  socket.pause();
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.write(request);
  return socket;
}
