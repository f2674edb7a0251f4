/**
 * The upstream of the slow-reader scenario (test/flow/slow-reader.ts): a raw node:http2 server that answers
 * BULK_PATH with as many gRPC-framed messages as the request headers ask for, as fast as HTTP/2 flow control lets
 * it: when write() returns false it waits for 'drain'. It counts those waits and the bytes it has handed to its
 * stream, so a test can see that it was throttled, and by how much it advanced while the client did not read.
 *
 * Each message is `messageBytes` long; its first 4 bytes are its sequence number (big-endian) and the rest is a
 * fixed random pattern (patternFor), so a client can check order, length and content of every message.
 */
import { randomBytes } from 'node:crypto';
import http2, { type Http2Server, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';

export const BULK_PATH = '/flow.Bulk/Download';
export const GRPC_PREFIX_BYTES = 5;
export const TOTAL_HEADER = 'x-bulk-total-bytes';
export const MESSAGE_HEADER = 'x-bulk-message-bytes';

export interface BulkStats {
  /** Payload + prefix bytes accepted by stream.write() so far, over all calls. */
  bytesWritten: number;
  /** Times write() returned false and the upstream waited for 'drain'. */
  drainWaits: number;
  /** Milliseconds spent waiting for 'drain'. */
  drainWaitMs: number;
  /** Calls that wrote their last message and sent trailers. */
  completed: number;
}

export interface BulkUpstream {
  readonly port: number;
  readonly address: string;
  readonly stats: BulkStats;
  resetStats(): void;
  close(): Promise<void>;
}

/** The random body shared by every message of a given size (the sequence number overwrites the first 4 bytes). */
const patterns = new Map<number, Buffer>();
export function patternFor(messageBytes: number): Buffer {
  let pattern = patterns.get(messageBytes);
  if (pattern === undefined) {
    pattern = randomBytes(messageBytes);
    patterns.set(messageBytes, pattern);
  }
  return pattern;
}

function messageFrame(seq: number, messageBytes: number): Buffer {
  const frame = Buffer.allocUnsafe(GRPC_PREFIX_BYTES + messageBytes);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(messageBytes, 1);
  patternFor(messageBytes).copy(frame, GRPC_PREFIX_BYTES);
  frame.writeUInt32BE(seq, GRPC_PREFIX_BYTES);
  return frame;
}

export async function startBulkUpstream(): Promise<BulkUpstream> {
  const stats: BulkStats = { bytesWritten: 0, drainWaits: 0, drainWaitMs: 0, completed: 0 };
  const server: Http2Server = http2.createServer();
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  server.on('sessionError', () => undefined);
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    stream.on('error', () => undefined);
    if (headers[':path'] !== BULK_PATH) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' }, { endStream: true });
      return;
    }
    const total = Number(headers[TOTAL_HEADER]);
    const messageBytes = Number(headers[MESSAGE_HEADER]);
    stream.resume(); // the request (one empty message) is not needed
    void serve(stream, Math.ceil(total / messageBytes), messageBytes);
  });

  async function serve(stream: ServerHttp2Stream, count: number, messageBytes: number): Promise<void> {
    stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    for (let seq = 0; seq < count; seq++) {
      if (stream.destroyed || stream.closed) return;
      const frame = messageFrame(seq, messageBytes);
      stats.bytesWritten += frame.length;
      if (!stream.write(frame)) {
        stats.drainWaits++;
        const started = Date.now();
        await new Promise<void>((resolve) => {
          const done = (): void => {
            stream.off('drain', done);
            stream.off('close', done);
            resolve();
          };
          stream.on('drain', done);
          stream.on('close', done);
        });
        stats.drainWaitMs += Date.now() - started;
      }
    }
    if (stream.destroyed || stream.closed) return;
    stats.completed++;
    stream.end();
  }

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const bound = server.address();
      if (bound !== null && typeof bound === 'object') resolve(bound.port);
      else reject(new Error('bulk upstream: no port'));
    });
  });
  let closing: Promise<void> | undefined;
  return {
    port,
    address: `127.0.0.1:${port}`,
    stats,
    resetStats() {
      Object.assign(stats, { bytesWritten: 0, drainWaits: 0, drainWaitMs: 0, completed: 0 });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
