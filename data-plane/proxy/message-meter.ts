/**
 * Watches the gRPC message framing of a byte stream without decoding or copying it (PROTOCOL-HTTP2.md
 * "Length-Prefixed-Message": 1 byte compressed flag, 4 bytes big-endian length, then the message), to enforce a
 * per-message size cap. Chunks may split a header or a message anywhere; only the 5 header bytes are looked at.
 * Used only on routes with `grpc-limits`, so calls without limits pay nothing.
 */
const HEADER_BYTES = 5;

export class MessageMeter {
  private readonly limit: number;
  private headerSeen = 0;
  private readonly header = Buffer.alloc(HEADER_BYTES);
  private bodyLeft = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Feeds the next chunk; returns the size of the first message over the limit, or -1 while all are within it. */
  feed(chunk: Buffer): number {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.bodyLeft > 0) {
        const take = Math.min(this.bodyLeft, chunk.length - offset);
        this.bodyLeft -= take;
        offset += take;
        continue;
      }
      const take = Math.min(HEADER_BYTES - this.headerSeen, chunk.length - offset);
      chunk.copy(this.header, this.headerSeen, offset, offset + take);
      this.headerSeen += take;
      offset += take;
      if (this.headerSeen < HEADER_BYTES) break;
      this.headerSeen = 0;
      const length = this.header.readUInt32BE(1);
      if (length > this.limit) return length;
      this.bodyLeft = length;
    }
    return -1;
  }
}
