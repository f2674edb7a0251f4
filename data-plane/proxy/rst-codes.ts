/**
 * RST_STREAM error codes (RFC 9113 §7) as a person reads them, and the gRPC status PROTOCOL-HTTP2.md ("Errors")
 * tells a client to report for each when a stream is reset before its status arrived.
 */
import { GrpcStatus, type GrpcStatusCode } from '../../shared/grpc-status.ts';
import { ErrorCode } from '../http2/frame.ts';

const RST_NAMES = [
  'NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED',
  'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED',
] as const;

/**
 * A node:http2 stream's RST_STREAM code, NO_ERROR while it has none: node:http2 leaves `rstCode` undefined until the
 * stream closes, although @types/node types it as a number.
 */
export function rstCodeOf(stream: { readonly rstCode?: number | undefined }): number {
  return stream.rstCode ?? ErrorCode.NO_ERROR;
}

export function rstName(code: number): string {
  return `${RST_NAMES[code] ?? 'UNKNOWN'} (${code})`;
}

export function statusForRst(code: number): GrpcStatusCode {
  switch (code) {
    case ErrorCode.REFUSED_STREAM:
      return GrpcStatus.UNAVAILABLE;
    case ErrorCode.CANCEL:
      return GrpcStatus.CANCELLED;
    case ErrorCode.ENHANCE_YOUR_CALM:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case ErrorCode.INADEQUATE_SECURITY:
      return GrpcStatus.PERMISSION_DENIED;
    default:
      return GrpcStatus.INTERNAL;
  }
}
