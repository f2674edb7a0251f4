/**
 * The slow-reader scenario of issue #3: a server-streaming call of many large messages from a raw node:http2
 * upstream, through a gateway, to a raw node:http2 client that reads in bursts and stalls now and then.
 *
 * - The upstream ("bulk") writes gRPC-framed messages as fast as HTTP/2 flow control lets it: when write() returns
 *   false it waits for 'drain'. It counts those waits and the bytes it has handed to its stream, so a test can see
 *   that it was throttled, and by how much it advanced while the client was not reading at all.
 * - Each message is `messageBytes` long; its first 4 bytes are its sequence number (big-endian) and the rest is a
 *   fixed random pattern, so the client checks order, length and content of every message without buffering more
 *   than one.
 * - The client reads `burstBytes`, pauses `burstPauseMs` (stream.pause()/resume(), so Node stops returning HTTP/2
 *   window to the gateway), and at each of `stallAt` (fractions of the total) stalls for `stallMs`.
 *
 * Used by test/flow/slow-reader-memory.test.ts and bench/memory-slow-reader.ts.
 */
import { randomBytes } from 'node:crypto';
import http2, { constants, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';

export const BULK_PATH = '/flow.Bulk/Download';
const GRPC_PREFIX_BYTES = 5;
const TOTAL_HEADER = 'x-bulk-total-bytes';
const MESSAGE_HEADER = 'x-bulk-message-bytes';

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
function patternFor(messageBytes: number): Buffer {
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

// ---- the slow client ------------------------------------------------------------------------------------------

export interface SlowReadOptions {
  /** `host:port` of an h2c listener (the gateway's, or the upstream's for a direct baseline). */
  target: string;
  totalBytes: number;
  messageBytes: number;
  /** Bytes read between two short pauses. */
  burstBytes: number;
  burstPauseMs: number;
  /** Fractions of totalBytes at which the client stops reading for stallMs. */
  stallAt: readonly number[];
  stallMs: number;
  /** Called every sampleEveryMs while the call runs (RSS sampling). */
  onSample?: () => void;
  sampleEveryMs?: number;
  /** The whole call must end within this, or the result says it hung. */
  limitMs: number;
  /** The upstream's stats, to record how far it advanced during each stall. */
  upstream?: BulkStats;
}

export interface SlowReadResult {
  /** The call ended (trailers or reset) within limitMs. */
  ended: boolean;
  /** DATA bytes received (gRPC prefixes included). */
  bytesReceived: number;
  /** Complete messages that passed the length, order and content check. */
  messagesOk: number;
  /** The first few problems found in the byte stream. */
  problems: string[];
  grpcStatus: string | undefined;
  grpcMessage: string | undefined;
  rstCode: number | undefined;
  /** Upstream bytes written during each stall (how much the upstream advanced while nobody read). */
  stallAdvance: number[];
  elapsedMs: number;
}

/** Checks gRPC frames as they arrive, holding at most one partial message. */
class FrameChecker {
  messagesOk = 0;
  readonly problems: string[] = [];
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly messageBytes: number;
  private readonly pattern: Buffer;

  constructor(messageBytes: number) {
    this.messageBytes = messageBytes;
    this.pattern = patternFor(messageBytes);
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= GRPC_PREFIX_BYTES) {
      const head = this.peek(GRPC_PREFIX_BYTES);
      const length = head.readUInt32BE(1);
      if (this.buffered < GRPC_PREFIX_BYTES + length) return;
      this.check(this.take(GRPC_PREFIX_BYTES + length));
    }
  }

  /** Bytes left over that do not make a complete message. */
  get leftover(): number {
    return this.buffered;
  }

  private check(frame: Buffer): void {
    const seq = this.messagesOk;
    const length = frame.readUInt32BE(1);
    let problem: string | undefined;
    if (frame[0] !== 0) problem = `message ${seq}: compressed flag ${frame[0]}`;
    else if (length !== this.messageBytes) problem = `message ${seq}: length ${length}, want ${this.messageBytes}`;
    else if (frame.readUInt32BE(GRPC_PREFIX_BYTES) !== seq) problem = `message ${seq}: carries sequence ${frame.readUInt32BE(GRPC_PREFIX_BYTES)}`;
    else if (!frame.subarray(GRPC_PREFIX_BYTES + 4).equals(this.pattern.subarray(4))) problem = `message ${seq}: content differs`;
    if (problem === undefined) this.messagesOk++;
    else if (this.problems.length < 5) this.problems.push(problem);
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) return first.subarray(0, n);
    return Buffer.concat(this.chunks).subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? (this.chunks[0] ?? Buffer.alloc(0)) : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}

/** One slow-read call. Resolves (never rejects) within options.limitMs + a little; `ended: false` means it hung. */
export function slowRead(options: SlowReadOptions): Promise<SlowReadResult> {
  const started = Date.now();
  const session = http2.connect(`http://${options.target}`);
  session.on('error', () => undefined);
  const stream = session.request(
    {
      ':method': 'POST',
      ':path': BULK_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
      [TOTAL_HEADER]: String(options.totalBytes),
      [MESSAGE_HEADER]: String(options.messageBytes),
    },
    { endStream: false },
  );
  stream.on('error', () => undefined);
  stream.end(Buffer.alloc(GRPC_PREFIX_BYTES)); // one empty request message, then half-close

  const checker = new FrameChecker(options.messageBytes);
  const result: SlowReadResult = {
    ended: false,
    bytesReceived: 0,
    messagesOk: 0,
    problems: checker.problems,
    grpcStatus: undefined,
    grpcMessage: undefined,
    rstCode: undefined,
    stallAdvance: [],
    elapsedMs: 0,
  };
  const stallMarks = [...options.stallAt].sort((a, b) => a - b).map((f) => Math.floor(f * options.totalBytes));
  let burst = 0;
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  stream.on('data', (chunk: Buffer) => {
    result.bytesReceived += chunk.length;
    checker.push(chunk);
    burst += chunk.length;
    const mark = stallMarks[0];
    if (mark !== undefined && result.bytesReceived >= mark) {
      stallMarks.shift();
      burst = 0;
      stream.pause();
      const before = options.upstream?.bytesWritten ?? 0;
      later(options.stallMs, () => {
        result.stallAdvance.push((options.upstream?.bytesWritten ?? 0) - before);
        stream.resume();
      });
    } else if (burst >= options.burstBytes) {
      burst = 0;
      stream.pause();
      later(options.burstPauseMs, () => stream.resume());
    }
  });
  stream.on('trailers', (trailers: IncomingHttpHeaders) => {
    const status = trailers['grpc-status'];
    const message = trailers['grpc-message'];
    result.grpcStatus = typeof status === 'string' ? status : undefined;
    result.grpcMessage = typeof message === 'string' ? message : undefined;
  });
  stream.on('response', (headers: IncomingHttpHeaders, flags: number) => {
    if ((flags & constants.NGHTTP2_FLAG_END_STREAM) === 0) return;
    const status = headers['grpc-status'];
    const message = headers['grpc-message'];
    result.grpcStatus = typeof status === 'string' ? status : undefined;
    result.grpcMessage = typeof message === 'string' ? message : undefined;
  });

  const sampler = options.onSample === undefined ? undefined : setInterval(options.onSample, options.sampleEveryMs ?? 25);
  return new Promise<SlowReadResult>((resolve) => {
    let settled = false;
    const settle = (ended: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(limit);
      if (sampler !== undefined) clearInterval(sampler);
      for (const timer of timers) clearTimeout(timer);
      result.ended = ended;
      result.rstCode = stream.rstCode;
      result.messagesOk = checker.messagesOk;
      if (ended && checker.leftover > 0 && result.problems.length < 5) result.problems.push(`${checker.leftover} trailing bytes`);
      result.elapsedMs = Date.now() - started;
      session.destroy();
      resolve(result);
    };
    const limit = setTimeout(() => settle(false), options.limitMs);
    stream.once('close', () => settle(true));
  });
}
