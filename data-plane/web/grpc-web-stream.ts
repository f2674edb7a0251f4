/**
 * A grpc-web call as the proxy sees it (gRPC PROTOCOL-WEB.md): a Downstream that wraps the client's HTTP/1.1
 * exchange or HTTP/2 stream and speaks gRPC towards the Call.
 *
 * - Request: the body is gRPC's length-prefixed messages already (binary), or those as base64 (text, decoded as it
 *   arrives, padding anywhere: base64-stream.ts). The client's credit is given back for the text it sent as the
 *   decoded bytes are used, so flow control holds end to end in both modes.
 * - Response headers: the content type becomes grpc-web's (binary, or `-text` when the request was text), and the
 *   CORS fields a browser needs to read the answer are added (cors.ts). A trailers-only answer (a gateway-made
 *   error, or an upstream's) stays in the headers: "Trailers may be sent together with response headers, with no
 *   message in the body" (PROTOCOL-WEB.md).
 * - Messages pass through (text: each chunk as padded base64, which the protocol allows wherever a server flushes).
 * - Trailers become the body's last frame: flag 0x80, a 4-byte length, then `name: value\r\n` lines with lower-case
 *   names, and the answer ends.
 */
import { BadRequest } from '../../shared/errors.ts';
import { ErrorCode } from '../http2/connection.ts';
import { ByteMap, WrappedDownstream } from '../proxy/wrapped-downstream.ts';
import type { Downstream } from '../proxy/downstream.ts';
import { Base64Decoder, base64Chunk } from './base64-stream.ts';
import type { WebCors } from './cors.ts';

/** The MSB of a grpc-web frame's flag byte: a trailers frame (PROTOCOL-WEB.md, "Message framing"). */
const TRAILERS_FLAG = 0x80;
const FRAME_HEADER_BYTES = 5;
const EMPTY = Buffer.alloc(0);

/** What a grpc-web request asks for: its body's encoding and the content type the answer carries. */
export interface WebMode {
  readonly text: boolean;
  /** The answer's content type: `application/grpc-web` or `application/grpc-web-text`, with the request's suffix. */
  readonly responseType: string;
  /** What the upstream is sent: `application/grpc` with the same suffix (`+proto`). */
  readonly upstreamType: string;
}

/** The grpc-web content types (`application/grpc-web`, `-text`, with `+proto` or another suffix); undefined otherwise. */
export function webMode(contentType: string | undefined): WebMode | undefined {
  if (contentType === undefined) return undefined;
  const base = contentType.split(';', 1)[0]?.trim().toLowerCase() ?? '';
  const match = /^application\/grpc-web(-text)?(\+[a-z0-9._-]+)?$/.exec(base);
  if (match === null) return undefined;
  const text = match[1] !== undefined;
  const suffix = match[2] ?? '';
  return { text, responseType: `application/grpc-web${text ? '-text' : ''}${suffix}`, upstreamType: `application/grpc${suffix}` };
}

export class GrpcWebStream extends WrappedDownstream {
  private readonly mode: WebMode;
  private readonly cors: WebCors;
  private readonly origin: string | undefined;
  private headersSent = false;
  private readonly decoder: Base64Decoder | undefined;
  /** Text mode: decoded request bytes to the text the client sent, and answer text to the bytes it encodes. */
  private readonly received = new ByteMap();
  private readonly written = new ByteMap();

  constructor(inner: Downstream, mode: WebMode, cors: WebCors, origin: string | undefined) {
    super(inner);
    this.mode = mode;
    this.cors = cors;
    this.origin = origin;
    this.decoder = mode.text ? new Base64Decoder() : undefined;
  }

  // ---- the client's side (the inner stream's handler) --------------------------------------------------------------

  onHeaders(_inner: Downstream, fields: string[], endStream: boolean): void {
    this.handler?.onHeaders(this, fields, endStream);
  }

  onData(_inner: Downstream, data: Buffer, endStream: boolean, owned?: boolean): void {
    const handler = this.handler;
    if (handler === undefined) return this.inner.consume(data.length);
    const decoder = this.decoder;
    if (decoder === undefined) return handler.onData(this, data, endStream, owned);
    let decoded: Buffer;
    try {
      decoded = decoder.push(data);
      if (endStream && !decoder.complete) throw new Error('grpc-web-text body ends within a base64 quantum');
    } catch (err) {
      this.inner.consume(data.length);
      // Answered as a broken request (INTERNAL, as gRPC servers answer a malformed frame), the upstream cancelled.
      const malformed = new BadRequest(err instanceof Error ? err.message : String(err));
      if (handler.onMalformed !== undefined) handler.onMalformed(this, malformed);
      else this.inner.reset(ErrorCode.PROTOCOL_ERROR);
      return;
    }
    if (decoded.length === 0) this.inner.consume(data.length);
    else this.received.add(decoded.length, data.length);
    handler.onData(this, decoded, endStream, true);
  }

  onSent(_inner: Downstream, bytes: number): void {
    const raw = this.mode.text ? this.written.take(bytes) : bytes;
    if (raw > 0) this.handler?.onSent(this, raw);
  }

  // ---- the Call's side -------------------------------------------------------------------------------------------

  sendHeaders(fields: string[], endStream: boolean): void {
    if (!this.headersSent) {
      this.headersSent = true;
      this.inner.sendHeaders(this.webHeaders(fields), endStream);
      return;
    }
    // Trailers: the body's last frame.
    const frame = trailersFrame(fields);
    this.write(frame, true);
  }

  sendData(data: Buffer, endStream: boolean): void {
    this.write(data, endStream);
  }

  private write(data: Buffer, endStream: boolean): void {
    if (!this.mode.text) return this.inner.sendData(data, endStream);
    if (data.length === 0) return this.inner.sendData(EMPTY, endStream);
    const text = base64Chunk(data);
    this.written.add(text.length, data.length);
    this.inner.sendData(text, endStream);
  }

  consume(bytes: number): void {
    const text = this.mode.text ? this.received.take(bytes) : bytes;
    if (text > 0) this.inner.consume(text);
  }

  /** Response headers (or a trailers-only answer) as grpc-web has them: its content type, and CORS. */
  private webHeaders(fields: string[]): string[] {
    const out: string[] = [];
    const exposed: string[] = [];
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i] as string;
      if (name === 'content-length') continue; // the body is not the upstream's
      if (name === 'content-type') {
        out.push(name, this.mode.responseType);
        continue;
      }
      out.push(name, fields[i + 1] as string);
      if (name.charCodeAt(0) !== 58 /* ':' */) exposed.push(name);
    }
    this.cors.answerFields(out, this.origin, exposed);
    return out;
  }
}

/** The trailers as grpc-web's last body frame (PROTOCOL-WEB.md: an HTTP/1 header block without its final CRLF). */
export function trailersFrame(fields: string[]): Buffer {
  let block = '';
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    block += `${name.toLowerCase()}: ${fields[i + 1] as string}\r\n`;
  }
  const length = Buffer.byteLength(block, 'latin1');
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
  frame[0] = TRAILERS_FLAG;
  frame.writeUInt32BE(length, 1);
  frame.write(block, FRAME_HEADER_BYTES, 'latin1');
  return frame;
}
