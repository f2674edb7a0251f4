/**
 * The cases of the gateway-vs-nginx benchmark and the framed gRPC request bodies h2load sends (a 5-byte gRPC
 * frame prefix, then the message). The upstream (bench/upstream-go) echoes `/Unary` messages and answers `/Stream`
 * with N messages of S bytes, N and S being the first 8 bytes of the request message.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const MiB = 1024 * 1024;

export interface LoadCase {
  readonly kind: 'load';
  readonly id: string;
  readonly title: string;
  /** The service in the path: bench.Echo routes to the upstream's plaintext port, bench.EchoTls to its TLS port. */
  readonly service: 'bench.Echo' | 'bench.EchoTls';
  readonly method: 'Unary' | 'Stream';
  /** h2load over TLS (ALPN h2) to the proxy's TLS port (for direct: the upstream's TLS port). */
  readonly downstreamTls: boolean;
  /** h2load -c */
  readonly connections: number;
  /** h2load -m: streams in flight per connection. */
  readonly streamsPerConnection: number;
  /** The request message's size (Unary: echoed back). */
  readonly messageBytes: number;
  /** Stream: messages per call and their size. */
  readonly stream?: { readonly messages: number; readonly bytes: number };
  /** Measured time per run, before --quick scaling (the request count is sized from a warm-up to last this long). */
  readonly seconds: number;
  /** grpc-js calls that check status 0 and the payload, per target, before the first measured run. */
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

/** Response DATA bytes of one successful call: what h2load's `data` traffic must add up to. */
export function responseDataBytes(c: LoadCase): number {
  if (c.stream !== undefined) return c.stream.messages * (5 + c.stream.bytes);
  return 5 + c.messageBytes;
}

/** Writes the case's framed request body into `dir`; returns its path (h2load -d). */
export function writeBody(dir: string, c: LoadCase): string {
  const path = join(dir, `${c.id}.body`);
  writeFileSync(path, grpcFrame(requestMessage(c)));
  return path;
}
