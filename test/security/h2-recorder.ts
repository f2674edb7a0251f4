/**
 * Frame-level HTTP/2 endpoints for the cancel tests, written on plain `net` sockets so that nothing between the
 * test and the wire interprets a frame (RFC 9113 §4.1 framing only; header blocks are written with HPACK
 * "literal without indexing, new name" and raw strings, RFC 7541 §6.2.2, and never decoded).
 *
 * - A recording upstream: reads the gateway's client preface, answers SETTINGS (or holds them back, so the
 *   gateway's dial stays open), ACKs SETTINGS and PING, and records every frame it receives (type, flags, stream,
 *   RST_STREAM code). A test can answer a stream's response headers and DATA by hand.
 * - A raw client: sends HEADERS, DATA and RST_STREAM exactly when the test says, and records what it receives.
 *
 * test/faults/raw-frames.ts has a raw client for malformed header blocks; this one adds DATA and RST_STREAM and the
 * upstream side, and shares its frame encoding (encodeFrame, FrameType, FrameFlag).
 */
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { waitUntil } from '../helpers/fake-upstream.ts';
import { encodeFrame, FrameFlag, FrameType } from '../faults/raw-frames.ts';

export { FrameFlag, FrameType };

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER_BYTES = 9;
const EMPTY = Buffer.alloc(0);
/** Bounds every wait: generous, as the suite shares a small machine with other work. */
const WAIT_LIMIT_MS = 15_000;

export interface RecordedFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  /** The error code of an RST_STREAM or GOAWAY frame. */
  readonly rstCode: number | undefined;
  readonly length: number;
}

export type HeaderList = readonly (readonly [string, string])[];

function errorCodeOf(type: number, payload: Buffer): number | undefined {
  if (type === FrameType.RST_STREAM && payload.length >= 4) return payload.readUInt32BE(0);
  if (type === FrameType.GOAWAY && payload.length >= 8) return payload.readUInt32BE(4);
  return undefined;
}

/** Splits a byte stream into frames; calls `onFrame` for each complete one. */
class FrameReader {
  #pending: Buffer = EMPTY;
  readonly #onFrame: (frame: RecordedFrame, payload: Buffer) => void;

  constructor(onFrame: (frame: RecordedFrame, payload: Buffer) => void) {
    this.#onFrame = onFrame;
  }

  push(chunk: Buffer): void {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    while (this.#pending.length >= FRAME_HEADER_BYTES) {
      const length = this.#pending.readUIntBE(0, 3);
      if (this.#pending.length < FRAME_HEADER_BYTES + length) return;
      const type = this.#pending.readUInt8(3);
      const payload = this.#pending.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length);
      const frame: RecordedFrame = {
        type,
        flags: this.#pending.readUInt8(4),
        streamId: this.#pending.readUInt32BE(5) & 0x7fffffff,
        rstCode: errorCodeOf(type, payload),
        length,
      };
      this.#pending = this.#pending.subarray(FRAME_HEADER_BYTES + length);
      this.#onFrame(frame, payload);
    }
  }
}

/** The control frames both endpoints answer the same way: SETTINGS with an ACK, PING with its ACK. */
function answerControl(socket: Socket, frame: RecordedFrame, payload: Buffer): void {
  if (frame.type === FrameType.SETTINGS && (frame.flags & FrameFlag.ACK) === 0) {
    socket.write(encodeFrame(FrameType.SETTINGS, FrameFlag.ACK, 0, EMPTY));
  } else if (frame.type === FrameType.PING && (frame.flags & FrameFlag.ACK) === 0) {
    socket.write(encodeFrame(FrameType.PING, FrameFlag.ACK, 0, payload));
  }
}

function headerBlock(headers: HeaderList): Buffer {
  return Buffer.concat(headers.flatMap(([name, value]) => [Buffer.from([0x00]), hpackString(name), hpackString(value)]));
}

/** RFC 7541 §5.2 raw string: H = 0 and the length as a 7-bit prefix integer (§5.1). */
function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1');
  const length: number[] = [];
  if (bytes.length < 0x7f) {
    length.push(bytes.length);
  } else {
    length.push(0x7f);
    let rest = bytes.length - 0x7f;
    while (rest >= 0x80) {
      length.push((rest & 0x7f) | 0x80);
      rest >>= 7;
    }
    length.push(rest);
  }
  return Buffer.concat([Buffer.from(length), bytes]);
}

function rstPayload(code: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code, 0);
  return payload;
}

/** Frames received on `streamId` that end it from the sender's side: DATA or HEADERS with END_STREAM. */
export function endStreamFrames(frames: readonly RecordedFrame[], streamId: number): RecordedFrame[] {
  return frames.filter(
    (f) => f.streamId === streamId && (f.type === FrameType.DATA || f.type === FrameType.HEADERS) && (f.flags & FrameFlag.END_STREAM) !== 0,
  );
}

/** A readable list of frames for assertion messages. */
export function describeFrames(frames: readonly RecordedFrame[]): string {
  const names = Object.fromEntries(Object.entries(FrameType).map(([name, type]) => [type, name]));
  return frames.map((f) => `${names[f.type] ?? f.type}(stream ${f.streamId}, flags 0x${f.flags.toString(16)}${f.rstCode === undefined ? '' : `, code ${f.rstCode}`})`).join(' ');
}

export interface RecordingUpstream {
  /** `127.0.0.1:<port>`, for a route's nodes. */
  readonly address: string;
  /** Every frame received, from every connection, in order. */
  readonly frames: readonly RecordedFrame[];
  /** Streams the gateway opened (HEADERS received), in order. */
  streams(): number[];
  /** Sends the SETTINGS held back with `holdSettings` on every connection (and on later ones at once). */
  releaseSettings(): void;
  /** Answers response headers (`:status 200`, application/grpc) on the connection that opened `streamId`. */
  respondHeaders(streamId: number): void;
  /** Sends one DATA frame on `streamId`. */
  sendData(streamId: number, payload: Buffer): void;
  waitFor(predicate: () => boolean, what: string, limitMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startRecordingUpstream(options: { holdSettings?: boolean } = {}): Promise<RecordingUpstream> {
  const frames: RecordedFrame[] = [];
  const sockets = new Set<Socket>();
  const streamSocket = new Map<number, Socket>();
  let settingsHeld = options.holdSettings === true;
  /** Connections whose SETTINGS wait for an ACK: RFC 9113 §3.4, our own SETTINGS must be the first frame we send. */
  const ackPending = new Set<Socket>();
  const sendSettings = (socket: Socket): void => {
    socket.write(encodeFrame(FrameType.SETTINGS, 0, 0, EMPTY));
  };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    let preface = EMPTY;
    const reader = new FrameReader((frame, payload) => {
      frames.push(frame);
      if (frame.type === FrameType.HEADERS && !streamSocket.has(frame.streamId)) streamSocket.set(frame.streamId, socket);
      if (settingsHeld && frame.type === FrameType.SETTINGS && (frame.flags & FrameFlag.ACK) === 0) ackPending.add(socket);
      else answerControl(socket, frame, payload);
    });
    if (!settingsHeld) sendSettings(socket);
    socket.on('data', (chunk: Buffer) => {
      if (preface.length < PREFACE.length) {
        preface = Buffer.concat([preface, chunk]);
        if (preface.length < PREFACE.length) return;
        reader.push(preface.subarray(PREFACE.length));
        return;
      }
      reader.push(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = address !== null && typeof address === 'object' ? address.port : 0;
  const socketOf = (streamId: number): Socket => {
    const socket = streamSocket.get(streamId);
    if (socket === undefined) throw new Error(`the upstream never saw stream ${streamId}`);
    return socket;
  };
  return {
    address: `127.0.0.1:${port}`,
    frames,
    streams: () => [...streamSocket.keys()],
    releaseSettings() {
      if (!settingsHeld) return;
      settingsHeld = false;
      for (const socket of sockets) sendSettings(socket);
      for (const socket of ackPending) socket.write(encodeFrame(FrameType.SETTINGS, FrameFlag.ACK, 0, EMPTY));
      ackPending.clear();
    },
    respondHeaders(streamId) {
      const block = headerBlock([
        [':status', '200'],
        ['content-type', 'application/grpc'],
      ]);
      socketOf(streamId).write(encodeFrame(FrameType.HEADERS, FrameFlag.END_HEADERS, streamId, block));
    },
    sendData(streamId, payload) {
      socketOf(streamId).write(encodeFrame(FrameType.DATA, 0, streamId, payload));
    },
    waitFor: (predicate, what, limitMs = WAIT_LIMIT_MS) => waitUntil(predicate, limitMs, () => `${what}; upstream frames: ${describeFrames(frames)}`),
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface RawClient {
  readonly frames: readonly RecordedFrame[];
  headers(streamId: number, headers: HeaderList, endStream?: boolean): void;
  data(streamId: number, payload: Buffer, endStream?: boolean): void;
  rst(streamId: number, code: number): void;
  /** PING, resolved by its ACK: the gateway has processed every frame sent before it (RFC 9113 §6.7). */
  ping(): Promise<void>;
  waitFor(predicate: () => boolean, what: string, limitMs?: number): Promise<void>;
  close(): void;
}

/** An h2c client connection to `address` (`host:port`), ready once the preface and SETTINGS are written. */
export async function openRawClient(address: string): Promise<RawClient> {
  const [host = '127.0.0.1', portText = '0'] = address.split(':');
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = netConnect(Number(portText), host, () => resolve(s));
    s.once('error', reject);
  });
  socket.on('error', () => undefined);
  const frames: RecordedFrame[] = [];
  const reader = new FrameReader((frame, payload) => {
    frames.push(frame);
    answerControl(socket, frame, payload);
  });
  socket.on('data', (chunk: Buffer) => reader.push(chunk));
  socket.write(Buffer.concat([PREFACE, encodeFrame(FrameType.SETTINGS, 0, 0, EMPTY)]));
  return {
    frames,
    headers(streamId, headers, endStream = false) {
      const flags = FrameFlag.END_HEADERS | (endStream ? FrameFlag.END_STREAM : 0);
      socket.write(encodeFrame(FrameType.HEADERS, flags, streamId, headerBlock(headers)));
    },
    data(streamId, payload, endStream = false) {
      socket.write(encodeFrame(FrameType.DATA, endStream ? FrameFlag.END_STREAM : 0, streamId, payload));
    },
    rst(streamId, code) {
      socket.write(encodeFrame(FrameType.RST_STREAM, 0, streamId, rstPayload(code)));
    },
    async ping() {
      const acksBefore = frames.filter((f) => f.type === FrameType.PING && (f.flags & FrameFlag.ACK) !== 0).length;
      socket.write(encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8)));
      await waitUntil(
        () => frames.filter((f) => f.type === FrameType.PING && (f.flags & FrameFlag.ACK) !== 0).length > acksBefore,
        WAIT_LIMIT_MS,
        () => 'the gateway never acknowledged a PING',
      );
    },
    waitFor: (predicate, what, limitMs = WAIT_LIMIT_MS) => waitUntil(predicate, limitMs, () => `${what}; client frames: ${describeFrames(frames)}`),
    close() {
      socket.destroy();
    },
  };
}
