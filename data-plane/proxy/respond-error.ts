/**
 * The only writer of gateway-made gRPC statuses. Before response headers went out, an error is a trailers-only
 * response (`:status 200`, `content-type: application/grpc`, `grpc-status`, `grpc-message`, END_STREAM), which
 * every gRPC client reads as a proper status rather than "unexpected content-type" (the nginx family's HTML pages).
 * After headers went out, the status travels in the trailers instead (see errorTrailers).
 *
 * Clients get an error's public message only (shared/errors.ts): upstream addresses and socket or TLS errors stay in
 * the detail, which the caller logs.
 */
import type { OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { GatewayError, PublicMessage, UnsupportedMediaType } from '../../shared/errors.ts';
import { GrpcStatus, type GrpcStatusCode } from '../../shared/grpc-status.ts';
import { ErrorCode } from '../http2/frame.ts';

/** `extra`: header fields plugins add to the answer (name, value, …). */
export function respondError(stream: ServerHttp2Stream, err: unknown, extra?: readonly string[]): void {
  if (stream.destroyed || stream.closed) return;
  const { status, message } = statusOf(err);
  if (stream.headersSent) {
    // Headers are out and no trailers can be promised any more: a reset is the only honest signal left.
    stream.close(ErrorCode.INTERNAL_ERROR);
    return;
  }
  const headers: OutgoingHttpHeaders = {
    // gRPC errors travel with HTTP 200; only a request that is not gRPC at all gets the spec's 415.
    ':status': err instanceof UnsupportedMediaType ? 415 : 200,
    'content-type': 'application/grpc',
    'grpc-status': String(status),
    'grpc-message': encodeGrpcMessage(message),
  };
  if (extra !== undefined) addFields(headers, extra);
  stream.respond(headers, { endStream: true });
}

/** `fields` (name, value, …) into a node:http2 header object. */
export function addFields(headers: OutgoingHttpHeaders, fields: readonly string[]): void {
  for (let i = 0; i + 1 < fields.length; i += 2) headers[fields[i] as string] = fields[i + 1];
}

/** The native engine's trailers-only error response as a header list (see respondError). */
export function errorResponseFields(err: unknown): string[] {
  const { status, message } = statusOf(err);
  return [
    ':status', err instanceof UnsupportedMediaType ? '415' : '200',
    'content-type', 'application/grpc',
    'grpc-status', String(status),
    'grpc-message', encodeGrpcMessage(message),
  ];
}

/** The native engine's error trailers as a header list (see errorTrailers). */
export function errorTrailerFields(err: unknown): string[] {
  const { status, message } = statusOf(err);
  return ['grpc-status', String(status), 'grpc-message', encodeGrpcMessage(message)];
}

export function errorTrailers(err: unknown): OutgoingHttpHeaders {
  const { status, message } = statusOf(err);
  return { 'grpc-status': String(status), 'grpc-message': encodeGrpcMessage(message) };
}

function statusOf(err: unknown): { status: GrpcStatusCode; message: string } {
  if (err instanceof GatewayError) return { status: err.grpcStatus, message: err.publicMessage };
  return { status: GrpcStatus.INTERNAL, message: PublicMessage.internal };
}

/**
 * PROTOCOL-HTTP2.md: grpc-message is percent-encoded UTF-8; bytes outside 0x20–0x7E, and '%' itself, are encoded.
 */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The status a header list carries (response headers or trailers): for the observer, which counts what the client
 * was sent. `httpStatus` is 200 when the list has no `:status` (trailers); a missing grpc-status reads UNKNOWN.
 */
export function gatewayStatusOf(fields: readonly string[]): { httpStatus: number; grpcStatus: number; grpcMessage: string } {
  let httpStatus = 200;
  let grpcStatus: number = GrpcStatus.UNKNOWN;
  let grpcMessage = '';
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    if (name === ':status') httpStatus = Number(fields[i + 1]);
    else if (name === 'grpc-status') grpcStatus = Number(fields[i + 1]);
    else if (name === 'grpc-message') grpcMessage = fields[i + 1] as string;
  }
  return { httpStatus, grpcStatus: Number.isInteger(grpcStatus) ? grpcStatus : GrpcStatus.UNKNOWN, grpcMessage };
}
