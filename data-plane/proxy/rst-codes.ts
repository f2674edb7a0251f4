/**
 * RST_STREAM error codes (RFC 9113 §7) as a person reads them, and the gRPC status PROTOCOL-HTTP2.md ("Errors")
 * tells a client to report for each when a stream is reset before its status arrived.
 */
import { constants } from 'node:http2';
import { GrpcStatus, type GrpcStatusCode } from '../../shared/grpc-status.ts';

const RST_NAMES = [
  'NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED',
  'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED',
] as const;

export function rstName(code: number): string {
  return `${RST_NAMES[code] ?? 'UNKNOWN'} (${code})`;
}

export function statusForRst(code: number): GrpcStatusCode {
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
