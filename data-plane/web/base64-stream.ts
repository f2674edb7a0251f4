/**
 * grpc-web-text's base64 (gRPC PROTOCOL-WEB.md, "Text-encoded (response) streams"): the body is base64 that may
 * be padded wherever its sender flushed ("the client library should not assume base64 padding always happens at
 * the boundary of message frames"), so a stream of it is decoded in runs that each end at a padded quantum, and a
 * chunk that ends within a quantum keeps its last characters for the next one. Node's decoder stops at the first
 * `=` and skips characters outside the alphabet; this one refuses them instead (a corrupt body is an error, not
 * silently different bytes).
 */

/** The base64 alphabet (RFC 4648 §4) and its padding, nothing else. */
const BASE64_TEXT = /^[A-Za-z0-9+/=]*$/;
const PAD = 61; // '='

export class Base64Decoder {
  /** Characters of an unfinished quantum (at most 3). */
  private rest = '';

  /** The bytes `chunk` completes (maybe none); throws on a character outside base64 or misplaced padding. */
  push(chunk: Buffer): Buffer {
    const text = this.rest + chunk.toString('latin1');
    if (!BASE64_TEXT.test(text)) throw new Error('grpc-web-text body is not base64');
    const parts: Buffer[] = [];
    let from = 0;
    for (;;) {
      const pad = text.indexOf('=', from);
      if (pad < 0) break;
      // The quantum holding this padding ends the run; it must be whole, padding at its end only.
      const end = from + Math.ceil((pad - from + 1) / 4) * 4;
      if (end > text.length) break; // its last characters come with the next chunk
      for (let i = pad; i < end; i++) if (text.charCodeAt(i) !== PAD) throw new Error('grpc-web-text body has misplaced base64 padding');
      if (end - pad > 2) throw new Error('grpc-web-text body has misplaced base64 padding');
      parts.push(Buffer.from(text.slice(from, end), 'base64'));
      from = end;
    }
    const whole = from + Math.floor((text.length - from) / 4) * 4;
    const pad = text.indexOf('=', from);
    if (pad >= 0 && pad < whole) throw new Error('grpc-web-text body has misplaced base64 padding');
    if (whole > from) parts.push(Buffer.from(text.slice(from, whole), 'base64'));
    this.rest = text.slice(whole);
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  }

  /** True when the body ended on a quantum's boundary (nothing left over). */
  get complete(): boolean {
    return this.rest.length === 0;
  }
}

/**
 * Response bytes as base64 text, each chunk padded on its own: the spec lets a server pad wherever it flushes, and
 * holding a chunk's last one or two bytes back for the next would keep a streamed message from the client until
 * the one after it arrives.
 */
export function base64Chunk(data: Buffer): Buffer {
  return Buffer.from(data.toString('base64'), 'latin1');
}
