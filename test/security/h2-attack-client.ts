/**
 * A scripted HTTP/2 client at the frame level, for attacks that node:http2's and grpc-js's clients will not make:
 * ignoring the server's SETTINGS_MAX_CONCURRENT_STREAMS, header blocks above SETTINGS_MAX_HEADER_LIST_SIZE, never
 * reading (a zero-growth receive window), and rapid reset (HEADERS then RST_STREAM, CVE-2023-44487).
 *
 * In the style of test/faults/raw-frames.ts (whose frame and HPACK literal encoders it reuses): frames are written
 * byte by byte (RFC 9113 §4.1), header blocks use only HPACK "literal without indexing, new name" (RFC 7541
 * §6.2.2). The socket has Nagle off, and `batch()` coalesces frames into one write so that, for instance, a HEADERS
 * and its RST_STREAM reach the server in the same read, as an attacker's burst does. Every frame received is recorded
 * (type, flags, stream, payload); SETTINGS are acknowledged, PING is not answered unless asked. The client never
 * sends WINDOW_UPDATE by itself: a test that wants to read sends them explicitly. Every wait is bounded.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { encodeFrame, FrameFlag, FrameType, literalWithoutIndexing } from '../faults/raw-frames.ts';
import { DEFAULT_LIMIT_MS, waitUntil } from '../helpers/fake-upstream.ts';

export { FrameType, FrameFlag };

/** RFC 9113 §6.5.2 setting identifiers. */
export const SettingId = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** RFC 9113 §6.10; not in raw-frames' FrameType. */
const CONTINUATION = 0x9;
/** RFC 9113 §4.2: SETTINGS_MAX_FRAME_SIZE until the server raises it (servers here never do). */
const MAX_FRAME_BYTES = 16_384;
const FRAME_HEADER_BYTES = 9;
const SETTING_BYTES = 6;
const CANCEL = 0x8;

export interface ReceivedFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

export interface AttackTarget {
  host: string;
  port: number;
  /** TLS with ALPN h2, trusting `ca`. */
  tls?: { ca: string };
  /** SETTINGS sent with the preface, e.g. `[[SettingId.INITIAL_WINDOW_SIZE, 0]]`. */
  settings?: readonly (readonly [number, number])[];
}

/** A gRPC request's header block for `path` (POST, application/grpc, te: trailers). */
export function grpcRequestHeaders(authority: string, path: string, extra: readonly (readonly [string, string])[] = []): [string, string][] {
  return [
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', path],
    [':authority', authority],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
    ...extra.map(([name, value]): [string, string] => [name, value]),
  ];
}

export class AttackClient {
  readonly frames: ReceivedFrame[] = [];
  private readonly socket: Socket | TLSSocket;
  private pending: Buffer = Buffer.alloc(0);
  private corked: Buffer[] | undefined;
  private isClosed = false;
  /** Bytes of DATA received, per stream. */
  readonly dataBytes = new Map<number, number>();

  private constructor(socket: Socket | TLSSocket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('error', () => undefined); // the close is what tests look at
    socket.on('close', () => {
      this.isClosed = true;
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  static async open(target: AttackTarget): Promise<AttackClient> {
    const socket = await new Promise<Socket | TLSSocket>((resolve, reject) => {
      const s: Socket | TLSSocket =
        target.tls === undefined
          ? netConnect(target.port, target.host, () => resolve(s))
          : tlsConnect({ host: target.host, port: target.port, ca: target.tls.ca, ALPNProtocols: ['h2'] }, () => resolve(s));
      s.once('error', reject);
    });
    const client = new AttackClient(socket);
    client.write(Buffer.concat([PREFACE, settingsFrame(target.settings ?? [])]));
    return client;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Bytes written but not yet taken by the kernel: a flooding script waits while this is high. */
  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  /** Writes every frame `fill` sends as one socket write (one TCP segment burst). */
  batch(fill: () => void): void {
    this.corked = [];
    try {
      fill();
    } finally {
      const frames = this.corked;
      this.corked = undefined;
      if (frames.length > 0) this.write(Buffer.concat(frames));
    }
  }

  /** HEADERS, followed by CONTINUATION frames when the block is larger than one frame may be. */
  headers(streamId: number, headers: readonly (readonly [string, string])[], endStream = false): void {
    const block = Buffer.concat(headers.map(([name, value]) => literalWithoutIndexing(name, value)));
    const endStreamFlag = endStream ? FrameFlag.END_STREAM : 0;
    if (block.length <= MAX_FRAME_BYTES) {
      this.frame(FrameType.HEADERS, FrameFlag.END_HEADERS | endStreamFlag, streamId, block);
      return;
    }
    this.frame(FrameType.HEADERS, endStreamFlag, streamId, block.subarray(0, MAX_FRAME_BYTES));
    for (let at = MAX_FRAME_BYTES; at < block.length; at += MAX_FRAME_BYTES) {
      const last = at + MAX_FRAME_BYTES >= block.length;
      this.frame(CONTINUATION, last ? FrameFlag.END_HEADERS : 0, streamId, block.subarray(at, at + MAX_FRAME_BYTES));
    }
  }

  data(streamId: number, payload: Buffer, endStream = false): void {
    this.frame(FrameType.DATA, endStream ? FrameFlag.END_STREAM : 0, streamId, payload);
  }

  rstStream(streamId: number, code = CANCEL): void {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(code, 0);
    this.frame(FrameType.RST_STREAM, 0, streamId, payload);
  }

  windowUpdate(streamId: number, increment: number): void {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(increment & 0x7fffffff, 0);
    this.frame(FrameType.WINDOW_UPDATE, 0, streamId, payload);
  }

  ping(opaque: Buffer = Buffer.alloc(8)): void {
    this.frame(FrameType.PING, 0, 0, opaque);
  }

  /** Frames of `type` received (on `streamId` when given). */
  received(type: number, streamId?: number): ReceivedFrame[] {
    return this.frames.filter((f) => f.type === type && (streamId === undefined || f.streamId === streamId));
  }

  /** RST_STREAM error code received on the stream, if any. */
  rstCode(streamId: number): number | undefined {
    return this.received(FrameType.RST_STREAM, streamId)[0]?.payload.readUInt32BE(0);
  }

  /** The first GOAWAY received: last-stream-id and error code. */
  goaway(): { lastStreamId: number; code: number } | undefined {
    const frame = this.received(FrameType.GOAWAY)[0];
    if (frame === undefined) return undefined;
    return { lastStreamId: frame.payload.readUInt32BE(0) & 0x7fffffff, code: frame.payload.readUInt32BE(4) };
  }

  /** The server's SETTINGS (not the ACK) as id → value. */
  serverSettings(): Map<number, number> {
    const out = new Map<number, number>();
    const frame = this.frames.find((f) => f.type === FrameType.SETTINGS && (f.flags & FrameFlag.ACK) === 0);
    if (frame === undefined) return out;
    for (let at = 0; at + SETTING_BYTES <= frame.payload.length; at += SETTING_BYTES) {
      out.set(frame.payload.readUInt16BE(at), frame.payload.readUInt32BE(at + 2));
    }
    return out;
  }

  /** Whether the stream ended: END_STREAM on HEADERS/DATA, or RST_STREAM. */
  streamEnded(streamId: number): boolean {
    return this.frames.some(
      (f) =>
        f.streamId === streamId &&
        (f.type === FrameType.RST_STREAM || ((f.type === FrameType.HEADERS || f.type === FrameType.DATA) && (f.flags & FrameFlag.END_STREAM) !== 0)),
    );
  }

  async waitFor(predicate: () => boolean, what: string, limitMs = DEFAULT_LIMIT_MS): Promise<void> {
    await waitUntil(predicate, limitMs, () => `${what} (frames: ${this.summary()})`);
  }

  /** Resolves once the server's SETTINGS arrived. */
  waitForSettings(limitMs?: number): Promise<void> {
    return this.waitFor(() => this.serverSettings().size > 0 || this.isClosed, 'no SETTINGS from the server', limitMs);
  }

  /** Counts of received frames by type name, for assertion messages. */
  summary(): string {
    const names = Object.fromEntries(Object.entries(FrameType).map(([name, type]) => [type, name]));
    const counts = new Map<string, number>();
    for (const f of this.frames) {
      const name = names[f.type] ?? `type-${f.type}`;
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    return JSON.stringify({ ...Object.fromEntries(counts), closed: this.isClosed });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private frame(type: number, flags: number, streamId: number, payload: Buffer): void {
    this.write(encodeFrame(type, flags, streamId, payload));
  }

  private write(bytes: Buffer): void {
    if (this.corked !== undefined) this.corked.push(bytes);
    else if (!this.isClosed && !this.socket.destroyed) this.socket.write(bytes);
  }

  private onData(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let at = 0;
    while (this.pending.length - at >= FRAME_HEADER_BYTES) {
      const length = this.pending.readUIntBE(at, 3);
      const end = at + FRAME_HEADER_BYTES + length;
      if (this.pending.length < end) break;
      const frame: ReceivedFrame = {
        type: this.pending.readUInt8(at + 3),
        flags: this.pending.readUInt8(at + 4),
        streamId: this.pending.readUInt32BE(at + 5) & 0x7fffffff,
        payload: Buffer.from(this.pending.subarray(at + FRAME_HEADER_BYTES, end)),
      };
      at = end;
      this.frames.push(frame);
      if (frame.type === FrameType.DATA) this.dataBytes.set(frame.streamId, (this.dataBytes.get(frame.streamId) ?? 0) + length);
      if (frame.type === FrameType.SETTINGS && (frame.flags & FrameFlag.ACK) === 0) {
        this.write(encodeFrame(FrameType.SETTINGS, FrameFlag.ACK, 0, Buffer.alloc(0)));
      }
    }
    this.pending = this.pending.subarray(at);
  }
}

function settingsFrame(settings: readonly (readonly [number, number])[]): Buffer {
  const payload = Buffer.alloc(settings.length * SETTING_BYTES);
  settings.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * SETTING_BYTES);
    payload.writeUInt32BE(value, i * SETTING_BYTES + 2);
  });
  return encodeFrame(FrameType.SETTINGS, 0, 0, payload);
}
