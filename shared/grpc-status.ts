/**
 * gRPC status codes (grpc/grpc doc/statuscodes.md) and the HTTP→gRPC mapping the spec gives for responses that
 * carry no grpc-status (doc/http-grpc-status-mapping.md). Both planes and the tests import these names instead of
 * bare numbers.
 */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/** http-grpc-status-mapping.md: what a client must report when an HTTP status arrives without grpc-status. */
export function grpcStatusFromHttp(httpStatus: number): GrpcStatusCode {
  switch (httpStatus) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/**
 * The HTTP status google.rpc.Code documents for each gRPC status (google/rpc/code.proto; grpc-gateway and HTTP/JSON
 * transcoding use it): what a gRPC answer means in HTTP terms, e.g. for api-breaker's `http_statuses`.
 */
const HTTP_OF_GRPC: readonly number[] = [200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401];

export function httpStatusFromGrpc(grpcStatus: number): number {
  return HTTP_OF_GRPC[grpcStatus] ?? 500;
}
