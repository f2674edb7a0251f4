/**
 * The slow-reader scenario of issue #3: a server-streaming call of many large messages from the bulk upstream
 * (test/flow/bulk-upstream.ts), through a gateway, to a raw node:http2 client that reads in bursts and stalls.
 *
 * The client reads `burstBytes`, pauses `burstPauseMs` (stream.pause()/resume(), so Node stops returning HTTP/2
 * window to the gateway), and at each of `stallAt` (fractions of the total) stalls for `stallMs`, recording how far
 * the upstream advanced meanwhile. It checks order, length and content of every message while holding at most
 * one partial message.
 *
 * Used by test/flow/slow-reader-memory.test.ts and bench/memory-slow-reader.ts.
 */
import http2, { constants, type IncomingHttpHeaders } from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BULK_PATH,
  GRPC_PREFIX_BYTES,
  MESSAGE_HEADER,
  TOTAL_HEADER,
  patternFor,
  type BulkStats,
} from './bulk-upstream.ts';
import type { ChildGateway } from './child-gateway.ts';

export { BULK_PATH, startBulkUpstream, type BulkStats, type BulkUpstream } from './bulk-upstream.ts';

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
    if (frame[0] !== 0) problem = `message ${seq}: compressed flag ${String(frame[0])}`;
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

// ---- start-up --------------------------------------------------------------------------------------------------

/** Polls the gateway with a tiny call until the route answers (grpc-status 0), bounded by `limitMs`. */
export async function waitUntilRouted(gateway: ChildGateway, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    if (gateway.exited) throw new Error(`the gateway exited during start-up:\n${gateway.output()}`);
    last = await probe(gateway.h2cAddress);
    if (last === 'grpc-status 0') return;
    await sleep(100);
  }
  throw new Error(`the gateway did not route ${BULK_PATH} within ${limitMs} ms (last probe: ${last})\n${gateway.output()}`);
}

/** One tiny bulk call (one message); returns what happened, never throws. */
function probe(target: string): Promise<string> {
  return new Promise((resolve) => {
    const session = http2.connect(`http://${target}`);
    const timer = setTimeout(() => finish('probe timed out'), 2_000);
    let status: string | undefined;
    function finish(outcome: string): void {
      clearTimeout(timer);
      session.destroy();
      resolve(outcome);
    }
    session.on('error', (err: Error) => finish(`session error: ${err.message}`));
    session.on('connect', () => {
      const stream = session.request({
        ':method': 'POST',
        ':path': BULK_PATH,
        'content-type': 'application/grpc',
        te: 'trailers',
        [TOTAL_HEADER]: '16',
        [MESSAGE_HEADER]: '16',
      });
      stream.on('error', () => undefined);
      stream.on('response', (headers) => {
        const s = headers['grpc-status'];
        if (typeof s === 'string') status = s;
      });
      stream.on('trailers', (trailers: IncomingHttpHeaders) => {
        const s = trailers['grpc-status'];
        if (typeof s === 'string') status = s;
      });
      stream.resume();
      stream.on('close', () => finish(status === undefined ? `closed with rst ${String(stream.rstCode)}` : `grpc-status ${status}`));
      stream.end(Buffer.alloc(5));
    });
  });
}
