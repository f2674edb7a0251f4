/**
 * HTTP/2 frames (RFC 9113 §4 and §6) for the gateway's own engine (issue #12): a streaming reader that cuts a byte
 * stream into frames, the per-type checks that §6 makes connection or stream errors, and writers for the frames the
 * engine sends. The hot path allocates nothing per frame: the reader hands each frame to one callback as
 * (type, flags, stream id, payload) with the payload a view into the bytes read, and copies only when a frame
 * spans two reads. HPACK (RFC 7541) is hpack.ts's business; flow control and stream states are the connection's.
 */

/** Frame types (RFC 9113 §6). */
export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

/** Flags (RFC 9113 §6): the same bit means different things per type. */
export const FrameFlag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** Error codes (RFC 9113 §7). */
export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

export const FRAME_HEADER_BYTES = 9;
/** SETTINGS_MAX_FRAME_SIZE's initial value and its floor (RFC 9113 §6.5.2). */
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
/** Its ceiling: 2^24 − 1. */
export const MAX_FRAME_SIZE_LIMIT = 16_777_215;
/** The client connection preface (RFC 9113 §3.4). */
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Fixed payload lengths (RFC 9113 §6.3, §6.4, §6.7, §6.9). */
const FIXED_LENGTH: Readonly<Record<number, number>> = {
  [FrameType.PRIORITY]: 5,
  [FrameType.RST_STREAM]: 4,
  [FrameType.PING]: 8,
  [FrameType.WINDOW_UPDATE]: 4,
};
/** Types that only exist on a stream; SETTINGS, PING and GOAWAY only on the connection (stream 0). */
const STREAM_ONLY = new Set<number>([FrameType.DATA, FrameType.HEADERS, FrameType.PRIORITY, FrameType.RST_STREAM, FrameType.PUSH_PROMISE, FrameType.CONTINUATION]);
const CONNECTION_ONLY = new Set<number>([FrameType.SETTINGS, FrameType.PING, FrameType.GOAWAY]);

/** A frame that breaks §4–§6: the code to answer with, and whether the whole connection is in error (§5.4). */
export interface FrameError {
  readonly code: number;
  readonly connection: boolean;
  readonly reason: string;
}

/**
 * The checks of RFC 9113 §4.2 and §6 that need nothing but the frame itself. Unknown types pass (§4.1: they are
 * ignored); whether a frame fits the stream's state is the connection's check.
 */
export function checkFrame(type: number, flags: number, streamId: number, payload: Buffer): FrameError | undefined {
  const length = payload.length;
  if (STREAM_ONLY.has(type) && streamId === 0) return connectionError(ErrorCode.PROTOCOL_ERROR, `frame type ${type} on stream 0`);
  if (CONNECTION_ONLY.has(type) && streamId !== 0) return connectionError(ErrorCode.PROTOCOL_ERROR, `frame type ${type} on stream ${streamId}`);
  const fixed = FIXED_LENGTH[type];
  if (fixed !== undefined && length !== fixed) {
    // §6.3: a PRIORITY of the wrong size is a stream error; the others are connection errors.
    const reason = `frame type ${type} of ${length} bytes (must be ${fixed})`;
    return type === FrameType.PRIORITY ? { code: ErrorCode.FRAME_SIZE_ERROR, connection: false, reason } : connectionError(ErrorCode.FRAME_SIZE_ERROR, reason);
  }
  if (type === FrameType.SETTINGS) {
    if ((flags & FrameFlag.ACK) !== 0 && length !== 0) return connectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
    if (length % 6 !== 0) return connectionError(ErrorCode.FRAME_SIZE_ERROR, `SETTINGS of ${length} bytes`);
  }
  if (type === FrameType.GOAWAY && length < 8) return connectionError(ErrorCode.FRAME_SIZE_ERROR, `GOAWAY of ${length} bytes`);
  if ((type === FrameType.DATA || type === FrameType.HEADERS) && (flags & FrameFlag.PADDED) !== 0) {
    // §6.1, §6.2: the padding may not reach into the frame's other fields.
    const fields = type === FrameType.HEADERS && (flags & FrameFlag.PRIORITY) !== 0 ? 6 : 1;
    if (length < fields || payload.readUInt8(0) > length - fields) return connectionError(ErrorCode.PROTOCOL_ERROR, 'padding exceeds the frame');
  } else if (type === FrameType.HEADERS && (flags & FrameFlag.PRIORITY) !== 0 && length < 5) {
    return connectionError(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS too short for its priority fields');
  }
  if (type === FrameType.WINDOW_UPDATE && (payload.readUInt32BE(0) & 0x7fffffff) === 0) {
    // §6.9: an increment of 0 is a stream error on a stream, a connection error on the connection.
    return { code: ErrorCode.PROTOCOL_ERROR, connection: streamId === 0, reason: 'WINDOW_UPDATE of 0' };
  }
  return undefined;
}

function connectionError(code: number, reason: string): FrameError {
  return { code, connection: true, reason };
}

/**
 * The part of a DATA or HEADERS payload that carries data or the header block fragment: padding (and HEADERS'
 * priority fields) removed. Call after checkFrame said yes.
 */
export function framePayloadBody(type: number, flags: number, payload: Buffer): Buffer {
  let start = 0;
  let end = payload.length;
  if ((flags & FrameFlag.PADDED) !== 0) {
    end -= payload.readUInt8(0);
    start = 1;
  }
  if (type === FrameType.HEADERS && (flags & FrameFlag.PRIORITY) !== 0) start += 5;
  return start === 0 && end === payload.length ? payload : payload.subarray(start, end);
}

/** Receives each frame: `payload` is valid only during the call (it may view a buffer that is reused). */
export type FrameHandler = (type: number, flags: number, streamId: number, payload: Buffer) => void;

/** The same as an object's method: a connection is its own sink (no closure per connection). */
export interface FrameSink {
  /** One frame; `payload` is valid only during the call (the reader reuses its buffers): copy what you keep. */
  onFrame(type: number, flags: number, streamId: number, payload: Buffer): void;
}

/**
 * Cuts the bytes of one connection into frames. `push()` as bytes arrive; a frame longer than `maxFrameSize`
 * (our SETTINGS_MAX_FRAME_SIZE) stops the reader and returns FRAME_SIZE_ERROR (§4.2) before its payload is
 * buffered, so a peer cannot make the reader hold more than one frame.
 */
/**
 * Buffers for frames that straddle reads, shared by the process: a frame's payload is valid only while it is
 * delivered (FrameSink), so the buffer serves the next one. Frames up to the default SETTINGS_MAX_FRAME_SIZE.
 */
const SPARE_FRAME_BYTES = FRAME_HEADER_BYTES + DEFAULT_MAX_FRAME_SIZE;
const MAX_SPARE_FRAMES = 8;
const spareFrames: Buffer[] = [];

export class FrameReader {
  maxFrameSize: number;
  private readonly sink: FrameSink;
  /** Bytes of an unfinished frame (header included), kept across reads. */
  private pending: Buffer | undefined;
  /** An unfinished frame with its header read: a buffer with room for it, its size, and how much of it arrived. */
  private partial: Buffer | undefined;
  private partialLength = 0;
  private partialFilled = 0;
  private failed = false;

  constructor(sink: FrameSink | FrameHandler, maxFrameSize = DEFAULT_MAX_FRAME_SIZE) {
    this.sink = typeof sink === 'function' ? { onFrame: sink } : sink;
    this.maxFrameSize = maxFrameSize;
  }

  /** Bytes still waiting for the rest of their frame. */
  get buffered(): number {
    return this.partial !== undefined ? this.partialFilled : (this.pending?.length ?? 0);
  }

  /** Feeds bytes; returns a connection error when a frame is too large (the reader then ignores further bytes). */
  push(chunk: Buffer): FrameError | undefined {
    if (this.failed) return undefined;
    let data = chunk;
    let offset = 0;
    if (this.partial !== undefined) {
      // A frame that straddles reads: its bytes are copied once into a buffer of its size (never the whole chunk
      // again, and never pending + chunk re-concatenated per read, which is quadratic for large frames).
      const frame = this.partial;
      const size = this.partialLength;
      const take = Math.min(size - this.partialFilled, chunk.length);
      chunk.copy(frame, this.partialFilled, 0, take);
      this.partialFilled += take;
      if (this.partialFilled < size) return undefined;
      this.partial = undefined;
      this.sink.onFrame(frame[3] ?? 0, frame[4] ?? 0, frame.readUInt32BE(5) & 0x7fffffff, frame.subarray(FRAME_HEADER_BYTES, size));
      // The payload was valid only during onFrame: the buffer serves the next frame that straddles reads.
      if (frame.length === SPARE_FRAME_BYTES && spareFrames.length < MAX_SPARE_FRAMES) spareFrames.push(frame);
      if (this.failed as boolean) return undefined; // onFrame may have failed the reader (TypeScript's narrowing cannot see it)
      offset = take;
    } else if (this.pending !== undefined) {
      data = Buffer.concat([this.pending, chunk]); // a header cut short: at most 8 bytes to prepend
      this.pending = undefined;
    }
    while (data.length - offset >= FRAME_HEADER_BYTES) {
      // Octet arithmetic rather than readUIntBE/readUInt32BE: no bounds checks per frame (the loop checked them).
      const length = ((data[offset] as number) << 16) | ((data[offset + 1] as number) << 8) | (data[offset + 2] as number);
      if (length > this.maxFrameSize) {
        this.failed = true;
        return connectionError(ErrorCode.FRAME_SIZE_ERROR, `frame of ${length} bytes above SETTINGS_MAX_FRAME_SIZE ${this.maxFrameSize}`);
      }
      const end = offset + FRAME_HEADER_BYTES + length;
      if (end > data.length) break;
      const type = data[offset + 3] ?? 0;
      const flags = data[offset + 4] ?? 0;
      // §4.1: the reserved bit is ignored.
      const streamId = (((data[offset + 5] as number) & 0x7f) << 24) | ((data[offset + 6] as number) << 16) | ((data[offset + 7] as number) << 8) | (data[offset + 8] as number);
      this.sink.onFrame(type, flags, streamId, data.subarray(offset + FRAME_HEADER_BYTES, end));
      offset = end;
      if (this.failed as boolean) return undefined; // as above
    }
    const rest = data.length - offset;
    if (rest > 0) {
      // A copy: `chunk` may be reused. With the header complete, the frame's whole buffer now (its size is known
      // and checked above).
      if (rest < FRAME_HEADER_BYTES) this.pending = Buffer.from(data.subarray(offset));
      else {
        const size = FRAME_HEADER_BYTES + data.readUIntBE(offset, 3);
        const frame = (size <= SPARE_FRAME_BYTES ? spareFrames.pop() : undefined) ?? Buffer.allocUnsafeSlow(Math.max(size, SPARE_FRAME_BYTES));
        data.copy(frame, 0, offset);
        this.partial = frame;
        this.partialLength = size;
        this.partialFilled = rest;
      }
    }
    return undefined;
  }

  /** Stops delivering frames (the connection is closing). */
  stop(): void {
    this.failed = true;
    this.pending = undefined;
    this.partial = undefined;
  }
}

/** Writes a frame header at `offset` of `target` (RFC 9113 §4.1). */
export function writeFrameHeader(target: Buffer, offset: number, length: number, type: number, flags: number, streamId: number): void {
  // The caller reserved the nine octets: written one by one, without writeUIntBE's range checks.
  target[offset] = length >>> 16;
  target[offset + 1] = length >>> 8;
  target[offset + 2] = length;
  target[offset + 3] = type;
  target[offset + 4] = flags;
  target[offset + 5] = (streamId >>> 24) & 0x7f;
  target[offset + 6] = streamId >>> 16;
  target[offset + 7] = streamId >>> 8;
  target[offset + 8] = streamId;
}

/** A whole frame in a new buffer (control frames; DATA payloads are written after their own header instead). */
export function encodeFrame(type: number, flags: number, streamId: number, payload?: Buffer): Buffer {
  const length = payload?.length ?? 0;
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
  writeFrameHeader(out, 0, length, type, flags, streamId);
  payload?.copy(out, FRAME_HEADER_BYTES);
  return out;
}

/** SETTINGS with the given (identifier, value) pairs, or a SETTINGS ACK when `ack` (RFC 9113 §6.5). */
export function encodeSettings(settings: readonly (readonly [number, number])[], ack = false): Buffer {
  if (ack) return encodeFrame(FrameType.SETTINGS, FrameFlag.ACK, 0);
  const payload = Buffer.allocUnsafe(settings.length * 6);
  settings.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return encodeFrame(FrameType.SETTINGS, 0, 0, payload);
}

/** Calls `each(identifier, value)` for every setting of a checked SETTINGS payload, in order (§6.5.3). */
export function readSettings(payload: Buffer, each: (id: number, value: number) => void): void {
  for (let i = 0; i + 6 <= payload.length; i += 6) each(payload.readUInt16BE(i), payload.readUInt32BE(i + 2));
}

export function encodeRstStream(streamId: number, code: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(code);
  return encodeFrame(FrameType.RST_STREAM, 0, streamId, payload);
}

export function encodeWindowUpdate(streamId: number, increment: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(increment & 0x7fffffff);
  return encodeFrame(FrameType.WINDOW_UPDATE, 0, streamId, payload);
}

/** PING with its 8 opaque bytes; an answer carries the ACK flag and the same bytes (§6.7). */
export function encodePing(opaque: Buffer, ack = false): Buffer {
  return encodeFrame(FrameType.PING, ack ? FrameFlag.ACK : 0, 0, opaque);
}

export function encodeGoaway(lastStreamId: number, code: number, debug?: Buffer): Buffer {
  const payload = Buffer.alloc(8 + (debug?.length ?? 0));
  payload.writeUInt32BE(lastStreamId & 0x7fffffff, 0);
  payload.writeUInt32BE(code, 4);
  debug?.copy(payload, 8);
  return encodeFrame(FrameType.GOAWAY, 0, 0, payload);
}
