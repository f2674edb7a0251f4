/**
 * The client's side of a call as the proxy sees it (issue #17): what a Call (call.ts) reads requests from and
 * writes answers to. An HTTP/2 stream of the native engine is one as it is (http2/connection.ts Http2Stream, the
 * gRPC hot path: no wrapper, no indirection); the other kinds wrap something else and speak gRPC towards the Call:
 *
 * - an HTTP/1.1 exchange (http1/http1-stream.ts), for the routes that serve browsers and REST clients;
 * - a grpc-web stream (web/grpc-web-stream.ts) over either of those: request body decoded, trailers put in the body;
 * - a transcoded call (transcode/transcode-stream.ts): JSON in, a protobuf message out, and back.
 *
 * The contract is Http2Stream's: DATA handed to the handler is credited back with consume() once used, sendData's
 * bytes are reported with the handler's onSent() once they left, the handler hears onReset() when the client went.
 */
import type { Socket } from 'node:net';
import type { StreamHandler } from '../http2/connection.ts';

export interface Downstream {
  handler: StreamHandler<Downstream> | undefined;
  /** When the request arrived (ms since the epoch); 0 when unknown. */
  readonly openedAt: number;
  /** Set once the exchange is over (answered, reset or gone): late calls are no-ops. */
  readonly removed: boolean;
  /**
   * The HTTP status the client was answered with, when a wrapping stream answers with another than the gRPC
   * answer's (transcoding's 404 for NOT_FOUND): what metrics and the access log record. Undefined otherwise.
   */
  readonly answeredStatus?: number | undefined;
  /** The client's connection (its addresses, and whether it is TLS). */
  readonly conn: { readonly socket: Socket };
  /** A header block: response headers (with `:status`), or trailers when headers were sent. */
  sendHeaders(fields: string[], endStream: boolean): void;
  /** `data` is valid only during the call: the callee copies what it keeps. */
  sendData(data: Buffer, endStream: boolean): void;
  /** `bytes` of what the handler was given are used: the client may send as much more. */
  consume(bytes: number): void;
  /** Abort the exchange (RST_STREAM with `code` on HTTP/2; the connection on HTTP/1.1). */
  reset(code: number): void;
}
