/**
 * A hand-rolled HTTP/2 client connection for requests node:http2 refuses to send: header blocks with
 * connection-specific fields (RFC 9113 §8.2.2), which Node's client rejects with ERR_HTTP2_INVALID_CONNECTION_HEADERS
 * before they reach the wire. Frames are written byte by byte (RFC 9113 §4.1) and header blocks use only HPACK
 * "literal header field without indexing — new name" with raw (non-Huffman) strings (RFC 7541 §6.2.2), which any
 * decoder accepts. Received frames are recorded by type, flags and stream; payloads are not HPACK-decoded.
 */
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import { DEFAULT_LIMIT_MS, waitUntil } from '../helpers/fake-upstream.ts';

export const FrameType = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;
export const FrameFlag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER_BYTES = 9;

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export interface RawConnection {
  readonly frames: readonly Frame[];
  readonly closed: boolean;
  /** Sends HEADERS (END_HEADERS, and END_STREAM unless `endStream` is false) on `streamId`. */
  sendHeaders(streamId: number, headers: readonly (readonly [string, string])[], endStream?: boolean): void;
  /** Resolves once the stream got a frame with END_STREAM, an RST_STREAM, or the connection got GOAWAY/closed. */
  waitForStreamEnd(streamId: number, limitMs?: number): Promise<'end-stream' | 'rst-stream' | 'goaway' | 'closed'>;
  /** RST_STREAM code received for the stream, if any. */
  rstCode(streamId: number): number | undefined;
  destroy(): void;
}

export async function openRawConnection(target: { host: string; port: number; tls?: { ca: string } }): Promise<RawConnection> {
  const socket: Duplex = await new Promise<Duplex>((resolve, reject) => {
    const s =
      target.tls === undefined
        ? netConnect(target.port, target.host, () => resolve(s))
        : tlsConnect({ host: target.host, port: target.port, ca: target.tls.ca, ALPNProtocols: ['h2'] }, () => resolve(s));
    s.once('error', reject);
  });
  const frames: Frame[] = [];
  let closed = false;
  let pending: Buffer = Buffer.alloc(0);
  socket.on('error', () => undefined);
  socket.on('close', () => {
    closed = true;
  });
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= FRAME_HEADER_BYTES) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < FRAME_HEADER_BYTES + length) break;
      const frame: Frame = {
        type: pending.readUInt8(3),
        flags: pending.readUInt8(4),
        streamId: pending.readUInt32BE(5) & 0x7fffffff,
        payload: pending.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length),
      };
      pending = pending.subarray(FRAME_HEADER_BYTES + length);
      frames.push(frame);
      if (frame.type === FrameType.SETTINGS && (frame.flags & FrameFlag.ACK) === 0) {
        socket.write(encodeFrame(FrameType.SETTINGS, FrameFlag.ACK, 0, Buffer.alloc(0)));
      }
    }
  });
  socket.write(Buffer.concat([PREFACE, encodeFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0))]));

  const streamEnd = (streamId: number): 'end-stream' | 'rst-stream' | 'goaway' | 'closed' | undefined => {
    for (const f of frames) {
      if (f.streamId === streamId && f.type === FrameType.RST_STREAM) return 'rst-stream';
      if (f.streamId === streamId && (f.type === FrameType.HEADERS || f.type === FrameType.DATA) && (f.flags & FrameFlag.END_STREAM) !== 0) {
        return 'end-stream';
      }
      if (f.type === FrameType.GOAWAY && f.payload.readUInt32BE(0) < streamId) return 'goaway';
    }
    return closed ? 'closed' : undefined;
  };

  return {
    frames,
    get closed() {
      return closed;
    },
    sendHeaders(streamId, headers, endStream = true) {
      const block = Buffer.concat(headers.map(([name, value]) => literalWithoutIndexing(name, value)));
      const flags = FrameFlag.END_HEADERS | (endStream ? FrameFlag.END_STREAM : 0);
      socket.write(encodeFrame(FrameType.HEADERS, flags, streamId, block));
    },
    async waitForStreamEnd(streamId, limitMs = DEFAULT_LIMIT_MS) {
      await waitUntil(() => streamEnd(streamId) !== undefined, limitMs, () => `stream ${streamId} got no final frame, reset or GOAWAY`);
      return streamEnd(streamId) ?? 'closed';
    },
    rstCode(streamId) {
      const rst = frames.find((f) => f.streamId === streamId && f.type === FrameType.RST_STREAM);
      return rst?.payload.readUInt32BE(0);
    },
    destroy() {
      socket.destroy();
    },
  };
}

export function encodeFrame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUIntBE(payload.length, 0, 3);
  header.writeUInt8(type, 3);
  header.writeUInt8(flags, 4);
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

/** RFC 7541 §6.2.2 with a new name: 0000 0000, name string, value string; strings raw (H = 0). */
export function literalWithoutIndexing(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x00]), hpackString(name), hpackString(value)]);
}

function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1');
  return Buffer.concat([hpackInteger(bytes.length, 7, 0x00), bytes]);
}

/** RFC 7541 §5.1 integer with an N-bit prefix; `high` holds the bits above the prefix. */
function hpackInteger(value: number, prefixBits: number, high: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([high | value]);
  const out = [high | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}
