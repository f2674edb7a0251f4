/**
 * What the streams that wrap a client's exchange and speak gRPC to the Call share (web/grpc-web-stream.ts,
 * transcode/transcode-stream.ts): they are the inner stream's handler and the Call's Downstream, the inner stream's
 * times, state and connection are theirs, and a reset goes straight through in both directions.
 *
 * ByteMap keeps flow control exact across a transformation that changes sizes (base64, JSON): each chunk handed on
 * is recorded as [bytes on this side, bytes on the other], and bytes reported used on one side are credited to the
 * other once whole chunks are used.
 */
import type { ResetReasonValue, StreamHandler } from '../http2/connection.ts';
import type { Downstream } from './downstream.ts';

export abstract class WrappedDownstream implements Downstream, StreamHandler<Downstream> {
  handler: StreamHandler<Downstream> | undefined;
  protected readonly inner: Downstream;

  constructor(inner: Downstream) {
    this.inner = inner;
    inner.handler = this;
  }

  get openedAt(): number {
    return this.inner.openedAt;
  }

  get removed(): boolean {
    return this.inner.removed;
  }

  get conn(): Downstream['conn'] {
    return this.inner.conn;
  }

  onReset(_inner: Downstream, code: number, reason: ResetReasonValue): void {
    this.handler?.onReset(this, code, reason);
  }

  reset(code: number): void {
    this.inner.reset(code);
  }

  abstract onHeaders(inner: Downstream, fields: string[], endStream: boolean): void;
  abstract onData(inner: Downstream, data: Buffer, endStream: boolean, owned?: boolean): void;
  abstract onSent(inner: Downstream, bytes: number): void;
  abstract sendHeaders(fields: string[], endStream: boolean): void;
  abstract sendData(data: Buffer, endStream: boolean): void;
  abstract consume(bytes: number): void;
}

/** Taken entries (two per chunk) a ByteMap keeps before it drops them. */
const COMPACT_AT = 1024;

export class ByteMap {
  /** Flat [bytes here, bytes there] per chunk, oldest first. */
  private readonly chunks: number[] = [];
  private head = 0;
  /** Bytes here reported used and not yet a whole chunk. */
  private used = 0;

  /** A chunk of `here` bytes on this side that stands for `there` bytes on the other. */
  add(here: number, there: number): void {
    this.chunks.push(here, there);
  }

  /** `bytes` more are used here: the bytes on the other side of the chunks that are now whole. */
  take(bytes: number): number {
    this.used += bytes;
    const chunks = this.chunks;
    let there = 0;
    while (this.head < chunks.length && this.used >= (chunks[this.head] as number)) {
      this.used -= chunks[this.head] as number;
      there += chunks[this.head + 1] as number;
      this.head += 2;
    }
    if (this.head === chunks.length) {
      chunks.length = 0;
      this.head = 0;
    } else if (this.head >= COMPACT_AT) {
      // A long stream whose client always has some unsent: the taken chunks are dropped now and then.
      chunks.splice(0, this.head);
      this.head = 0;
    }
    return there;
  }

  /** Every chunk added was taken. */
  get empty(): boolean {
    return this.head === this.chunks.length;
  }
}
