/**
 * The HTTP/2 fuzzer's drivers (test/http2/fuzz.test.ts, bench/fuzz.ts), over fuzz-gen.ts's sessions.
 *
 * In process: each session gets a real ServerConnection over a FakeSocket (an EventEmitter with the socket API the
 * connection uses: write, cork/uncork, writableLength, end, destroy, setNoDelay; sometimes a slow or stalled reader,
 * so DATA blocks on congestion and the unread-output cap trips), and a handler that answers requests in the ways a
 * proxy does (unary, echo with credit on send, early response, reset, deferred, silent). Reads are fed
 * synchronously, the event loop turns between them (flushes), and after every read and every session the
 * invariants are checked; a violation throws FuzzFailure naming the seed and the session to replay.
 *
 * - No exception escapes the connection (each read is wrapped).
 * - Bounded memory per connection: the frame reader holds less than one frame, a header block in progress at
 *   most its limit, streams at most SETTINGS_MAX_CONCURRENT_STREAMS, DATA queued equal to what the streams hold.
 * - What the server writes is well-formed: every frame passes the frame checks, header blocks are contiguous and
 *   decode with a fresh HPACK decoder (the encoder stays in step), DATA and HEADERS only on odd streams and
 *   never after the server ended or reset that stream, nothing after a GOAWAY with an error code.
 * - After the socket closes: the connection is closed, its `streams` map empty, no DATA queued, every stream the
 *   handler was given ended or was reset, and streams opened = streams closed in the listener's hooks.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { setImmediate as turn } from 'node:timers/promises';
import { ErrorCode, FrameFlag, FrameType, type Http2Stream, type ResetReasonValue, type StreamHandler } from '../../data-plane/http2/connection.ts';
import { FRAME_HEADER_BYTES, FrameReader, MAX_FRAME_SIZE_LIMIT, checkFrame, framePayloadBody } from '../../data-plane/http2/frame.ts';
import { HpackDecoder } from '../../data-plane/http2/hpack.ts';
import { ServerConnection, type ServerHooks } from '../../data-plane/http2/server-connection.ts';
import { clientGoaway, generateSession, Rng, type GenOptions, type Mutation, type Session } from './fuzz-gen.ts';

export class FuzzFailure extends Error {}

const CODE_NAMES = Object.fromEntries(Object.entries(ErrorCode).map(([name, code]) => [code, name])) as Record<number, string>;
export const codeName = (code: number): string => CODE_NAMES[code] ?? `0x${code.toString(16)}`;

/** What a run did. */
export interface FuzzStats {
  sessions: number;
  frames: number;
  bytes: number;
  sessionKinds: Record<string, number>;
  mutations: Partial<Record<Mutation, number>>;
  /** How the server answered: GOAWAY and RST_STREAM codes it sent, and other outcomes. */
  goaway: Record<string, number>;
  rst: Record<string, number>;
  outcomes: Record<string, number>;
  /** GOAWAY debug texts (numbers elided), per session kind: why connections were failed. */
  reasons: Record<string, number>;
  /** Requests handed to the handler (in process), or responses the listener sent (through a data plane). */
  requests: number;
  elapsedMs: number;
  peakRss: number;
}

export function newStats(): FuzzStats {
  return { sessions: 0, frames: 0, bytes: 0, sessionKinds: {}, mutations: {}, goaway: {}, rst: {}, outcomes: {}, reasons: {}, requests: 0, elapsedMs: 0, peakRss: 0 };
}

function bump(record: Record<string, number>, key: string, by = 1): void {
  record[key] = (record[key] ?? 0) + by;
}

// ---- the fake socket -----------------------------------------------------------------------------------------------

export type ReaderSpeed = 'fast' | 'slow' | 'stalled';

/** The part of net.Socket a connection uses; written bytes go to `sink`. */
export class FakeSocket extends EventEmitter {
  destroyed = false;
  ended = false;
  writableLength = 0;
  readonly remoteAddress = '127.0.0.1';
  private needDrain = false;
  private readonly speed: ReaderSpeed;
  private readonly sink: (chunk: Buffer) => void;

  constructor(speed: ReaderSpeed, sink: (chunk: Buffer) => void) {
    super();
    this.speed = speed;
    this.sink = sink;
  }

  /** Callbacks of writes not completed yet (a write completes once the peer read everything before it). */
  private callbacks: (() => void)[] = [];

  write(chunk: Buffer | string, callback?: () => void): boolean {
    if (this.destroyed || this.ended) return false;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
    this.sink(bytes);
    if (this.speed === 'fast') {
      if (callback !== undefined) process.nextTick(callback);
      return true;
    }
    this.writableLength += bytes.length;
    if (callback !== undefined) this.callbacks.push(callback);
    const ok = this.writableLength < 16 * 1024;
    if (!ok) this.needDrain = true;
    return ok;
  }

  cork(): void {}
  uncork(): void {}
  setNoDelay(): this {
    return this;
  }

  end(chunk?: Buffer | string): this {
    if (chunk !== undefined) this.write(chunk);
    this.ended = true;
    return this;
  }

  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.writableLength = 0;
    this.completeWrites();
    process.nextTick(() => this.emit('close', false));
    return this;
  }

  private completeWrites(): void {
    const done = this.callbacks;
    this.callbacks = [];
    for (const callback of done) process.nextTick(callback);
  }

  /** The peer read `bytes` (a slow reader); 'drain' once all is read after a refused write. */
  read(bytes: number): void {
    if (this.speed !== 'slow' || this.destroyed) return;
    this.writableLength = Math.max(0, this.writableLength - bytes);
    if (this.writableLength === 0) this.completeWrites();
    if (this.writableLength === 0 && this.needDrain) {
      this.needDrain = false;
      this.emit('drain');
    }
  }
}

// ---- the server's output, checked ----------------------------------------------------------------------------------

/** Parses what the server wrote and checks it is well-formed HTTP/2; counts its GOAWAY and RST_STREAM codes. */
export class OutputChecker {
  private readonly reader: FrameReader;
  private readonly decoder = new HpackDecoder({ maxTableSize: 4096 });
  private block: Buffer[] | undefined;
  private blockStream = 0;
  private readonly ended = new Set<number>();
  private readonly reset = new Set<number>();
  private fatalGoaway = false;
  private prefaceSeen = false;
  /** Largest frame the server may send: SETTINGS_MAX_FRAME_SIZE as the connection applied it, at any time. */
  maxFrameSize = 16_384;
  problem: string | undefined;
  /** Response header blocks (:status) the server sent. */
  responses = 0;
  private readonly stats: FuzzStats;
  private readonly kind: string;

  constructor(stats: FuzzStats, kind: string) {
    this.stats = stats;
    this.kind = kind;
    this.reader = new FrameReader(this.onFrame, MAX_FRAME_SIZE_LIMIT);
  }

  push(chunk: Buffer): void {
    if (this.problem !== undefined) return;
    if (!this.prefaceSeen && chunk.subarray(0, 9).toString('latin1') === 'HTTP/1.1 ') {
      this.problem = undefined;
      this.prefaceSeen = true;
      bump(this.stats.outcomes, 'http1-505');
      this.reader.stop();
      return;
    }
    this.prefaceSeen = true;
    this.reader.push(chunk);
  }

  private fail(reason: string): void {
    this.problem ??= reason;
  }

  private readonly onFrame = (type: number, flags: number, id: number, payload: Buffer): void => {
    if (this.problem !== undefined) return;
    if (this.fatalGoaway) return this.fail(`frame type ${type} after GOAWAY with an error code`);
    if (payload.length > this.maxFrameSize) return this.fail(`frame of ${payload.length} bytes above the peer's max frame size ${this.maxFrameSize}`);
    if (this.block !== undefined && (type !== FrameType.CONTINUATION || id !== this.blockStream)) return this.fail('server interleaved a frame with a header block');
    const bad = checkFrame(type, flags, id, payload);
    if (bad !== undefined) return this.fail(`server sent a bad frame: ${bad.reason}`);
    switch (type) {
      case FrameType.HEADERS:
      case FrameType.DATA:
        if ((id & 1) === 0) return this.fail(`server sent type ${type} on even stream ${id}`);
        if (this.ended.has(id)) return this.fail(`server sent type ${type} on stream ${id} after END_STREAM`);
        if (this.reset.has(id)) return this.fail(`server sent type ${type} on stream ${id} after RST_STREAM`);
        if ((flags & FrameFlag.END_STREAM) !== 0) this.ended.add(id);
        if (type === FrameType.HEADERS) {
          this.block = [Buffer.from(framePayloadBody(type, flags, payload))]; // payloads are valid only during onFrame
          this.blockStream = id;
          if ((flags & FrameFlag.END_HEADERS) !== 0) this.endBlock();
        }
        return;
      case FrameType.CONTINUATION:
        if (this.block === undefined) return this.fail('server sent CONTINUATION without HEADERS');
        this.block.push(Buffer.from(payload));
        if ((flags & FrameFlag.END_HEADERS) !== 0) this.endBlock();
        return;
      case FrameType.RST_STREAM:
        this.reset.add(id);
        bump(this.stats.rst, codeName(payload.readUInt32BE(0)));
        return;
      case FrameType.GOAWAY: {
        const code = payload.readUInt32BE(4);
        bump(this.stats.goaway, codeName(code));
        if (payload.length > 8) bump(this.stats.reasons, `${this.kind}: ${payload.subarray(8).toString('latin1').replace(/\d+/g, 'N')}`);
        if (code !== ErrorCode.NO_ERROR) this.fatalGoaway = true;
        return;
      }
      case FrameType.PUSH_PROMISE:
        return this.fail('server sent PUSH_PROMISE');
      default:
        return;
    }
  };

  private endBlock(): void {
    const parts = this.block ?? [];
    this.block = undefined;
    try {
      const fields = this.decoder.decode(Buffer.concat(parts));
      if (fields.length === 0) this.fail('server sent an empty header block');
      if (fields[0] === ':status') this.responses++;
      const at = fields.indexOf('grpc-status');
      if (at >= 0 && at % 2 === 0) bump(this.stats.outcomes, `grpc-status ${String(fields[at + 1])}`);
    } catch (err) {
      this.fail(`server's header block does not decode: ${(err as Error).message}`);
    }
  }
}

// ---- the handler ---------------------------------------------------------------------------------------------------

type Mode = 'unary' | 'echo' | 'early' | 'reset' | 'deferred' | 'silent' | 'trailers-only';
const MODES: readonly Mode[] = ['unary', 'unary', 'echo', 'echo', 'early', 'reset', 'deferred', 'silent', 'trailers-only'];
const RESPONSE = [':status', '200', 'content-type', 'application/grpc', 'x-fuzz', 'yes'];
const TRAILERS = ['grpc-status', '0', 'grpc-message', 'fuzzed'];
/** Response DATA: views of one buffer (the engine never changes what it is given to send). */
const RESPONSE_BYTES = Buffer.alloc(40_000, 0x61);

/** Streams the handler was given and has not seen finish: the leak check after close. */
class Tracker {
  live = 0;
  given = 0;
}

/** Answers one stream in one of several ways a proxy does; never throws on a stream that went away. */
class FuzzStreamHandler implements StreamHandler {
  private readonly mode: Mode;
  private readonly rng: Rng;
  private readonly tracker: Tracker;
  private done = false;
  private headersSent = false;
  private responseBytes: number;

  constructor(mode: Mode, rng: Rng, tracker: Tracker) {
    this.mode = mode;
    this.rng = rng;
    this.tracker = tracker;
    this.responseBytes = rng.size(200_000);
    tracker.live++;
    tracker.given++;
  }

  start(stream: Http2Stream, endStream: boolean): void {
    switch (this.mode) {
      case 'early':
      case 'trailers-only':
        return this.respond(stream, this.mode === 'trailers-only');
      case 'echo':
        this.sendHeaders(stream);
        if (endStream) this.finish(stream);
        return;
      case 'deferred':
        setTimeout(() => this.respond(stream, false), this.rng.int(3));
        return;
      case 'reset':
        if (this.rng.chance(0.5)) this.resetNow(stream);
        return;
      default:
        if (endStream) this.respond(stream, false);
    }
  }

  private sendHeaders(stream: Http2Stream): void {
    if (this.headersSent) return;
    this.headersSent = true;
    stream.sendHeaders(RESPONSE, false);
  }

  private respond(stream: Http2Stream, trailersOnly: boolean): void {
    if (this.done) return;
    if (trailersOnly) {
      stream.sendHeaders([':status', '200', 'content-type', 'application/grpc', ...TRAILERS], true);
    } else {
      this.sendHeaders(stream);
      let left = this.responseBytes;
      while (left > 0) {
        const n = Math.min(left, 1 + this.rng.int(40_000));
        stream.sendData(RESPONSE_BYTES.subarray(0, n), false);
        left -= n;
      }
      stream.sendHeaders(TRAILERS, true);
    }
    this.settle();
  }

  private finish(stream: Http2Stream): void {
    if (this.done) return;
    stream.sendHeaders(TRAILERS, true);
    this.settle();
  }

  private resetNow(stream: Http2Stream): void {
    if (this.done) return;
    stream.reset(this.rng.chance(0.8) ? ErrorCode.CANCEL : ErrorCode.INTERNAL_ERROR);
    this.settle();
  }

  private settle(): void {
    if (this.done) return;
    this.done = true;
    this.tracker.live--;
  }

  onHeaders(stream: Http2Stream, _fields: string[], endStream: boolean): void {
    if (endStream) this.requestEnded(stream);
  }

  onData(stream: Http2Stream, data: Buffer, endStream: boolean): void {
    if (this.mode === 'echo' && !this.done) {
      // Credit goes back when the echo went out (onSent), as the proxy does.
      if (data.length > 0) stream.sendData(data, false);
    } else if (this.mode !== 'silent' || this.rng.chance(0.5)) {
      stream.consume(data.length);
    }
    if (this.mode === 'reset' && !this.done && this.rng.chance(0.3)) return this.resetNow(stream);
    if (endStream) this.requestEnded(stream);
  }

  private requestEnded(stream: Http2Stream): void {
    if (this.mode === 'echo') return this.finish(stream);
    if (this.mode === 'unary' || this.mode === 'reset') this.respond(stream, false);
  }

  onReset(_stream: Http2Stream, _code: number, _reason: ResetReasonValue): void {
    this.settle();
  }

  onSent(stream: Http2Stream, bytes: number): void {
    if (this.mode === 'echo') stream.consume(bytes);
  }
}

// ---- in process ----------------------------------------------------------------------------------------------------

export interface InProcessOptions {
  readonly seed: number;
  /** Stop after this many frames fed, or this much time, whichever comes first. */
  readonly maxFrames?: number;
  readonly budgetMs?: number;
  /** Stop after this many sessions (to replay up to a failing one). */
  readonly maxSessions?: number;
  readonly maxUnits?: number;
  /** Called every `progressEvery` sessions. */
  readonly onProgress?: (stats: FuzzStats) => void;
  readonly progressEvery?: number;
  /** Session index whose frames (in and out) are printed to stderr: replays a failure. */
  readonly trace?: number;
}

const IN_PROCESS_PATHS = ['/helloworld.Greeter/SayHello', '/helloworld.Greeter/SayHelloBidirectionalStream', '/x.Y/Z', '/'];
const MAX_CONCURRENT = 100;
const SERVER_SETTINGS = {
  headerTableSize: 4096,
  enablePush: false,
  maxConcurrentStreams: MAX_CONCURRENT,
  initialWindowSize: 65_535,
  maxFrameSize: 16_384,
  maxHeaderListSize: 32 * 1024,
};

/** Runs sessions against in-process ServerConnections until the frame or time budget is spent. */
export async function fuzzInProcess(options: InProcessOptions): Promise<FuzzStats> {
  const rng = new Rng(options.seed);
  const stats = newStats();
  const started = performance.now();
  const gen: GenOptions = { paths: IN_PROCESS_PATHS, maxUnits: options.maxUnits ?? 200 };
  const maxFrames = options.maxFrames ?? Number.POSITIVE_INFINITY;
  const budgetMs = options.budgetMs ?? Number.POSITIVE_INFINITY;
  const maxSessions = options.maxSessions ?? Number.POSITIVE_INFINITY;
  while (stats.frames < maxFrames && stats.sessions < maxSessions && performance.now() - started < budgetMs) {
    const session = generateSession(rng, gen);
    await runSession(rng, session, stats, options.seed, options.trace === stats.sessions);
    stats.sessions++;
    bump(stats.sessionKinds, session.kind);
    for (const [kind, n] of Object.entries(session.mutations)) bump(stats.mutations, kind, n);
    if (stats.sessions % 64 === 0) stats.peakRss = Math.max(stats.peakRss, process.memoryUsage.rss());
    if (options.onProgress !== undefined && stats.sessions % (options.progressEvery ?? 10_000) === 0) {
      stats.elapsedMs = performance.now() - started;
      options.onProgress(stats);
    }
  }
  stats.elapsedMs = performance.now() - started;
  stats.peakRss = Math.max(stats.peakRss, process.memoryUsage.rss());
  return stats;
}

// Private fields read for the memory bounds (no accessor in the engine for them).
interface ConnectionInternals {
  reader: FrameReader;
  blockBytes: number;
  maxBlockBytes: number;
  recentResets: number[] | undefined;
  blockedStreams: Http2Stream[];
}

/** Prints the frames of a byte stream as they are cut (the trace of one session). */
function tracer(label: string): (chunk: Buffer) => void {
  let preface = label === 'in' ? 24 : 0;
  const reader = new FrameReader((type, flags, id, payload) => {
    const extra = type === FrameType.RST_STREAM || type === FrameType.WINDOW_UPDATE ? ` value=${payload.readUInt32BE(0)}` : type === FrameType.GOAWAY && payload.length >= 8 ? ` last=${payload.readUInt32BE(0)} code=${payload.readUInt32BE(4)} ${payload.subarray(8).toString()}` : '';
    process.stderr.write(`${label} type=${type} flags=0x${flags.toString(16)} stream=${id} len=${payload.length}${extra}\n`);
  }, MAX_FRAME_SIZE_LIMIT);
  return (chunk) => {
    let rest = chunk;
    if (preface > 0) {
      const n = Math.min(preface, rest.length);
      preface -= n;
      rest = rest.subarray(n);
    }
    process.stderr.write(`${label} read of ${chunk.length} bytes\n`);
    reader.push(Buffer.from(rest));
  };
}

async function runSession(rng: Rng, session: Session, stats: FuzzStats, seed: number, trace: boolean): Promise<void> {
  const index = stats.sessions;
  const fail = (what: string): never => {
    throw new FuzzFailure(`seed ${seed}, session ${index} (${session.kind}): ${what}`);
  };
  const checker = new OutputChecker(stats, session.kind);
  const speedRoll = rng.next();
  const speed: ReaderSpeed = speedRoll < 0.75 ? 'fast' : speedRoll < 0.95 ? 'slow' : 'stalled';
  const traceOut = trace ? tracer('out') : undefined;
  const traceIn = trace ? tracer('in') : undefined;
  const socket = new FakeSocket(speed, (chunk) => {
    traceOut?.(chunk);
    checker.push(chunk);
  });
  const tracker = new Tracker();
  let opened = 0;
  let closed = 0;
  let connClosedHook = 0;
  const hooks: ServerHooks = {
    onRequest(stream, _fields, endStream) {
      stats.requests++;
      const handler = new FuzzStreamHandler(rng.pick(MODES), rng, tracker);
      stream.handler = handler;
      handler.start(stream, endStream);
    },
    onConnectionClosed() {
      connClosedHook++;
    },
    onStreamOpened() {
      opened++;
    },
    onStreamClosed() {
      closed++;
    },
    onLimit(_conn, kind) {
      bump(stats.outcomes, `limit:${kind}`);
    },
  };
  const conn = new ServerConnection(
    socket as unknown as Socket,
    { settings: { ...SERVER_SETTINGS }, connectionWindow: 1 << 20, highWaterBytes: 64 * 1024, maxOutputBytes: 1 << 20 },
    { keepaliveRequests: rng.chance(0.1) ? rng.range(1, 20) : 1000, prematureResetTotalStreamCount: 50, prematureResetMinStreamLifetimeMs: 1000 },
    hooks,
    'HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-length: 0\r\n\r\n',
  );
  const internals = conn as unknown as ConnectionInternals;
  // The largest SETTINGS_MAX_FRAME_SIZE the connection ever applied bounds what it may have written.
  let peerMaxFrameSize = conn.peer.maxFrameSize;
  Object.defineProperty(conn.peer, 'maxFrameSize', {
    get: () => peerMaxFrameSize,
    set: (value: number) => {
      peerMaxFrameSize = value;
      if (value > checker.maxFrameSize) checker.maxFrameSize = value;
    },
  });
  const maxReaderBytes = FRAME_HEADER_BYTES + SERVER_SETTINGS.maxFrameSize;

  const checkBounds = (): void => {
    if (internals.reader.buffered >= maxReaderBytes) fail(`frame reader holds ${internals.reader.buffered} bytes`);
    if (internals.blockBytes > internals.maxBlockBytes) fail(`header block of ${internals.blockBytes} bytes buffered`);
    if (conn.streams.size > MAX_CONCURRENT) fail(`${conn.streams.size} streams open, above SETTINGS_MAX_CONCURRENT_STREAMS`);
    if ((internals.recentResets?.length ?? 0) > 32) fail('recent resets unbounded');
    let queued = 0;
    for (const stream of conn.streams.values()) queued += stream.queueBytes;
    if (queued !== conn.queuedBytes) fail(`queuedBytes ${conn.queuedBytes} but streams hold ${queued}`);
    if (checker.problem !== undefined) fail(checker.problem);
  };

  const feed = (chunk: Buffer): void => {
    traceIn?.(chunk);
    try {
      socket.emit('data', chunk);
    } catch (err) {
      fail(`exception escaped the connection: ${(err as Error).stack ?? String(err)}`);
    }
  };

  let lastStream = 0;
  for (let read = session.nextRead(); read !== undefined; read = session.nextRead()) {
    if (conn.closed || socket.destroyed) break;
    feed(read.bytes);
    stats.frames += read.frames;
    stats.bytes += read.bytes.length;
    for (const id of conn.streams.keys()) if (id > lastStream) lastStream = id;
    checkBounds();
    if (rng.chance(0.5)) {
      await turn(); // the connection's flush
      socket.read(rng.size(64 * 1024));
      checkBounds();
    }
  }
  await turn();
  checkBounds();
  // The end: the client closes, or says GOAWAY first, or the server shuts down gracefully.
  if (!conn.closed) {
    if (session.ending === 'goaway' && !socket.destroyed) {
      feed(clientGoaway(lastStream));
      await turn();
    } else if (session.ending === 'server-shutdown') {
      try {
        conn.shutdown();
      } catch (err) {
        fail(`exception from shutdown(): ${(err as Error).stack ?? String(err)}`);
      }
      await turn();
      socket.read(1 << 30);
      await turn();
    }
    bump(stats.outcomes, (conn.closed as boolean) ? 'closed-by-server' : 'closed-by-client'); // it may have closed meanwhile
  } else {
    bump(stats.outcomes, 'closed-by-server');
  }
  checkBounds();
  socket.destroy();
  await turn();
  await turn();
  // Invariants of a closed connection.
  if (!conn.closed) fail('connection not closed after its socket closed');
  if (conn.streams.size !== 0) fail(`${conn.streams.size} streams left in the closed connection's map`);
  if (conn.queuedBytes !== 0) fail(`${conn.queuedBytes} bytes of DATA still queued after close`);
  if (internals.blockedStreams.length !== 0) fail(`${internals.blockedStreams.length} blocked streams kept after close`);
  if (tracker.live !== 0) fail(`${tracker.live} of ${tracker.given} streams given to the handler neither ended nor reset`);
  if (opened !== closed) fail(`streams opened ${opened} != closed ${closed} in the listener's hooks`);
  if (connClosedHook !== 1) fail(`onConnectionClosed called ${connClosedHook} times`);
  if (checker.problem !== undefined) fail(checker.problem);
}

// ---- formatting ----------------------------------------------------------------------------------------------------

export function formatStats(stats: FuzzStats, label: string): string {
  const seconds = stats.elapsedMs / 1000;
  const lines = [
    `${label}: ${stats.frames.toLocaleString('en-US')} frames (${stats.bytes.toLocaleString('en-US')} bytes) in ${stats.sessions.toLocaleString('en-US')} connections, ` +
      `${seconds.toFixed(1)} s, ${Math.round(stats.frames / Math.max(seconds, 1e-9)).toLocaleString('en-US')} frames/s, ${stats.requests.toLocaleString('en-US')} requests served`,
    `  sessions:  ${JSON.stringify(stats.sessionKinds)}`,
    `  mutations: ${JSON.stringify(stats.mutations)}`,
    `  GOAWAY sent by the server, per code: ${JSON.stringify(stats.goaway)}`,
    `  RST_STREAM sent by the server, per code: ${JSON.stringify(stats.rst)}`,
    `  outcomes:  ${JSON.stringify(stats.outcomes)}`,
    `  peak RSS:  ${(stats.peakRss / 1024 / 1024).toFixed(1)} MiB`,
  ];
  return lines.join('\n');
}
