/**
 * The connection lifecycle limits of the data plane's client listeners (issue #11 case 7), read from
 * `nginx_config` under the names APISIX and nginx give them, with this gateway's defaults:
 *
 * - `nginx_config.http.client_header_timeout` (10 s): from accept to the first request HEADERS frame. Covers the TLS
 *   handshake, the HTTP/2 preface and SETTINGS, and the first HEADERS together: a connection that has not sent a
 *   request by then is closed (GOAWAY first when it is already an HTTP/2 session). APISIX ships 60 s, written for
 *   HTTP/1.1 headers; a gRPC client sends its preface and first HEADERS in its first flight, so 10 s is generous
 *   even across continents while it frees a half-open connection six times sooner (issue #11 asks for ≈10 s).
 * - `nginx_config.http.keepalive_timeout` (60 s, APISIX's; nginx's own is 75 s): a session with no open stream for
 *   this long gets GOAWAY(NO_ERROR) and is closed. A session with an open stream is never idle.
 * - `nginx_config.http.client_body_timeout` (60 s, nginx's): on HTTP/1.1 (grpc-web and transcoding routes), the
 *   longest wait between two reads of a request body the gateway is reading; then 408 (or, once the answer began,
 *   the connection is cut). A body the gateway holds back (flow control) is not waiting on the client.
 * - `nginx_config.event.worker_connections` (10620, APISIX's): client connections one worker process holds at
 *   once (nginx's limit is per worker too; with `worker_processes: N` the machine holds up to N times this).
 * - `nginx_config.max_connections_per_ip` (1000; 0 = no cap): client connections from one address in one worker
 *   process. Not an nginx directive (nginx does this with `limit_conn`, APISIX with its limit-conn plugin). A
 *   grpc-js or grpc-go channel keeps one connection per backend address, so even a heavy client machine running
 *   hundreds of channels stays far below it, while one address can no longer take a worker's whole budget. Set it to
 *   0 behind a load balancer that does not pass client addresses through (every connection then comes from it).
 */
import { ConfigError } from './errors.ts';
import { durationMs } from './config-values.ts';
import type { Duration } from './schema/config-common.ts';
import type { NginxConfigFile } from './schema/config-nginx.ts';

export interface ConnectionLimits {
  /** Accept → first request HEADERS (TLS handshake and preface included), in ms. */
  headerTimeoutMs: number;
  /** A session with no open stream is closed after this long, in ms. */
  keepaliveTimeoutMs: number;
  /** HTTP/1.1: the longest wait between two reads of a request body, in ms (then 408, or the connection cut). */
  bodyTimeoutMs: number;
  /** Client connections per worker process. */
  maxConnections: number;
  /** Client connections per client address per worker process; 0 = no cap. */
  maxConnectionsPerIp: number;
}

export const DEFAULT_CONNECTION_LIMITS: Readonly<ConnectionLimits> = {
  headerTimeoutMs: 10_000,
  keepaliveTimeoutMs: 60_000,
  bodyTimeoutMs: 60_000,
  maxConnections: 10_620,
  maxConnectionsPerIp: 1_000,
};

/**
 * Timers above 2^31−1 ms fire after 1 ms in Node (TimeoutOverflowWarning), so a huge value would close every
 * connection at once; a day is far beyond any sensible setting and refused above.
 */
const MAX_TIMEOUT_MS = 24 * 60 * 60 * 1000;
/** Below this a client on a slow link could not even finish a TLS handshake; tests use 300–500 ms. */
const MIN_TIMEOUT_MS = 100;

/** The limits from the validated `nginx_config` (the caps' bounds are the schema's, shared/schema/config-nginx.ts). */
export function parseConnectionLimits(nginx: NginxConfigFile): ConnectionLimits {
  const http = nginx.http ?? {};
  return {
    headerTimeoutMs: timeout(http.client_header_timeout, 'nginx_config.http.client_header_timeout', DEFAULT_CONNECTION_LIMITS.headerTimeoutMs),
    keepaliveTimeoutMs: timeout(http.keepalive_timeout, 'nginx_config.http.keepalive_timeout', DEFAULT_CONNECTION_LIMITS.keepaliveTimeoutMs),
    bodyTimeoutMs: timeout(http.client_body_timeout, 'nginx_config.http.client_body_timeout', DEFAULT_CONNECTION_LIMITS.bodyTimeoutMs),
    maxConnections: nginx.event?.worker_connections ?? DEFAULT_CONNECTION_LIMITS.maxConnections,
    maxConnectionsPerIp: nginx.max_connections_per_ip ?? DEFAULT_CONNECTION_LIMITS.maxConnectionsPerIp,
  };
}

function timeout(value: Duration | null | undefined, what: string, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  const ms = durationMs(value);
  if (ms < MIN_TIMEOUT_MS || ms > MAX_TIMEOUT_MS) {
    throw new ConfigError(`${what}: expected from ${MIN_TIMEOUT_MS}ms to ${MAX_TIMEOUT_MS / 3_600_000}h, got ${String(value)}`);
  }
  return ms;
}
