/**
 * Relays one call over an upstream session: request headers, then bytes both ways with backpressure (pipe()
 * pauses the reader when the writer's HTTP/2 flow-control window is full, so no message is ever buffered whole),
 * then the response headers, trailers or trailers-only response exactly as the upstream sent them.
 *
 * Failure rules (gRPC PROTOCOL-HTTP2.md):
 * - the client resets or goes away → the upstream stream is reset with CANCEL;
 * - the upstream resets or its session dies before response headers → trailers-only UNAVAILABLE (or the status the
 *   spec maps the RST_STREAM code to);
 * - after response headers, a stream that ends without grpc-status (RST, truncation, RST_STREAM(NO_ERROR) taken
 *   for a clean end) gets error trailers: it is never reported as a success;
 * - a non-200 HTTP status is mapped by the spec's HTTP→gRPC table.
 */
import {
  constants,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import { UpstreamProtocolError, UpstreamReset } from '../../shared/errors.ts';
import { GrpcStatus, grpcStatusFromHttp, type GrpcStatusCode } from '../../shared/grpc-status.ts';
import type { ResolvedUpstream, UpstreamNode } from '../upstream/upstream.ts';
import { relayedHeaders, upstreamRequestHeaders } from './headers.ts';
import { errorTrailers, respondError } from './respond-error.ts';

const END_STREAM = constants.NGHTTP2_FLAG_END_STREAM;

export function forward(
  down: ServerHttp2Stream,
  downHeaders: IncomingHttpHeaders,
  session: ClientHttp2Session,
  upstream: ResolvedUpstream,
  node: UpstreamNode,
): void {
  if (down.destroyed || down.closed) return; // the client left while we were connecting
  let up: ClientHttp2Stream;
  try {
    up = session.request(upstreamRequestHeaders(downHeaders, upstream, node), { endStream: false });
  } catch (err) {
    respondError(down, new UpstreamReset(`cannot open a stream on ${node.key}: ${(err as Error).message}`));
    return;
  }

  let trailers: OutgoingHttpHeaders | undefined;
  let responded = false;
  let done = false; // the client has (or is about to get) its final frame

  up.on('response', (headers: IncomingHttpHeaders, flags: number) => {
    if (down.destroyed) return;
    // Node types :status as a string but hands over a number; Number() accepts both.
    const status = Number(headers[':status']);
    if (status !== 200) {
      done = true;
      up.close(constants.NGHTTP2_CANCEL);
      respondError(down, new UpstreamProtocolError(`upstream answered HTTP status ${status}`, grpcStatusFromHttp(status)));
      return;
    }
    responded = true;
    if ((flags & END_STREAM) !== 0) {
      // Trailers-only response: one HEADERS frame carrying grpc-status. Keep it one frame.
      done = true;
      const out = relayedHeaders(headers);
      if (out['grpc-status'] === undefined) Object.assign(out, errorTrailers(missingStatus()));
      down.respond(out, { endStream: true });
      return;
    }
    down.respond(relayedHeaders(headers), { waitForTrailers: true });
    up.pipe(down);
  });

  up.on('trailers', (headers: IncomingHttpHeaders) => {
    trailers = relayedHeaders(headers);
  });

  down.on('wantTrailers', () => {
    done = true;
    const out = trailers !== undefined && trailers['grpc-status'] !== undefined ? trailers : errorTrailers(missingStatus());
    down.sendTrailers(out);
  });

  up.on('close', () => {
    if (done || down.destroyed) return;
    const code = up.rstCode ?? constants.NGHTTP2_NO_ERROR;
    const failure =
      code === constants.NGHTTP2_NO_ERROR
        ? missingStatus()
        : new UpstreamReset(`upstream reset the stream with ${rstName(code)}`, statusForRst(code));
    if (!responded) {
      done = true;
      respondError(down, failure);
      return;
    }
    if (code !== constants.NGHTTP2_NO_ERROR || trailers?.['grpc-status'] === undefined) {
      // Response headers are out: end the body and let wantTrailers carry the error status.
      trailers = errorTrailers(failure);
      up.unpipe(down);
      if (!down.writableEnded) down.end();
    }
  });

  up.on('error', () => {
    // 'close' follows with rstCode set; the status is decided there.
  });

  down.on('close', () => {
    if (!up.closed && !up.destroyed) up.close(constants.NGHTTP2_CANCEL);
  });
  down.on('error', () => {
    // The client reset or broke its stream; 'close' cancels the upstream side.
  });

  down.pipe(up);
}

function missingStatus(): UpstreamProtocolError {
  return new UpstreamProtocolError('stream ended without grpc-status', GrpcStatus.UNAVAILABLE);
}

/** PROTOCOL-HTTP2.md "Errors": how a client maps RST_STREAM codes to statuses. */
function statusForRst(code: number): GrpcStatusCode {
  switch (code) {
    case constants.NGHTTP2_REFUSED_STREAM:
      return GrpcStatus.UNAVAILABLE;
    case constants.NGHTTP2_CANCEL:
      return GrpcStatus.CANCELLED;
    case constants.NGHTTP2_ENHANCE_YOUR_CALM:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case constants.NGHTTP2_INADEQUATE_SECURITY:
      return GrpcStatus.PERMISSION_DENIED;
    default:
      return GrpcStatus.INTERNAL;
  }
}

/** RFC 9113 §7 error code names, for messages a person reads. */
const RST_NAMES = [
  'NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED',
  'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED',
] as const;

function rstName(code: number): string {
  return `${RST_NAMES[code] ?? 'UNKNOWN'} (${code})`;
}
