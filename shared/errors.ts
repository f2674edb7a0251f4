/**
 * The one error hierarchy of the gateway. Every error the gateway raises itself carries a stable code, the gRPC
 * status the data plane answers with (only data-plane/proxy/respond-error.ts writes it) and the HTTP status the
 * admin API answers with (only control-plane/admin/error-handler.ts writes it).
 *
 * `message` is the detail, for the log line; `publicMessage` is what a gRPC client is told in `grpc-message`. Errors
 * about the upstream leg keep node addresses, socket and TLS/OpenSSL errors in the detail only: a client learns that
 * the upstream failed and how (the status and a stable text), never where the upstream is or why its handshake
 * failed (Envoy answers "upstream connect error or disconnect/reset before headers" the same way).
 */
import { GrpcStatus, type GrpcStatusCode } from './grpc-status.ts';

/**
 * Every code a GatewayError carries. A code is stable: it names one condition for as long as the gateway raises it,
 * whatever its message says; docs/errors.md lists each one with its statuses (test/shared/error-codes.test.ts keeps
 * the two in step). Logs carry it as `err.code`.
 */
export const GatewayErrorCode = {
  // data plane: answered to gRPC clients as a grpc-status
  ROUTE_NOT_FOUND: 'ROUTE_NOT_FOUND',
  NO_HEALTHY_NODE: 'NO_HEALTHY_NODE',
  UPSTREAM_CONNECT: 'UPSTREAM_CONNECT',
  UPSTREAM_RESET: 'UPSTREAM_RESET',
  UPSTREAM_PROTOCOL: 'UPSTREAM_PROTOCOL',
  DEADLINE_EXCEEDED: 'DEADLINE_EXCEEDED',
  UPSTREAM_TIMEOUT: 'UPSTREAM_TIMEOUT',
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  MESSAGE_TOO_LARGE: 'MESSAGE_TOO_LARGE',
  BAD_REQUEST: 'BAD_REQUEST',
  OVERLOADED: 'OVERLOADED',
  ACCESS_DENIED: 'ACCESS_DENIED',
  AUTHENTICATION_FAILED: 'AUTHENTICATION_FAILED',
  RATE_LIMITED: 'RATE_LIMITED',
  RATE_LIMIT_STORE_UNAVAILABLE: 'RATE_LIMIT_STORE_UNAVAILABLE',
  FAULT_INJECTED: 'FAULT_INJECTED',
  CIRCUIT_OPEN: 'CIRCUIT_OPEN',
  REWRITE_FAILED: 'REWRITE_FAILED',
  JSON_MAPPING_FAILED: 'JSON_MAPPING_FAILED',
  // control plane: answered to admin clients as an HTTP status with {"error_msg": …}
  INVALID_CONFIGURATION: 'INVALID_CONFIGURATION',
  ADMIN_BAD_REQUEST: 'ADMIN_BAD_REQUEST',
  KEY_NOT_FOUND: 'KEY_NOT_FOUND',
  UNAUTHORIZED: 'UNAUTHORIZED',
  UNSUPPORTED_RESOURCE_TYPE: 'UNSUPPORTED_RESOURCE_TYPE',
  ADMIN_ROUTE_NOT_FOUND: 'ADMIN_ROUTE_NOT_FOUND',
  ADMIN_METHOD_NOT_ALLOWED: 'ADMIN_METHOD_NOT_ALLOWED',
  STORE_CONFLICT: 'STORE_CONFLICT',
  ADMIN_FORBIDDEN: 'ADMIN_FORBIDDEN',
  SECRET_DECRYPT_FAILED: 'SECRET_DECRYPT_FAILED',
  STORE_UNAVAILABLE: 'STORE_UNAVAILABLE',
  // start-up: conf/config.yaml or the environment is unusable; the process exits with the message
  CONFIG: 'CONFIG',
} as const;
export type GatewayErrorCode = (typeof GatewayErrorCode)[keyof typeof GatewayErrorCode];

export interface GatewayErrorOptions extends ErrorOptions {
  /** What clients are told; the message itself when unset (an error whose detail is safe to show). */
  publicMessage?: string;
}

export class GatewayError extends Error {
  readonly code: GatewayErrorCode;
  readonly grpcStatus: GrpcStatusCode;
  readonly httpStatus: number;
  readonly publicMessage: string;

  constructor(code: GatewayErrorCode, message: string, grpcStatus: GrpcStatusCode, httpStatus: number, options?: GatewayErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.grpcStatus = grpcStatus;
    this.httpStatus = httpStatus;
    this.publicMessage = options?.publicMessage ?? message;
  }
}

/** The client-facing texts of upstream failures: stable, with no address and no socket or TLS error in them. */
export const PublicMessage = {
  upstreamConnect: 'upstream connect failed',
  upstreamStream: 'upstream stream failed',
  upstreamProtocol: 'upstream broke the gRPC protocol',
  internal: 'gateway internal error',
} as const;

// ---- data plane -------------------------------------------------------------------------------------------------

export class RouteNotFound extends GatewayError {
  constructor(path: string | undefined) {
    super('ROUTE_NOT_FOUND', `no route matched ${path ?? '(no :path)'}`, GrpcStatus.UNIMPLEMENTED, 404);
  }
}

export class NoHealthyNode extends GatewayError {
  constructor(upstream: string) {
    super('NO_HEALTHY_NODE', `no valid upstream node for ${upstream}`, GrpcStatus.UNAVAILABLE, 503);
  }
}

export class UpstreamConnectError extends GatewayError {
  constructor(target: string, cause: unknown) {
    super('UPSTREAM_CONNECT', `failed to connect to upstream ${target}: ${describe(cause)}`, GrpcStatus.UNAVAILABLE, 502, {
      cause,
      publicMessage: PublicMessage.upstreamConnect,
    });
  }
}

/** A stream to the upstream failed: refused, reset, not openable, or its connection lost. */
export class UpstreamReset extends GatewayError {
  constructor(detail: string, grpcStatus: GrpcStatusCode = GrpcStatus.UNAVAILABLE) {
    super('UPSTREAM_RESET', `upstream stream failed: ${detail}`, grpcStatus, 502, { publicMessage: PublicMessage.upstreamStream });
  }
}

export class UpstreamProtocolError extends GatewayError {
  constructor(detail: string, grpcStatus: GrpcStatusCode = GrpcStatus.INTERNAL) {
    super('UPSTREAM_PROTOCOL', `upstream broke the gRPC protocol: ${detail}`, grpcStatus, 502, { publicMessage: PublicMessage.upstreamProtocol });
  }
}

export class DeadlineExceeded extends GatewayError {
  constructor(detail: string) {
    super('DEADLINE_EXCEEDED', detail, GrpcStatus.DEADLINE_EXCEEDED, 504);
  }
}

/** `timeout.read` (stream idle) or `timeout.send` (upstream not reading) ran out: nginx's 504, a retryable status. */
export class UpstreamTimeout extends GatewayError {
  constructor(detail: string) {
    super('UPSTREAM_TIMEOUT', detail, GrpcStatus.UNAVAILABLE, 504);
  }
}

/**
 * The request is not gRPC. PROTOCOL-HTTP2.md: servers SHOULD answer a content-type that does not begin with
 * application/grpc with HTTP 415, so plain HTTP clients cannot take the error for a success.
 */
export class UnsupportedMediaType extends GatewayError {
  constructor(contentType: string | undefined) {
    super('UNSUPPORTED_MEDIA_TYPE', `invalid gRPC request content-type ${JSON.stringify(contentType ?? '')}`, GrpcStatus.INTERNAL, 415);
  }
}

/** A gRPC message over a route's `grpc-limits` cap (gRPC servers answer an oversized message the same way). */
export class MessageTooLarge extends GatewayError {
  constructor(direction: 'request' | 'response', size: number, limit: number) {
    super('MESSAGE_TOO_LARGE', `${direction} message of ${size} bytes exceeds the route's limit of ${limit} bytes`, GrpcStatus.RESOURCE_EXHAUSTED, 413);
  }
}

export class BadRequest extends GatewayError {
  constructor(detail: string) {
    super('BAD_REQUEST', detail, GrpcStatus.INTERNAL, 400);
  }
}

/** A plugin refused the client (`ip-restriction`): PERMISSION_DENIED with the plugin's message. */
export class AccessDenied extends GatewayError {
  constructor(message: string, httpStatus = 403) {
    super('ACCESS_DENIED', message, GrpcStatus.PERMISSION_DENIED, httpStatus);
  }
}

/** An authentication plugin found no valid credential (`key-auth`): UNAUTHENTICATED with its message. */
export class AuthenticationFailed extends GatewayError {
  constructor(message: string) {
    super('AUTHENTICATION_FAILED', message, GrpcStatus.UNAUTHENTICATED, 401);
  }
}

/** Over a rate limit (`limit-count`): RESOURCE_EXHAUSTED, the status gRPC gives an exhausted quota. */
export class RateLimited extends GatewayError {
  constructor(message: string, httpStatus = 503) {
    super('RATE_LIMITED', message, GrpcStatus.RESOURCE_EXHAUSTED, httpStatus);
  }
}

/**
 * limit-count with a Redis policy could not count the call (Redis unreachable or too slow) and `allow_degradation`
 * is off: UNAVAILABLE, which clients may retry; APISIX answers 500.
 */
export class RateLimitStoreUnavailable extends GatewayError {
  constructor(detail: string) {
    super('RATE_LIMIT_STORE_UNAVAILABLE', `rate limit store unavailable: ${detail}`, GrpcStatus.UNAVAILABLE, 500);
  }
}

/** `api-breaker` is open: the route's upstream failed too often; the call is answered without reaching it. */
export class CircuitOpen extends GatewayError {
  constructor(message: string, grpcStatus: GrpcStatusCode, httpStatus: number) {
    super('CIRCUIT_OPEN', message, grpcStatus, httpStatus);
  }
}

/** `fault-injection`'s abort: the call answered as configured, without reaching the upstream. */
export class FaultInjected extends GatewayError {
  constructor(message: string, grpcStatus: GrpcStatusCode = GrpcStatus.UNAVAILABLE, httpStatus = 503) {
    super('FAULT_INJECTED', message, grpcStatus, httpStatus);
  }
}

/**
 * `proxy-rewrite` could not make the `:path` sent upstream: the rewritten path (with `$variables` or `regex_uri`'s
 * captures substituted) is no valid gRPC path, or the client's path is too long for `regex_uri`'s pattern to be run
 * on. INTERNAL, as APISIX answers 500 when its substitution fails. The detail (route, path) is for the log line; the
 * client is told a fixed text.
 */
export class RewriteFailed extends GatewayError {
  constructor(detail: string) {
    super('REWRITE_FAILED', `proxy-rewrite: ${detail}`, GrpcStatus.INTERNAL, 500, { publicMessage: 'the gateway could not rewrite the request path' });
  }
}

/**
 * `grpc-transcode` could not map a message between JSON and protobuf (data-plane/transcode/json-mapping.ts). A
 * request whose JSON body or query string does not fit the method's input message is the client's error:
 * INVALID_ARGUMENT, HTTP 400, with the field path and the rule in the message (`field "user.age": expected an
 * integer, got "x"`), safe to show. A response that cannot be shown as JSON (bytes that do not decode as the method's
 * output, an Any of a type the proto does not define) is not the client's: INTERNAL, HTTP 502 (the upstream's answer
 * could not be served), and the client is told a fixed text.
 */
export class JsonMappingError extends GatewayError {
  constructor(detail: string, direction: 'request' | 'response' = 'request') {
    if (direction === 'request') super('JSON_MAPPING_FAILED', detail, GrpcStatus.INVALID_ARGUMENT, 400);
    else super('JSON_MAPPING_FAILED', detail, GrpcStatus.INTERNAL, 502, { publicMessage: 'the upstream response cannot be mapped to JSON' });
  }
}

// ---- control plane ----------------------------------------------------------------------------------------------

export class InvalidConfiguration extends GatewayError {
  constructor(detail: string) {
    super('INVALID_CONFIGURATION', `invalid configuration: ${detail}`, GrpcStatus.INVALID_ARGUMENT, 400);
  }
}

/** A 400 whose message is not prefixed (APISIX writes e.g. `wrong route id` bare). */
export class AdminBadRequest extends GatewayError {
  constructor(message: string) {
    super('ADMIN_BAD_REQUEST', message, GrpcStatus.INVALID_ARGUMENT, 400);
  }
}

export class KeyNotFound extends GatewayError {
  constructor(key: string) {
    super('KEY_NOT_FOUND', `Key not found: ${key}`, GrpcStatus.NOT_FOUND, 404);
  }
}

export class Unauthorized extends GatewayError {
  readonly description: string;
  constructor(description: string) {
    super('UNAUTHORIZED', 'failed to check token', GrpcStatus.UNAUTHENTICATED, 401);
    this.description = description;
  }
}

/** `/apisix/admin/<segment>` names no resource this gateway serves (APISIX answers 404 too). */
export class UnsupportedResourceType extends GatewayError {
  constructor(segment: string) {
    super('UNSUPPORTED_RESOURCE_TYPE', `Unsupported resource type: ${segment}`, GrpcStatus.NOT_FOUND, 404);
  }
}

/** No admin route for this method and path (APISIX answers 404 `{"error_msg":"not found"}`). */
export class AdminRouteNotFound extends GatewayError {
  constructor() {
    super('ADMIN_ROUTE_NOT_FOUND', 'not found', GrpcStatus.NOT_FOUND, 404);
  }
}

/** A method a resource type does not take: POST and PATCH of a consumer (APISIX answers 405 with this text). */
export class AdminMethodNotAllowed extends GatewayError {
  constructor(method: string, singular: string) {
    super('ADMIN_METHOD_NOT_ALLOWED', `not supported \`${method}\` method for ${singular}`, GrpcStatus.UNIMPLEMENTED, 405);
  }
}

/**
 * A compare-and-swap write lost the race against other writers more times than the store retries. APISIX's text
 * (`value changed before overwritten`, from its PATCH), but 409 where APISIX answers 503: a write
 * conflict is not an outage, and a client or monitor must be able to tell the two apart (issue #11, case 10).
 */
export class StoreConflict extends GatewayError {
  constructor(key: string) {
    super('STORE_CONFLICT', `value changed before overwritten: ${key}`, GrpcStatus.ABORTED, 409);
  }
}

/**
 * The client's address is outside `deployment.admin.allow_admin` (APISIX renders the list as nginx `allow`/`deny
 * all`, which answers 403).
 */
export class AdminForbidden extends GatewayError {
  constructor(address: string) {
    super('ADMIN_FORBIDDEN', `access from ${address} is not allowed by deployment.admin.allow_admin`, GrpcStatus.PERMISSION_DENIED, 403);
  }
}

/**
 * An encrypted private key that no keyring entry decrypts (shared/crypto.ts). The admin API answers 400 with
 * APISIX's words (`failed to decrypt previous encrypted key`, apisix/ssl.lua); the data plane skips the value.
 */
export class SecretDecryptFailed extends GatewayError {
  constructor(field: string, keyringEntries: number) {
    super(
      'SECRET_DECRYPT_FAILED',
      `failed to decrypt previous encrypted key: property "${field}" matches none of the ${keyringEntries} keyring entries`,
      GrpcStatus.INVALID_ARGUMENT,
      400,
    );
  }
}

export class StoreUnavailable extends GatewayError {
  constructor(cause: unknown) {
    super('STORE_UNAVAILABLE', `etcd is unavailable: ${describe(cause)}`, GrpcStatus.UNAVAILABLE, 503, { cause });
  }
}

export class ConfigError extends GatewayError {
  constructor(detail: string) {
    super('CONFIG', detail, GrpcStatus.INTERNAL, 500);
  }
}

export function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
