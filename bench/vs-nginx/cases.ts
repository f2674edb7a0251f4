/**
 * The cases of the gateway-vs-nginx benchmark and the request bodies h2load sends: a framed gRPC message (a 5-byte
 * gRPC frame prefix, then the message) for gRPC and grpc-web, a JSON object for JSON transcoding. The upstream
 * (bench/upstream-go) echoes `/Unary` messages byte for byte and answers `/Stream` with N messages of S bytes, N and
 * S being the first 8 bytes of the request message.
 *
 * Issue #17's cases speak what browsers and REST clients speak, to the gateway's `grpc-web` and `grpc-transcode`
 * routes (bench/vs-nginx/targets.ts): grpc-web's binary mode (PROTOCOL-WEB.md) over HTTP/1.1 keep-alive and over
 * HTTP/2, and JSON over HTTP/2 and HTTP/1.1, each a 64 B unary call with 100 in flight like unary-100, so that
 * their figures sit next to plain gRPC's. nginx, the upstream alone and the gateway's node:http2 engine serve
 * neither: those targets skip them (targets.ts servesCase).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const MiB = 1024 * 1024;

/**
 * What the client speaks: gRPC (`application/grpc`), grpc-web's binary mode (`application/grpc-web+proto`: the same
 * frames, the trailers as a last frame in the body) or JSON to a transcoding route (`application/json`).
 */
export type Protocol = 'grpc' | 'grpc-web' | 'json';

/** The gateway's grpc-web route is `${WEB_PREFIX}/*`: the plugin strips the prefix, the upstream sees `/bench.Echo/Unary`. */
export const WEB_PREFIX = '/web';
/** The gateway's grpc-transcode route (bench.Echo/Unary of BENCH_PROTO). */
export const JSON_PATH = '/json/unary';
/** The proto the transcoding route names (`proto_id`). */
export const BENCH_PROTO_ID = 'bench';
/**
 * bench.Echo as the transcoding route knows it: request and response of the same type, since the upstream echoes
 * the request's bytes. `n` is an int64, which the proto3 JSON mapping writes as a string: both directions map it.
 */
export const BENCH_PROTO = `syntax = "proto3";
package bench;
message Payload { string text = 1; int64 n = 2; }
service Echo { rpc Unary(Payload) returns (Payload); }
`;
/** `text`'s length: with its tag and length byte, and `n` (tag + one varint byte), the message is 64 B as unary-100's. */
const JSON_TEXT_CHARS = 60;

export interface LoadCase {
  readonly kind: 'load';
  readonly id: string;
  readonly title: string;
  /** What the client speaks; anything but gRPC is served by the native-engine gateway targets only. */
  readonly protocol: Protocol;
  /**
   * h2load --h1: HTTP/1.1 with keep-alive, one request in flight per connection (h2load's -m pipelines on HTTP/1.1;
   * browsers do not pipeline), so `connections` is the concurrency.
   */
  readonly http1: boolean;
  /** The service in the path: bench.Echo routes to the upstream's plaintext port, bench.EchoTls to its TLS port. */
  readonly service: 'bench.Echo' | 'bench.EchoTls';
  readonly method: 'Unary' | 'Stream';
  /** h2load over TLS (ALPN h2) to the proxy's TLS port (for direct: the upstream's TLS port). */
  readonly downstreamTls: boolean;
  /** h2load -c */
  readonly connections: number;
  /** h2load -m: streams in flight per connection (1 for HTTP/1.1: no pipelining). */
  readonly streamsPerConnection: number;
  /** The request message's size (Unary: echoed back). */
  readonly messageBytes: number;
  /** Stream: messages per call and their size. */
  readonly stream?: { readonly messages: number; readonly bytes: number };
  /** Measured time per run, before --quick scaling (the request count is sized from a warm-up to last this long). */
  readonly seconds: number;
  /**
   * Calls that check status 0 and the payload, per target, before the first measured run: grpc-js calls, or raw
   * grpc-web / JSON requests (verify.ts).
   */
  readonly sampleCalls: number;
}

export interface IdleCase {
  readonly kind: 'idle';
  readonly id: string;
  readonly title: string;
  /** Over TLS (ALPN h2) to the target's TLS port, or h2c with prior knowledge. */
  readonly tls: boolean;
  readonly connections: number;
  /** Connections under --quick (the TLS handshakes of 10,000 connections take a while on 2 cores). */
  readonly quickConnections: number;
}

/**
 * bench/memory-slow-reader.ts for each gateway engine selected: 200 MiB of 64 KiB messages to a client that reads in
 * bursts and stalls, through a single data-plane process, and its RSS growth (issue #3's scenario; issue #12 goal:
 * < 64 MiB). Not a comparison with nginx: the script measures the upstream directly as its baseline.
 */
export interface SlowReaderCase {
  readonly kind: 'slow-reader';
  readonly id: string;
  readonly title: string;
  readonly totalMiB: number;
  /** MiB streamed under --quick (the goal is stated at totalMiB; the report says when a run streamed less). */
  readonly quickTotalMiB: number;
  readonly messageKiB: number;
}

export type BenchCase = LoadCase | IdleCase | SlowReaderCase;

const unary = (id: string, title: string, more: Partial<LoadCase>): LoadCase => ({
  kind: 'load',
  id,
  title,
  protocol: 'grpc',
  http1: false,
  service: 'bench.Echo',
  method: 'Unary',
  downstreamTls: false,
  connections: 10,
  streamsPerConnection: 10,
  messageBytes: 64,
  seconds: 8,
  sampleCalls: 20,
  ...more,
});

export const CASES: readonly BenchCase[] = [
  { kind: 'idle', id: 'idle', title: '10,000 idle h2c client connections', tls: false, connections: 10_000, quickConnections: 10_000 },
  { kind: 'idle', id: 'idle-tls', title: '10,000 idle TLS (ALPN h2) client connections', tls: true, connections: 10_000, quickConnections: 2_000 },
  unary('unary-100', 'unary 64 B, 100 in flight (10 conns × 10 streams), h2c → grpc', {}),
  unary('unary-1', 'unary 64 B, 1 in flight (latency), h2c → grpc', { connections: 1, streamsPerConnection: 1 }),
  unary('tls-100', 'unary 64 B, 100 in flight, TLS downstream → grpc', { downstreamTls: true }),
  unary('grpcs-100', 'unary 64 B, 100 in flight, h2c → grpcs upstream', { service: 'bench.EchoTls' }),
  unary('mib-8', 'unary 1 MiB echo, 8 in flight (4 conns × 2 streams)', {
    connections: 4,
    streamsPerConnection: 2,
    messageBytes: MiB,
    sampleCalls: 3,
  }),
  unary('stream-16', 'server stream of 1,000 × 64 B messages, 16 in flight (4 conns × 4 streams)', {
    method: 'Stream',
    connections: 4,
    streamsPerConnection: 4,
    messageBytes: 8,
    stream: { messages: 1_000, bytes: 64 },
    sampleCalls: 3,
  }),
  // Issue #17: 100 in flight as unary-100, the same 64 B message; gateway targets only.
  unary('web-h1-100', 'grpc-web+proto unary 64 B, 100 in flight (100 HTTP/1.1 keep-alive conns × 1, no pipelining) → grpc', {
    protocol: 'grpc-web',
    http1: true,
    connections: 100,
    streamsPerConnection: 1,
  }),
  unary('web-h2-100', 'grpc-web+proto unary 64 B, 100 in flight (10 h2c conns × 10 streams) → grpc', { protocol: 'grpc-web' }),
  unary('json-100', 'JSON transcoded to a unary call, 64 B message (80 B JSON), 100 in flight (10 h2c conns × 10 streams)', { protocol: 'json' }),
  unary('json-h1-100', 'JSON transcoded to a unary call, 64 B message (80 B JSON), 100 in flight (100 HTTP/1.1 keep-alive conns × 1)', {
    protocol: 'json',
    http1: true,
    connections: 100,
    streamsPerConnection: 1,
  }),
  { kind: 'slow-reader', id: 'slow-reader', title: 'a 200 MiB server stream of 64 KiB messages to a slow reader: gateway RSS growth', totalMiB: 200, quickTotalMiB: 32, messageKiB: 64 },
];

/** The request message of a case (Stream: N and S as big-endian uint32, Unary: a recognisable pattern). */
export function requestMessage(c: LoadCase, seed = 0): Buffer {
  if (c.stream !== undefined) {
    const message = Buffer.alloc(8);
    message.writeUInt32BE(c.stream.messages, 0);
    message.writeUInt32BE(c.stream.bytes, 4);
    return message;
  }
  const message = Buffer.alloc(c.messageBytes);
  for (let i = 0; i < message.length; i++) message[i] = (i * 31 + seed * 7 + 13) & 0xff;
  return message;
}

/** Length-prefixed gRPC frame: flag 0 (not compressed), big-endian length, message. */
export function grpcFrame(message: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** A JSON case's request (the upstream echoes it, so also the answer the gateway must give back). */
export function jsonRequest(seed = 0): { text: string; n: string } {
  return { text: `payload ${seed} `.padEnd(JSON_TEXT_CHARS, 'abcdefghijklmnopqrstuvwxyz'), n: String(42 + (seed % 64)) };
}

/** The request body of one call of a case: a gRPC frame (gRPC, grpc-web) or JSON. */
export function requestBody(c: LoadCase, seed = 0): Buffer {
  return c.protocol === 'json' ? Buffer.from(JSON.stringify(jsonRequest(seed))) : grpcFrame(requestMessage(c, seed));
}

/** The path a case's calls are sent to (the gateway's grpc-web and transcoding routes have their own). */
export function requestPath(c: LoadCase): string {
  const grpcPath = `/${c.service}/${c.method}`;
  if (c.protocol === 'grpc-web') return `${WEB_PREFIX}${grpcPath}`;
  return c.protocol === 'json' ? JSON_PATH : grpcPath;
}

/** The content types a case sends and must get back. */
export const CONTENT_TYPES: Readonly<Record<Protocol, string>> = {
  grpc: 'application/grpc',
  'grpc-web': 'application/grpc-web+proto',
  json: 'application/json',
};

/**
 * A case's request headers besides h2load's own. gRPC needs `te: trailers` (PROTOCOL-HTTP2.md); grpc-web's
 * JavaScript client sends `x-grpc-web: 1` on every call; a JSON client sends its content type only.
 */
export function requestHeaders(c: LoadCase): string[] {
  const headers = [`content-type: ${CONTENT_TYPES[c.protocol]}`];
  if (c.protocol === 'grpc') headers.push('te: trailers');
  if (c.protocol === 'grpc-web') headers.push('x-grpc-web: 1');
  return headers;
}

/**
 * Response body bytes of one successful call, what h2load's `data` traffic must add up to (HTTP/1.1: the body
 * without its chunked framing); undefined when only an answer shows it: grpc-web's trailers frame carries what the
 * upstream's trailers carry, JSON is as the gateway writes it. Those come from the checked sample (verify.ts).
 */
export function responseDataBytes(c: LoadCase): number | undefined {
  if (c.protocol !== 'grpc') return undefined;
  if (c.stream !== undefined) return c.stream.messages * (5 + c.stream.bytes);
  return 5 + c.messageBytes;
}

/** Writes the case's request body into `dir`; returns its path (h2load -d). */
export function writeBody(dir: string, c: LoadCase): string {
  const path = join(dir, `${c.id}.body`);
  writeFileSync(path, requestBody(c));
  return path;
}
