/**
 * One HTTP/2 connection of the gateway's own engine (RFC 9113), either leg: the frame loop, SETTINGS and their ACK,
 * PING, GOAWAY, RST_STREAM, header blocks (HEADERS + CONTINUATION, with limits) through HPACK, stream states, and
 * flow control in both directions. server-connection.ts (client connections on the listeners) and
 * client-connection.ts (pooled upstream connections) add what only one side does: the preface and request checks,
 * opening streams.
 *
 * Streams are small objects with one handler (the proxy's call on the listener leg, its attempt on the upstream leg)
 * that gets headers, DATA slices, resets, and "these bytes you queued went out". The relay joins two streams:
 *
 * - Backpressure end to end. A DATA payload is handed to the handler as bytes valid during the call (a slice of the
 *   shared read buffer, or the stream's consecutive frames of one read joined); the handler
 *   queues it on the other leg's stream (the engine copies what it keeps) and gives the stream's credit back to the sender (`consume`) only when
 *   that stream reports the bytes sent (`onSent`). A stalled reader therefore stops its sender at one stream
 *   window: the gateway never holds more than the stream windows it advertised. The connection window is credited
 *   on arrival, so that one stalled stream never stops the others sharing its connection. DATA also waits while the socket is congested (bytes handed to the
 *   kernel not yet taken), so a peer that stops reading its socket costs no more than a window either.
 * - Batched writes. Frames are appended to one output list per connection; the lists of every connection that wrote
 *   are flushed once per event-loop turn (setImmediate after the reads of the turn), one write per socket.
 * - Exact limits. Our SETTINGS (concurrent streams, header list size, windows) are enforced from the first frame,
 *   header blocks are bounded in bytes and frames (CONTINUATION floods), and a peer whose unread output passes a
 *   cap is disconnected.
 * - Errors (§5.4). A connection error sends GOAWAY with the code and closes; a stream error sends RST_STREAM and the
 *   connection goes on. Frames on streams we reset are ignored (§5.1 "closed"), up to a small memory of them.
 */
import type { GatewayError } from '../../shared/errors.ts';
import type { Socket } from 'node:net';
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_SIZE,
  ErrorCode,
  FRAME_HEADER_BYTES,
  FrameFlag,
  FrameReader,
  FrameType,
  checkFrame,
  framePayloadBody,
  writeFrameHeader,
} from './frame.ts';
import { HeaderListTooLarge, HpackCompressionError, HpackDecoder } from './hpack.ts';
import { encodedOutput, HpackEncoder } from './hpack-encoder.ts';
import { type Http2Settings, MAX_WINDOW_SIZE, SettingId, applySettings, initialSettings, settingsToSend } from './settings.ts';
import { StreamState, afterReceive, afterSend } from './stream-state.ts';
import { validFieldName, validFieldValue } from './fields.ts';
import { readSocket } from './socket-reader.ts';

/** Why a stream ended without its normal end. */
export const ResetReason = {
  /** The peer sent RST_STREAM (the code says why; REFUSED_STREAM means it was never processed). */
  PEER: 0,
  /** The peer never processed it: above the last-stream-id of its GOAWAY (RFC 9113 §6.8). Safe to retry. */
  UNPROCESSED: 1,
  /** The connection went away (socket closed, connection error). */
  LOST: 2,
  /** We reset it because the peer broke the protocol on it (a stream error, §5.4.2). */
  PROTOCOL: 3,
} as const;
export type ResetReasonValue = (typeof ResetReason)[keyof typeof ResetReason];

/** What a stream tells its owner. Methods, not closures: the owner object is the handler. */
export interface StreamHandler<S = Http2Stream> {
  /** A header block: response headers or trailers (upstream leg), request trailers (listener leg). */
  onHeaders(stream: S, fields: string[], endStream: boolean): void;
  /**
   * A DATA payload: a slice of the bytes read, valid only during the call (the read buffer is reused; copy what
   * you keep; sendData copies), unless `owned`: then it is a copy already, the handler's to keep. Give the credit
   * back with stream.consume().
   */
  onData(stream: S, data: Buffer, endStream: boolean, owned?: boolean): void;
  /** The stream ended abnormally; it is closed and forgotten by the connection. */
  onReset(stream: S, code: number, reason: ResetReasonValue): void;
  /** `bytes` of DATA queued with sendData() went out to the socket. */
  onSent(stream: S, bytes: number): void;
  /**
   * The request cannot be read on (a wrapping stream found its body malformed, proxy/downstream.ts): answer it with
   * this error. Handlers without it see a reset.
   */
  onMalformed?(stream: S, err: GatewayError): void;
}

export interface ConnectionOptions {
  /** What we announce; enforced from the start (never more permissive than what the peer may assume). */
  readonly settings: Http2Settings;
  /** Our connection-level receive window (RFC 9113 §6.9.2: raised from 65,535 by a WINDOW_UPDATE at start). */
  readonly connectionWindow: number;
  /** Unread output (queued + in the kernel's hands) above which DATA waits. */
  readonly highWaterBytes?: number;
  /** Unread output above which the peer is dropped: it does not read what it asks for (PING, SETTINGS floods). */
  readonly maxOutputBytes?: number;
}

/** DATA waits while this much output is unread by the socket. */
const DEFAULT_HIGH_WATER = 256 * 1024;
/** Frames of one header block: CONTINUATION floods (CVE-2024-27316) end here. */
const MAX_HEADER_BLOCK_FRAMES = 512;
/**
 * Every frame of every connection is written into an output slab shared by the process (DATA payloads too: the
 * bytes read live in a buffer that the next read reuses, socket-reader.ts), each connection extending its own run
 * of the slab while nothing else wrote after it. An idle connection then holds no output buffer at all (a private
 * 16 KiB arena was most of an idle connection's cost), and a busy turn still hands each socket one contiguous run.
 *
 * Slabs are reused, so that relaying allocates nothing per byte: the slabs filled during a turn are free again once
 * every run of the turn went to its socket, unless a socket queued the write (the kernel did not take it all): a
 * slab with slices in a socket's queue is reused only after those writes completed. Before this, each 64 KiB read
 * was a new ArrayBuffer, and that external memory drove V8 to a full mark-compact every few MiB relayed.
 */
const SLAB_BYTES = 256 * 1024;
/** Free slabs kept for reuse (a turn that wrote more than this many slabs allocates the rest). */
const MAX_FREE_SLABS = 16;
let slab: Buffer = Buffer.allocUnsafeSlow(SLAB_BYTES);
let slabPos = 0;
/** Slabs filled during this turn before the current one, and slabs free for reuse. */
const spentSlabs: Buffer[] = [];
const freeSlabs: Buffer[] = [];
/** Slabs that sockets hold slices of in queued writes: how many writes hold each. */
const heldSlabs = new WeakMap<ArrayBufferLike, number>();

/** Counters of the output slabs since the process started (tests and benchmarks read them). */
export const slabStats = {
  /** Slabs allocated (the first one included; a slab reused does not count). */
  allocated: 1,
  /** Writes a socket queued while they held slices of slabs, and of those, how many completed. */
  heldWrites: 0,
  releasedWrites: 0,
};
/**
 * DATA of one stream in consecutive frames of a read is delivered to its handler once, joined here (a server stream
 * of small messages arrives as a frame per message: one handler call per read instead of per frame). Shared by the
 * process: a connection delivers what it joined before its read callback returns.
 */
const JOIN_BYTES = 64 * 1024;
const joined: Buffer = Buffer.allocUnsafeSlow(JOIN_BYTES);
let joinedBytes = 0;
let joinedStream: Http2Stream | undefined;
/** A joined delivery is running: frames read meanwhile (a handler that feeds a peer in process) are not joined. */
let deliveringJoined = false;

/** Flushes of at most this many bytes in several runs are joined into one buffer (from Node's pool); larger, one writev. */
const CONCAT_LIMIT = 2048;
/** Streams we reset and whose late frames we ignore (§5.1): how many are remembered per connection. */
const RECENT_RESETS = 32;
/** Header blocks up to this size are copied octet by octet: cheaper than Buffer#copy's checks for tens of octets. */
const SMALL_COPY = 128;
const EMPTY = Buffer.alloc(0);
/** The streams of a connection that never opened one (never written to: trackStream makes a map of its own). */
const NO_STREAMS: ReadonlyMap<number, Http2Stream> = new Map();

export class Http2Stream {
  /** 0 while an upstream stream waits for room under the peer's SETTINGS_MAX_CONCURRENT_STREAMS. */
  id: number;
  readonly conn: Http2Connection;
  handler: StreamHandler | undefined;
  state: number = StreamState.IDLE;
  sendWindow: number;
  /** Receive window left for the peer on this stream, and credit owed to it. */
  recvAvailable: number;
  recvOwed = 0;
  /** Bytes received and not consumed yet (their stream window is owed back once they are used). */
  unconsumed = 0;
  /** DATA queued for sending, in order; `queueEnd`: END_STREAM after it; `queueTrailers`: a final header block. */
  queue: Buffer[] | undefined;
  queueHead = 0;
  queueBytes = 0;
  queueEnd = false;
  queueTrailers: string[] | undefined;
  /** Waiting in the connection's list for window or socket room. */
  blocked = false;
  /** Header blocks received (0 until the first); a second one must end the stream (trailers). */
  headerBlocks = 0;
  /** content-length of the request/response, -1 when absent; DATA bytes seen (RFC 9113 §8.1.1). */
  contentLength = -1;
  dataSeen = 0;
  /** Frames that arrived before the listener leg handed the stream to its handler (same read). */
  inbox: (Buffer | string[] | boolean)[] | undefined;
  /** Set when the stream left the connection (closed or reset): late calls are no-ops. */
  removed = false;
  /** For the owner's bookkeeping (e.g. when it started, for premature-reset accounting). */
  openedAt = 0;
  /** The RST_STREAM code that ended it (ours or the peer's); −1 while none. */
  resetCode = -1;
  /** We sent END_STREAM (the response or request is complete on our side). */
  ended = false;

  constructor(conn: Http2Connection, id: number, sendWindow: number, recvWindow: number) {
    this.conn = conn;
    this.id = id;
    this.sendWindow = sendWindow;
    this.recvAvailable = recvWindow;
  }

  get localClosed(): boolean {
    return this.state === StreamState.HALF_CLOSED_LOCAL || this.state === StreamState.CLOSED;
  }

  get remoteClosed(): boolean {
    return this.state === StreamState.HALF_CLOSED_REMOTE || this.state === StreamState.CLOSED;
  }

  /** Bytes queued and not yet sent. */
  get pendingBytes(): number {
    return this.queueBytes;
  }

  sendHeaders(fields: string[], endStream: boolean): void {
    this.conn.sendHeaders(this, fields, endStream);
  }

  sendData(data: Buffer, endStream: boolean): void {
    this.conn.sendData(this, data, endStream);
  }

  /** RST_STREAM with `code`; the handler hears nothing more. */
  reset(code: number): void {
    this.conn.resetStream(this, code);
  }

  /** `bytes` of received DATA were used (sent on, or dropped): credit them back to the peer. */
  consume(bytes: number): void {
    this.conn.consume(this, bytes);
  }
}

/** Connections with output this turn; flushed together after the turn's reads. */
const dirty: Http2Connection[] = [];
let flushScheduled = false;

function flushAll(): void {
  flushScheduled = false;
  // A flush can make more output (a handler's onSent queues a WINDOW_UPDATE elsewhere): loop until quiet.
  for (let i = 0; i < dirty.length; i++) dirty[i]?.flush();
  dirty.length = 0;
  recycleSlabs();
}

/** After every run of the turn went to its socket: the turn's slabs are free again unless a socket holds them. */
function recycleSlabs(): void {
  for (const spent of spentSlabs) if (!heldSlabs.has(spent.buffer)) freeSlab(spent);
  spentSlabs.length = 0;
  // A held current slab goes on after what is held; a free one starts over.
  if (!heldSlabs.has(slab.buffer)) slabPos = 0;
}

function freeSlab(free: Buffer): void {
  if (freeSlabs.length < MAX_FREE_SLABS) freeSlabs.push(free);
}

/** A new current slab with room for `bytes`. */
function nextSlab(bytes: number): void {
  // A held slab is freed when the last write holding it completes (releaseSlabs).
  if (slab.length === SLAB_BYTES && !heldSlabs.has(slab.buffer)) spentSlabs.push(slab);
  const free = bytes <= SLAB_BYTES ? freeSlabs.pop() : undefined;
  if (free === undefined) slabStats.allocated++;
  slab = free ?? Buffer.allocUnsafeSlow(Math.max(bytes, SLAB_BYTES));
  slabPos = 0;
}

/** A socket queued a write with slices of `out`: their slabs wait for it. */
function holdSlabs(socket: Socket, out: readonly Buffer[]): void {
  let held: ArrayBufferLike[] | undefined;
  for (const chunk of out) {
    const memory = chunk.buffer;
    if (memory.byteLength !== SLAB_BYTES || held?.includes(memory) === true) continue;
    heldSlabs.set(memory, (heldSlabs.get(memory) ?? 0) + 1);
    (held ??= []).push(memory);
  }
  // Writes complete in order: an empty one after them says when the socket is done with these.
  if (held === undefined) return;
  slabStats.heldWrites++;
  socket.write(EMPTY, () => releaseSlabs(held));
}

function releaseSlabs(held: readonly ArrayBufferLike[]): void {
  slabStats.releasedWrites++;
  for (const memory of held) {
    const holds = (heldSlabs.get(memory) ?? 1) - 1;
    if (holds > 0) {
      heldSlabs.set(memory, holds);
      continue;
    }
    heldSlabs.delete(memory);
    // Free at the end of the turn, never before: a connection may still have a run in it that is not flushed yet
    // (the write that held it was another connection's). The current slab starts over then by itself.
    if (memory !== slab.buffer && !spentSlabs.some((spent) => spent.buffer === memory)) spentSlabs.push(Buffer.from(memory));
  }
}

export abstract class Http2Connection {
  readonly socket: Socket;
  readonly ours: Http2Settings;
  readonly peer: Http2Settings = initialSettings();
  /** Open streams by id; a connection that never had one shares an empty map (see trackStream). */
  streams: ReadonlyMap<number, Http2Stream> = NO_STREAMS;
  protected readonly decoder: HpackDecoder;
  protected readonly encoder: HpackEncoder;
  protected readonly reader: FrameReader;
  /** Send window of the connection, and what we allow the peer on it. */
  protected sendWindow = 65_535;
  protected recvAvailable: number;
  protected recvOwed = 0;
  protected readonly recvTarget: number;
  /** Streams with queued DATA waiting for the connection window or socket room. */
  private blockedStreams: Http2Stream[] = [];
  /** The peer's first SETTINGS arrived (§3.4: it must be the first frame). */
  protected peerSettingsSeen = false;
  /** A header block in progress: its stream, flags of the HEADERS, fragments, frame count. */
  private blockStream = 0;
  private blockFlags = 0;
  /** Fragments of a header block in CONTINUATION frames (allocated by the first such block). */
  private blockParts: Buffer[] | undefined;
  private blockBytes = 0;
  private blockFrames = 0;
  private readonly maxBlockBytes: number;
  /** GOAWAY sent (graceful or not) and received. */
  goawaySent = false;
  goawayReceived = false;
  closed = false;
  /** Output: buffers in order, an arena for small frames. */
  private out: Buffer[] = [];
  private outBytes = 0;
  /** The slab this connection's open run of small frames lives in (EMPTY: none). */
  private arena: Buffer = EMPTY;
  private arenaStart = 0;
  private arenaPos = 0;
  /** The last DATA frame written in our run (its header's offset, -1: none), its stream and where it ends. */
  private lastDataAt = -1;
  private lastDataStream = 0;
  private lastDataEnd = -1;
  private isDirty = false;
  private readonly highWater: number;
  private readonly maxOutput: number;
  private recentResets: number[] | undefined;
  private recentResetAt = 0;
  /** Bytes of DATA queued on streams, not yet written (engine stats). */
  queuedBytes = 0;
  lastActivity = Date.now();

  protected constructor(socket: Socket, options: ConnectionOptions) {
    this.socket = socket;
    this.ours = options.settings;
    this.recvTarget = options.connectionWindow;
    this.recvAvailable = 65_535;
    this.highWater = options.highWaterBytes ?? DEFAULT_HIGH_WATER;
    this.maxOutput = options.maxOutputBytes ?? 16 * 1024 * 1024;
    this.decoder = new HpackDecoder({ maxTableSize: this.ours.headerTableSize, maxHeaderListSize: this.ours.maxHeaderListSize });
    this.encoder = new HpackEncoder();
    this.reader = new FrameReader(this, this.ours.maxFrameSize);
    // Compressed blocks are about the size of the list; twice the list limit leaves room for encoders that do not
    // index, and bounds what a peer can make us buffer before HPACK has seen a byte.
    const listLimit = Number.isFinite(this.ours.maxHeaderListSize) ? this.ours.maxHeaderListSize : 256 * 1024;
    this.maxBlockBytes = Math.max(64 * 1024, 2 * listLimit);
    // Nagle would hold the second small write of a turn for the peer's ACK: one flush per turn is our batching.
    if (typeof socket.setNoDelay === 'function') socket.setNoDelay(true);
    // Bound methods rather than arrow fields: an idle connection is mostly its closures otherwise (each arrow
    // function that a loader gives a name, as tsx did, gets its own 256-byte property store).
    readSocket(socket, this.onSocketBytes.bind(this));
    socket.on('drain', this.resumeBlocked.bind(this));
    const gone = this.onSocketGone.bind(this);
    socket.on('error', gone);
    socket.on('close', gone);
  }

  /** Our preface part: SETTINGS and the connection window raise (the client leg writes the magic first). */
  protected sendPreface(): void {
    const pairs = settingsToSend(this.ours);
    const at = this.reserve(FRAME_HEADER_BYTES + pairs.length * 6 + FRAME_HEADER_BYTES + 4);
    writeFrameHeader(this.arena, at, pairs.length * 6, FrameType.SETTINGS, 0, 0);
    let p = at + FRAME_HEADER_BYTES;
    for (const [id, value] of pairs) {
      this.arena.writeUInt16BE(id, p);
      this.arena.writeUInt32BE(value, p + 2);
      p += 6;
    }
    let end = p;
    if (this.recvTarget > 65_535) {
      writeFrameHeader(this.arena, p, 4, FrameType.WINDOW_UPDATE, 0, 0);
      this.arena.writeUInt32BE(this.recvTarget - 65_535, p + FRAME_HEADER_BYTES);
      this.recvAvailable = this.recvTarget;
      end = p + FRAME_HEADER_BYTES + 4;
    }
    this.commit(end);
    this.markDirty();
  }

  // ---- reading ------------------------------------------------------------------------------------------------

  /** Bytes read: `buffer[0, length)`, valid only during the call (socket-reader.ts); what we keep is copied. */
  private onSocketBytes(buffer: Buffer, length: number): void {
    if (this.closed) return;
    this.lastActivity = Date.now();
    const rest = this.beforeFrames(length === buffer.length ? buffer : buffer.subarray(0, length));
    // `as boolean`: each call above may close the connection, which TypeScript's narrowing does not see.
    if ((this.closed as boolean) || rest === undefined || rest.length === 0) return;
    const err = this.reader.push(rest);
    this.deliverJoined();
    if (err !== undefined) this.connectionError(err.code, err.reason);
    if (!(this.closed as boolean)) this.afterRead();
  }

  /** DATA joined from this read's frames goes to its stream now (before any other frame, error or the read's end). */
  private deliverJoined(): void {
    const stream = joinedStream;
    if (stream === undefined) return;
    joinedStream = undefined;
    const bytes = joinedBytes;
    joinedBytes = 0;
    if (stream.removed) return;
    deliveringJoined = true;
    try {
      stream.conn.deliverData(stream, joined.subarray(0, bytes), false);
    } finally {
      deliveringJoined = false;
    }
  }

  /** The bytes before frames (the server's preface check); returns what is left for the frame reader. */
  protected beforeFrames(chunk: Buffer): Buffer | undefined {
    return chunk;
  }

  /** Called after each read was parsed (the listener leg dispatches new streams here). */
  protected afterRead(): void {}

  /** One frame from the reader (FrameSink). */
  onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    if (this.closed) return;
    if (joinedStream !== undefined && (type !== FrameType.DATA || id !== joinedStream.id)) this.deliverJoined();
    if (this.blockStream !== 0 && (type !== FrameType.CONTINUATION || id !== this.blockStream)) {
      return this.connectionError(ErrorCode.PROTOCOL_ERROR, 'frame interleaved with a header block');
    }
    if (!this.peerSettingsSeen && (type !== FrameType.SETTINGS || (flags & FrameFlag.ACK) !== 0)) {
      return this.connectionError(ErrorCode.PROTOCOL_ERROR, 'the first frame is not SETTINGS');
    }
    const bad = checkFrame(type, flags, id, payload);
    if (bad !== undefined) {
      // A stream error on an idle stream cannot be one: RST_STREAM may not name an idle stream (§6.4).
      if (bad.connection || this.isIdle(id)) return this.connectionError(bad.code, bad.reason);
      return this.streamError(id, bad.code);
    }
    switch (type) {
      case FrameType.DATA:
        return this.onDataFrame(flags, id, payload);
      case FrameType.HEADERS:
        return this.onHeadersFrame(flags, id, payload);
      case FrameType.PRIORITY:
        // §5.3.2: ignored, but a stream may not depend on itself (§5.3.1); on an idle stream, a connection error.
        if ((payload.readUInt32BE(0) & 0x7fffffff) === id) {
          if (this.isIdle(id)) return this.connectionError(ErrorCode.PROTOCOL_ERROR, `PRIORITY: stream ${id} depends on itself`);
          this.streamError(id, ErrorCode.PROTOCOL_ERROR);
        }
        return;
      case FrameType.RST_STREAM:
        return this.onRstFrame(id, payload.readUInt32BE(0));
      case FrameType.SETTINGS:
        return this.onSettingsFrame(flags, payload);
      case FrameType.PUSH_PROMISE:
        // Clients may not push; we tell servers not to (ENABLE_PUSH 0): either way a protocol error (§8.4).
        return this.connectionError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE');
      case FrameType.PING:
        if ((flags & FrameFlag.ACK) !== 0) return this.onPingAck(payload);
        return this.writePing(payload, true);
      case FrameType.GOAWAY:
        this.goawayReceived = true;
        return this.onGoaway(payload.readUInt32BE(0) & 0x7fffffff, payload.readUInt32BE(4));
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(id, payload.readUInt32BE(0) & 0x7fffffff);
      case FrameType.CONTINUATION:
        return this.onContinuation(flags, id, payload);
      default:
        return; // §4.1, §5.5: unknown frame types are ignored
    }
  }

  /** Whether `id` is a stream the peer could not have used yet (idle, §5.1). */
  protected abstract isIdle(id: number): boolean;

  private onDataFrame(flags: number, id: number, payload: Buffer): void {
    const length = payload.length;
    if (length > this.recvAvailable) return this.connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    this.recvAvailable -= length;
    // The connection window is credited on arrival, the stream window only once the bytes were used (consume):
    // what we hold is bounded per stream by its window, and one stalled stream never blocks the others (a shared
    // upstream connection carries many clients' calls). Same policy as nghttp2's automatic connection updates.
    this.creditConnection(length);
    const stream = this.streams.get(id);
    if (stream === undefined) {
      if (this.isIdle(id)) return this.connectionError(ErrorCode.PROTOCOL_ERROR, `DATA on idle stream ${id}`);
      return this.closedStreamFrame(id);
    }
    const next = afterReceive(stream.state as 0, FrameType.DATA, flags);
    if (next < 0) return this.streamError(id, -next);
    if (length > stream.recvAvailable) return this.streamError(id, ErrorCode.FLOW_CONTROL_ERROR);
    stream.recvAvailable -= length;
    const body = framePayloadBody(FrameType.DATA, flags, payload);
    const end = (flags & FrameFlag.END_STREAM) !== 0;
    stream.dataSeen += body.length;
    if (stream.contentLength >= 0 && (stream.dataSeen > stream.contentLength || (end && stream.dataSeen !== stream.contentLength))) {
      return this.streamError(id, ErrorCode.PROTOCOL_ERROR); // §8.1.1: malformed
    }
    stream.state = next;
    stream.unconsumed += body.length;
    // Padding is nobody's to consume: credit it now.
    if (body.length !== length) this.consumeRaw(stream, length - body.length);
    if (!end && body.length > 0 && body.length <= JOIN_BYTES && !deliveringJoined) {
      // Joined with the stream's next frames of this read (onFrame delivers it before any other frame).
      if (joinedStream !== stream || joinedBytes + body.length > JOIN_BYTES) this.deliverJoined();
      joined.set(body, joinedBytes);
      joinedBytes += body.length;
      joinedStream = stream;
      return;
    }
    if (joinedStream === stream) {
      // The last frame of a run: one delivery with END_STREAM.
      if (joinedBytes + body.length <= JOIN_BYTES) {
        joined.set(body, joinedBytes);
        joinedStream = undefined;
        const bytes = joinedBytes + body.length;
        joinedBytes = 0;
        deliveringJoined = true;
        try {
          this.deliverData(stream, joined.subarray(0, bytes), end);
        } finally {
          deliveringJoined = false;
        }
        if (end) this.maybeClose(stream);
        return;
      }
      this.deliverJoined();
    }
    this.deliverData(stream, body, end);
    if (end) this.maybeClose(stream);
  }

  private deliverData(stream: Http2Stream, body: Buffer, end: boolean): void {
    if (stream.handler === undefined) {
      // Before the listener leg hands the stream over, DATA waits with it; after, nobody wants it.
      if (stream.inbox !== undefined) stream.inbox.push(Buffer.from(body), end); // the read buffer is reused
      else this.consume(stream, body.length);
      return;
    }
    stream.handler.onData(stream, body, end);
  }

  private onHeadersFrame(flags: number, id: number, payload: Buffer): void {
    if ((flags & FrameFlag.PRIORITY) !== 0) {
      const offset = (flags & FrameFlag.PADDED) !== 0 ? 1 : 0;
      if ((payload.readUInt32BE(offset) & 0x7fffffff) === id) {
        // §5.3.1: a stream depending on itself. The block must still be decoded to keep HPACK in step.
        this.blockStream = -1;
      }
    }
    const fragment = framePayloadBody(FrameType.HEADERS, flags, payload);
    const selfDependent = this.blockStream === -1;
    this.blockStream = id;
    this.blockFlags = flags | (selfDependent ? 0x100 : 0);
    if (this.blockParts !== undefined) this.blockParts.length = 0;
    this.blockBytes = 0;
    this.blockFrames = 1;
    if ((flags & FrameFlag.END_HEADERS) !== 0) return this.endHeaderBlock(fragment);
    this.addFragment(fragment);
  }

  private onContinuation(flags: number, id: number, payload: Buffer): void {
    if (this.blockStream === 0) {
      return this.connectionError(ErrorCode.PROTOCOL_ERROR, `CONTINUATION without a header block on stream ${id}`);
    }
    if (++this.blockFrames > MAX_HEADER_BLOCK_FRAMES) {
      return this.connectionError(ErrorCode.ENHANCE_YOUR_CALM, 'header block in too many CONTINUATION frames');
    }
    if ((flags & FrameFlag.END_HEADERS) === 0) return this.addFragment(payload);
    if (this.blockParts === undefined || this.blockParts.length === 0) return this.endHeaderBlock(payload);
    this.addFragment(payload);
    const block = Buffer.concat(this.blockParts, this.blockBytes);
    this.blockParts.length = 0;
    this.endHeaderBlock(block);
  }

  private addFragment(fragment: Buffer): void {
    this.blockBytes += fragment.length;
    if (this.blockBytes > this.maxBlockBytes) {
      return this.connectionError(ErrorCode.ENHANCE_YOUR_CALM, `header block above ${this.maxBlockBytes} bytes`);
    }
    (this.blockParts ??= []).push(Buffer.from(fragment)); // the read buffer is reused
  }

  private endHeaderBlock(block: Buffer): void {
    const id = this.blockStream;
    const flags = this.blockFlags;
    this.blockStream = 0;
    if (this.blockParts !== undefined) this.blockParts.length = 0;
    let fields: string[];
    try {
      fields = this.decoder.decode(block);
    } catch (err) {
      if (err instanceof HeaderListTooLarge) return this.headerListTooLarge(id, flags);
      const reason = err instanceof HpackCompressionError ? err.message : 'HPACK error';
      return this.connectionError(ErrorCode.COMPRESSION_ERROR, reason);
    }
    if ((flags & 0x100) !== 0) return this.rejectHeaderBlock(id, ErrorCode.PROTOCOL_ERROR);
    this.onHeaderBlock(id, flags & 0xff, fields);
  }

  /** A decoded header block refused with a stream error; the listener leg counts a new stream's id as used. */
  protected rejectHeaderBlock(id: number, code: number): void {
    this.streamError(id, code);
  }

  /** A complete, decoded header block. */
  protected abstract onHeaderBlock(id: number, flags: number, fields: string[]): void;

  /** A header list above our SETTINGS_MAX_HEADER_LIST_SIZE (decoded, so HPACK stays in step). */
  protected headerListTooLarge(id: number, _flags: number): void {
    this.rejectHeaderBlock(id, ErrorCode.ENHANCE_YOUR_CALM);
  }

  /** A further header block on an open stream (trailers): shared by both legs. */
  protected trailersReceived(stream: Http2Stream, flags: number, fields: string[]): void {
    const next = afterReceive(stream.state as 0, FrameType.HEADERS, flags);
    if (next < 0) return this.streamError(stream.id, -next);
    const end = (flags & FrameFlag.END_STREAM) !== 0;
    // §8.1: a header block after the first must end the stream and carries no pseudo-headers.
    if (!end || !validTrailers(fields, this.decoder.malformed)) return this.streamError(stream.id, ErrorCode.PROTOCOL_ERROR);
    if (stream.contentLength >= 0 && stream.dataSeen !== stream.contentLength) return this.streamError(stream.id, ErrorCode.PROTOCOL_ERROR);
    stream.state = next;
    stream.headerBlocks++;
    if (stream.handler !== undefined) stream.handler.onHeaders(stream, fields, end);
    else stream.inbox?.push(fields, end);
    this.maybeClose(stream);
  }

  private onRstFrame(id: number, code: number): void {
    const stream = this.streams.get(id);
    if (stream === undefined) {
      if (this.isIdle(id)) this.connectionError(ErrorCode.PROTOCOL_ERROR, `RST_STREAM on idle stream ${id}`);
      return;
    }
    stream.state = StreamState.CLOSED;
    stream.resetCode = code;
    this.removeStream(stream, true);
    stream.handler?.onReset(stream, code, ResetReason.PEER);
  }

  private onSettingsFrame(flags: number, payload: Buffer): void {
    if ((flags & FrameFlag.ACK) !== 0) return;
    const before = this.peer.initialWindowSize;
    const err = applySettings(this.peer, payload, this.isClientLeg());
    if (err !== undefined) return this.connectionError(err.code, err.reason);
    const delta = this.peer.initialWindowSize - before;
    if (delta !== 0) {
      for (const stream of this.streams.values()) {
        if (stream.sendWindow + delta > MAX_WINDOW_SIZE) return this.connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE overflows a stream window');
        stream.sendWindow += delta;
      }
    }
    this.encoder.setPeerMaxTableSize(this.peer.headerTableSize);
    const at = this.reserve(FRAME_HEADER_BYTES);
    writeFrameHeader(this.arena, at, 0, FrameType.SETTINGS, FrameFlag.ACK, 0);
    this.commit(at + FRAME_HEADER_BYTES);
    this.markDirty();
    const first = !this.peerSettingsSeen;
    this.peerSettingsSeen = true;
    if (delta > 0) for (const stream of this.streams.values()) if (stream.queueBytes > 0 || stream.queueEnd) this.pump(stream);
    if (first) this.onPeerSettings();
  }

  protected isClientLeg(): boolean {
    return false;
  }

  /** The peer's first SETTINGS were applied. */
  protected onPeerSettings(): void {}

  protected onPingAck(_payload: Buffer): void {}

  /** GOAWAY from the peer. */
  protected abstract onGoaway(lastStreamId: number, code: number): void;

  private onWindowUpdate(id: number, increment: number): void {
    if (id === 0) {
      if (this.sendWindow + increment > MAX_WINDOW_SIZE) return this.connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'connection window above 2^31 - 1');
      this.sendWindow += increment;
      return this.resumeBlocked();
    }
    const stream = this.streams.get(id);
    if (stream === undefined) {
      if (this.isIdle(id)) this.connectionError(ErrorCode.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${id}`);
      return;
    }
    if (stream.sendWindow + increment > MAX_WINDOW_SIZE) return this.streamError(id, ErrorCode.FLOW_CONTROL_ERROR);
    stream.sendWindow += increment;
    if (stream.queueBytes > 0 || stream.queueEnd || stream.queueTrailers !== undefined) this.pump(stream);
  }

  /** A frame on a stream that is gone: ignored if we reset it lately (§5.1), else STREAM_CLOSED. */
  protected closedStreamFrame(id: number): void {
    if (this.recentlyReset(id)) return;
    this.writeRst(id, ErrorCode.STREAM_CLOSED);
  }

  // ---- streams ------------------------------------------------------------------------------------------------

  protected trackStream(id: number, stream: Http2Stream): void {
    const streams = this.streams === NO_STREAMS ? (this.streams = new Map<number, Http2Stream>()) : (this.streams as Map<number, Http2Stream>);
    streams.set(id, stream);
  }

  protected addStream(id: number): Http2Stream {
    const stream = new Http2Stream(this, id, this.peer.initialWindowSize, this.ours.initialWindowSize);
    this.trackStream(id, stream);
    return stream;
  }

  /** A stream error (§5.4.2): RST_STREAM, the stream's owner hears of it, the connection goes on. */
  protected streamError(id: number, code: number): void {
    this.deliverJoined(); // what arrived before the error goes first
    const stream = this.streams.get(id);
    this.writeRst(id, code);
    this.rememberReset(id);
    if (stream === undefined) return;
    stream.state = StreamState.CLOSED;
    stream.resetCode = code;
    this.removeStream(stream, false);
    stream.handler?.onReset(stream, code, ResetReason.PROTOCOL);
  }

  protected recentlyReset(id: number): boolean {
    return this.recentResets !== undefined && this.recentResets.includes(id);
  }

  private rememberReset(id: number): void {
    const recent = (this.recentResets ??= []);
    if (recent.length < RECENT_RESETS) recent.push(id);
    else recent[this.recentResetAt++ % RECENT_RESETS] = id;
  }

  /** Both sides ended: the stream leaves the connection. */
  protected maybeClose(stream: Http2Stream): void {
    if (stream.state === StreamState.CLOSED && !stream.removed) this.removeStream(stream, false);
  }

  protected removeStream(stream: Http2Stream, byPeer: boolean): void {
    if (stream.removed) return;
    stream.removed = true;
    if (this.streams !== NO_STREAMS) (this.streams as Map<number, Http2Stream>).delete(stream.id);
    stream.unconsumed = 0;
    this.queuedBytes -= stream.queueBytes;
    stream.queue = undefined;
    stream.queueBytes = 0;
    stream.queueEnd = false;
    stream.queueTrailers = undefined;
    this.onStreamRemoved(stream, byPeer);
  }

  /** Hook: a stream left the connection (`byPeer`: the peer reset it). */
  protected onStreamRemoved(_stream: Http2Stream, _byPeer: boolean): void {}

  consume(stream: Http2Stream, bytes: number): void {
    if (stream.removed || bytes <= 0 || this.closed) return;
    stream.unconsumed -= bytes;
    this.consumeRaw(stream, bytes);
  }

  private consumeRaw(stream: Http2Stream, bytes: number): void {
    if (stream.remoteClosed) return; // the peer sends nothing more on it: no credit needed
    stream.recvOwed += bytes;
    const target = this.ours.initialWindowSize;
    if (stream.recvOwed * 2 >= target || stream.recvAvailable === 0) {
      const increment = stream.recvOwed;
      stream.recvOwed = 0;
      stream.recvAvailable += increment;
      this.writeWindowUpdate(stream.id, increment);
    }
  }

  private creditConnection(bytes: number): void {
    this.recvOwed += bytes;
    if (this.recvOwed * 2 >= this.recvTarget || this.recvAvailable === 0) {
      const increment = this.recvOwed;
      this.recvOwed = 0;
      this.recvAvailable += increment;
      this.writeWindowUpdate(0, increment);
    }
  }

  // ---- sending ------------------------------------------------------------------------------------------------

  sendHeaders(stream: Http2Stream, fields: string[], endStream: boolean): void {
    if (stream.removed || this.closed || stream.localClosed) return;
    if (stream.queueBytes > 0 || (stream.queue !== undefined && stream.queueHead < stream.queue.length)) {
      // Trailers go after the data still waiting for window; encoded when written (HPACK order is send order).
      stream.queueTrailers = fields;
      stream.queueEnd = endStream;
      return;
    }
    this.writeHeaderBlock(stream.id, fields, endStream);
    stream.state = afterSend(stream.state as 0, FrameType.HEADERS, endStream ? FrameFlag.END_STREAM : 0);
    if (endStream) this.localEnded(stream);
  }

  sendData(stream: Http2Stream, data: Buffer, endStream: boolean): void {
    if (stream.removed || this.closed || stream.localClosed || stream.queueEnd) return;
    let rest = data;
    // Nothing queued and room in both windows: written at once, in frames of the peer's size, while the socket
    // takes it; what the socket has no room for waits in the queue.
    if (data.length > 0 && stream.queue === undefined && stream.id !== 0 && data.length <= stream.sendWindow && data.length <= this.sendWindow && !this.congested) {
      const length = data.length;
      const max = this.peer.maxFrameSize;
      let sent = 0;
      if (length <= max) {
        this.writeData(stream.id, data, endStream);
        sent = length;
      } else {
        do {
          const size = Math.min(max, length - sent);
          this.writeData(stream.id, data.subarray(sent, sent + size), endStream && sent + size === length);
          sent += size;
        } while (sent < length && !(this.congested as boolean)); // writeData may congest the socket
      }
      stream.sendWindow -= sent;
      this.sendWindow -= sent;
      if (sent === length) {
        if (endStream) stream.state = afterSend(stream.state as 0, FrameType.DATA, FrameFlag.END_STREAM);
        stream.handler?.onSent(stream, length);
        if (endStream && !(stream.removed as boolean)) this.localEnded(stream); // onSent may have removed it
        return;
      }
      stream.handler?.onSent(stream, sent);
      // onSent may have reset the stream or closed the connection.
      if (stream.removed as boolean) return;
      if (this.closed as boolean) return;
      rest = data.subarray(sent);
    }
    if (rest.length > 0) {
      (stream.queue ??= []).push(Buffer.from(rest)); // the caller's bytes are valid only during the call
      stream.queueBytes += rest.length;
      this.queuedBytes += rest.length;
    }
    if (endStream) stream.queueEnd = true;
    this.pump(stream);
  }

  /** Sends what the windows and the socket allow of the stream's queue. */
  protected pump(stream: Http2Stream): void {
    if (stream.removed || this.closed || stream.id === 0) return;
    let sent = 0;
    const queue = stream.queue;
    if (queue !== undefined) {
      while (stream.queueHead < queue.length) {
        if (this.congested) return this.block(stream, sent);
        const chunk = queue[stream.queueHead] as Buffer;
        const allowed = Math.min(chunk.length, stream.sendWindow, this.sendWindow, this.peer.maxFrameSize);
        if (allowed <= 0) {
          if (stream.sendWindow > 0) return this.block(stream, sent); // the connection window: wait in the list
          break; // the stream's own window: its WINDOW_UPDATE pumps again
        }
        const whole = allowed === chunk.length;
        const last = whole && stream.queueHead === queue.length - 1 && stream.queueEnd && stream.queueTrailers === undefined;
        this.writeData(stream.id, whole ? chunk : chunk.subarray(0, allowed), last);
        stream.sendWindow -= allowed;
        this.sendWindow -= allowed;
        stream.queueBytes -= allowed;
        this.queuedBytes -= allowed;
        sent += allowed;
        if (whole) {
          queue[stream.queueHead++] = EMPTY;
        } else {
          queue[stream.queueHead] = chunk.subarray(allowed);
        }
        if (last) {
          stream.queueEnd = false;
          stream.state = afterSend(stream.state as 0, FrameType.DATA, FrameFlag.END_STREAM);
        }
      }
      if (stream.queueHead === queue.length) {
        stream.queue = undefined;
        stream.queueHead = 0;
      }
    }
    if (stream.queue === undefined) {
      if (stream.queueTrailers !== undefined) {
        const fields = stream.queueTrailers;
        const end = stream.queueEnd;
        stream.queueTrailers = undefined;
        stream.queueEnd = false;
        this.writeHeaderBlock(stream.id, fields, end);
        stream.state = afterSend(stream.state as 0, FrameType.HEADERS, end ? FrameFlag.END_STREAM : 0);
        if (end) {
          if (sent > 0) stream.handler?.onSent(stream, sent);
          return this.localEnded(stream);
        }
      } else if (stream.queueEnd) {
        // END_STREAM with nothing left to send: an empty DATA frame (no window needed).
        stream.queueEnd = false;
        this.writeData(stream.id, EMPTY, true);
        stream.state = afterSend(stream.state as 0, FrameType.DATA, FrameFlag.END_STREAM);
        if (sent > 0) stream.handler?.onSent(stream, sent);
        return this.localEnded(stream);
      } else if (stream.localClosed) {
        // The last DATA carried END_STREAM.
        if (sent > 0) stream.handler?.onSent(stream, sent);
        return this.localEnded(stream);
      }
    }
    if (sent > 0) stream.handler?.onSent(stream, sent);
  }

  private block(stream: Http2Stream, sent: number): void {
    if (!stream.blocked) {
      stream.blocked = true;
      this.blockedStreams.push(stream);
    }
    if (sent > 0) stream.handler?.onSent(stream, sent);
  }

  private resumeBlocked(): void {
    if (this.blockedStreams.length === 0) return;
    const waiting = this.blockedStreams;
    this.blockedStreams = [];
    for (const stream of waiting) {
      stream.blocked = false;
      this.pump(stream);
    }
  }

  /** We sent END_STREAM on the stream. */
  protected localEnded(stream: Http2Stream): void {
    stream.ended = true;
    this.maybeClose(stream);
  }

  private get congested(): boolean {
    return this.outBytes + this.socket.writableLength > this.highWater;
  }

  resetStream(stream: Http2Stream, code: number): void {
    if (stream.removed || this.closed) return;
    if (stream.id === 0) {
      stream.removed = true; // never sent: nothing to tell the peer
      this.queuedBytes -= stream.queueBytes;
      stream.queue = undefined;
      stream.queueBytes = 0;
      return this.onStreamRemoved(stream, false);
    }
    this.writeRst(stream.id, code);
    this.rememberReset(stream.id);
    stream.state = StreamState.CLOSED;
    stream.resetCode = code;
    this.removeStream(stream, false);
  }

  // ---- output -------------------------------------------------------------------------------------------------

  /** Room for `bytes` in the shared slab, in this connection's run; returns where they go. The caller commits. */
  private reserve(bytes: number): number {
    // Our run is the slab's last and has room: extend it.
    if (this.arena === slab && this.arenaPos === slabPos && slab.length - slabPos >= bytes) return slabPos;
    this.sealArena();
    if (slab.length - slabPos < bytes) nextSlab(bytes);
    this.arena = slab;
    this.arenaStart = this.arenaPos = slabPos;
    return slabPos;
  }

  /** The reserved bytes up to `end` are written. */
  private commit(end: number): void {
    this.arenaPos = slabPos = end;
  }

  private sealArena(): void {
    // No DATA frame of a sealed run is extended again: its slab position may be reused by the next turn (a stale
    // position that a new run happened to reach again once merged DATA into another frame).
    this.lastDataAt = -1;
    if (this.arenaPos > this.arenaStart) {
      this.out.push(this.arena.subarray(this.arenaStart, this.arenaPos));
      this.outBytes += this.arenaPos - this.arenaStart;
      this.arenaStart = this.arenaPos;
    }
  }

  private markDirty(): void {
    if (this.isDirty) return;
    this.isDirty = true;
    dirty.push(this);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  }

  /** Bytes as they are (the client preface). */
  protected writeRaw(bytes: Buffer): void {
    const at = this.reserve(bytes.length);
    bytes.copy(this.arena, at);
    this.commit(at + bytes.length);
    this.markDirty();
  }

  protected writeData(id: number, payload: Buffer, end: boolean): void {
    const length = payload.length;
    // The last frame of our run is DATA of this stream with room: extend it (frame boundaries carry no meaning in
    // HTTP/2; a server stream of small messages then costs both peers one frame per read, not per message).
    const prev = this.lastDataAt;
    if (prev >= 0 && this.lastDataStream === id && this.lastDataEnd === this.arenaPos && prev >= this.arenaStart && this.arena === slab && this.arenaPos === slabPos && slab.length - slabPos >= length) {
      const merged = slab.readUIntBE(prev, 3) + length;
      if (merged <= this.peer.maxFrameSize) {
        slab.writeUIntBE(merged, prev, 3);
        if (end) slab[prev + 4] = FrameFlag.END_STREAM;
        payload.copy(slab, slabPos);
        this.commit(slabPos + length);
        this.lastDataEnd = this.arenaPos;
        if (end) this.lastDataAt = -1;
        return this.markDirty();
      }
    }
    const at = this.reserve(FRAME_HEADER_BYTES + length);
    writeFrameHeader(this.arena, at, length, FrameType.DATA, end ? FrameFlag.END_STREAM : 0, id);
    payload.copy(this.arena, at + FRAME_HEADER_BYTES);
    this.commit(at + FRAME_HEADER_BYTES + length);
    this.lastDataAt = end ? -1 : at;
    this.lastDataStream = id;
    this.lastDataEnd = this.arenaPos;
    this.markDirty();
    // A turn that read a lot (libuv reads up to 32 × 64 KiB from a socket before yielding) writes as it goes,
    // rather than holding it all until the end of the turn or queueing it as congestion.
    if (this.outBytes + this.arenaPos - this.arenaStart >= this.highWater && !this.closed && !this.socket.destroyed) this.writeOut();
  }

  protected writeHeaderBlock(id: number, fields: string[], end: boolean): void {
    const total = this.encoder.encodeBlock(fields);
    const block = encodedOutput(); // valid until the next encode: copied into frames below
    const max = this.peer.maxFrameSize;
    let offset = 0;
    let type: number = FrameType.HEADERS;
    do {
      const length = Math.min(max, total - offset);
      const last = offset + length === total;
      let flags = last ? FrameFlag.END_HEADERS : 0;
      if (type === FrameType.HEADERS && end) flags |= FrameFlag.END_STREAM;
      const at = this.reserve(FRAME_HEADER_BYTES + length);
      const arena = this.arena;
      writeFrameHeader(arena, at, length, type, flags, id);
      if (length <= SMALL_COPY) for (let i = 0; i < length; i++) arena[at + FRAME_HEADER_BYTES + i] = block[offset + i] as number;
      else block.copy(arena, at + FRAME_HEADER_BYTES, offset, offset + length);
      this.commit(at + FRAME_HEADER_BYTES + length);
      offset += length;
      type = FrameType.CONTINUATION;
    } while (offset < total);
    this.markDirty();
  }

  protected writeRst(id: number, code: number): void {
    const at = this.reserve(FRAME_HEADER_BYTES + 4);
    writeFrameHeader(this.arena, at, 4, FrameType.RST_STREAM, 0, id);
    this.arena.writeUInt32BE(code, at + FRAME_HEADER_BYTES);
    this.commit(at + FRAME_HEADER_BYTES + 4);
    this.markDirty();
  }

  protected writeWindowUpdate(id: number, increment: number): void {
    const at = this.reserve(FRAME_HEADER_BYTES + 4);
    writeFrameHeader(this.arena, at, 4, FrameType.WINDOW_UPDATE, 0, id);
    this.arena.writeUInt32BE(increment & 0x7fffffff, at + FRAME_HEADER_BYTES);
    this.commit(at + FRAME_HEADER_BYTES + 4);
    this.markDirty();
  }

  protected writePing(opaque: Buffer, ack: boolean): void {
    const at = this.reserve(FRAME_HEADER_BYTES + 8);
    writeFrameHeader(this.arena, at, 8, FrameType.PING, ack ? FrameFlag.ACK : 0, 0);
    opaque.copy(this.arena, at + FRAME_HEADER_BYTES, 0, 8);
    this.commit(at + FRAME_HEADER_BYTES + 8);
    this.markDirty();
  }

  protected writeGoaway(lastStreamId: number, code: number, debug: string): void {
    const text = Buffer.from(debug.slice(0, 256), 'utf8');
    const at = this.reserve(FRAME_HEADER_BYTES + 8 + text.length);
    writeFrameHeader(this.arena, at, 8 + text.length, FrameType.GOAWAY, 0, 0);
    this.arena.writeUInt32BE(lastStreamId & 0x7fffffff, at + FRAME_HEADER_BYTES);
    this.arena.writeUInt32BE(code, at + FRAME_HEADER_BYTES + 4);
    text.copy(this.arena, at + FRAME_HEADER_BYTES + 8);
    this.commit(at + FRAME_HEADER_BYTES + 8 + text.length);
    this.markDirty();
  }

  /** Writes everything queued this turn, in one write. */
  flush(): void {
    this.isDirty = false;
    if (this.closed || this.socket.destroyed) {
      this.sealArena();
      this.out.length = 0;
      this.outBytes = 0;
      return;
    }
    this.writeOut();
    if (this.socket.writableLength > this.maxOutput) {
      this.destroy(new Error(`peer does not read: ${this.socket.writableLength} bytes unread`));
      return;
    }
    // DATA that waited for this turn's output to go: 'drain' only comes after a write the socket refused.
    if (this.blockedStreams.length > 0 && !this.congested && this.sendWindow > 0) this.resumeBlocked();
  }

  /** Hands the output so far to the socket (one write, or one writev). */
  private writeOut(): void {
    this.sealArena();
    const out = this.out;
    if (out.length === 0) return;
    let copied = false;
    if (out.length === 1) {
      this.socket.write(out[0] as Buffer);
    } else if (this.outBytes <= CONCAT_LIMIT) {
      this.socket.write(Buffer.concat(out, this.outBytes));
      copied = true;
    } else {
      this.socket.cork();
      for (const buffer of out) this.socket.write(buffer);
      this.socket.uncork();
    }
    // The socket queued some of it: the slabs it holds slices of are not reused until it wrote them.
    if (!copied && this.socket.writableLength > 0) holdSlabs(this.socket, out);
    out.length = 0;
    this.outBytes = 0;
  }

  // ---- closing ------------------------------------------------------------------------------------------------

  /** A connection error (§5.4.1): GOAWAY with `code`, then the connection closes. */
  connectionError(code: number, reason: string): void {
    if (this.closed) return;
    this.deliverJoined();
    this.reader.stop();
    this.blockStream = 0;
    // Nothing goes after the GOAWAY: the flush below must not resume DATA that waits for the socket.
    this.blockedStreams = [];
    this.writeGoaway(this.lastPeerStreamId(), code, reason);
    this.goawaySent = true;
    this.flush();
    this.onConnectionError(code, reason);
    this.socket.end();
    this.teardown(code);
    // A peer that never closes its side must not keep the socket.
    setTimeout(destroySocket, 1000, this.socket).unref();
  }

  protected onConnectionError(_code: number, _reason: string): void {}

  /** The highest stream id the peer opened that we processed (for our GOAWAY). */
  protected abstract lastPeerStreamId(): number;

  /** Closes at once: every stream is lost. */
  destroy(err?: Error): void {
    if (this.closed) return;
    this.reader.stop();
    this.socket.destroy();
    this.teardown(ErrorCode.CANCEL, err);
  }

  /** The socket's 'error' (an Error) or 'close' (a hadError boolean). */
  private onSocketGone(err?: Error | boolean): void {
    this.teardown(ErrorCode.CANCEL, err instanceof Error ? err : undefined);
  }

  /** Every stream ends as lost; the connection is closed for good. */
  protected teardown(code: number, err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.reader.stop();
    this.out.length = 0;
    this.outBytes = 0;
    this.arena = EMPTY;
    this.arenaStart = this.arenaPos = 0;
    this.lastDataAt = -1;
    const streams = [...this.streams.values()];
    for (const stream of streams) {
      stream.state = StreamState.CLOSED;
      this.removeStream(stream, false);
      stream.handler?.onReset(stream, code, ResetReason.LOST);
    }
    this.blockedStreams = [];
    this.onClosed(err);
  }

  /** Hook: the connection is closed (its streams were told). */
  protected onClosed(_err?: Error): void {}
}

function destroySocket(socket: Socket): void {
  if (!socket.destroyed) socket.destroy();
}

/** Trailers (§8.1): no pseudo-header fields; `malformed`: the decoder found a field's characters invalid. */
function validTrailers(fields: string[], malformed: boolean): boolean {
  if (malformed) return false;
  for (let i = 0; i < fields.length; i += 2) {
    if ((fields[i] as string).charCodeAt(0) === 58 /* ':' */) return false;
  }
  return true;
}

export { validFieldName, validFieldValue };
export { CLIENT_PREFACE, DEFAULT_MAX_FRAME_SIZE, ErrorCode, FrameFlag, FrameType, SettingId, StreamState };
