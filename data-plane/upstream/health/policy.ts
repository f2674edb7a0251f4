/**
 * `upstream.checks` with APISIX's defaults filled in (apisix/schema_def.lua `health_checker`; the admin API never
 * writes defaults, so they are applied here, once per config change). Times in milliseconds.
 */
import type { ChecksConf } from '../../../shared/schema/checks.ts';
import type { ProbeType } from './types.ts';

export interface Thresholds {
  /** Consecutive successes that bring an unhealthy node back; 0 = never by this kind of check. */
  readonly successes: number;
  readonly httpFailures: number;
  readonly tcpFailures: number;
  readonly timeouts: number;
}

export interface ActivePolicy {
  readonly type: ProbeType;
  readonly timeoutMs: number;
  readonly concurrency: number;
  readonly host: string | undefined;
  readonly port: number | undefined;
  readonly httpPath: string;
  readonly httpsVerifyCertificate: boolean | undefined;
  readonly reqHeaders: readonly string[];
  readonly grpcService: string;
  readonly healthyIntervalMs: number;
  readonly unhealthyIntervalMs: number;
  readonly healthyStatuses: readonly number[];
  readonly unhealthyStatuses: readonly number[];
  readonly thresholds: Thresholds;
}

export interface PassivePolicy {
  readonly healthyStatuses: ReadonlySet<number>;
  readonly unhealthyStatuses: ReadonlySet<number>;
  readonly grpcStatuses: ReadonlySet<number>;
  readonly thresholds: Thresholds;
  /** With no active check: how long a node ejected by passive checks stays out (Envoy's base_ejection_time). */
  readonly ejectionMs: number;
}

export interface HealthPolicy {
  readonly active: ActivePolicy | undefined;
  readonly passive: PassivePolicy | undefined;
}

const DEFAULT_PASSIVE_HEALTHY = [200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308];
/** 14: UNAVAILABLE, what a server that is going away or overloaded says. */
const DEFAULT_GRPC_FAILURES = [14];
/** Envoy's outlier detection default base_ejection_time. */
export const DEFAULT_EJECTION_MS = 30_000;

export function healthPolicy(checks: ChecksConf): HealthPolicy {
  const a = checks.active;
  const p = checks.passive;
  const active: ActivePolicy | undefined =
    a === undefined
      ? undefined
      : {
          type: a.type ?? 'http',
          timeoutMs: Math.round((a.timeout ?? 1) * 1000),
          concurrency: a.concurrency ?? 10,
          host: a.host,
          port: a.port,
          httpPath: a.http_path ?? '/',
          httpsVerifyCertificate: a.https_verify_certificate,
          reqHeaders: a.req_headers ?? [],
          grpcService: a.grpc_service ?? '',
          healthyIntervalMs: (a.healthy?.interval ?? 1) * 1000,
          unhealthyIntervalMs: (a.unhealthy?.interval ?? 1) * 1000,
          healthyStatuses: (a.healthy?.http_statuses as number[] | undefined) ?? [200, 302],
          unhealthyStatuses: (a.unhealthy?.http_statuses as number[] | undefined) ?? [429, 404, 500, 501, 502, 503, 504, 505],
          thresholds: {
            successes: a.healthy?.successes ?? 2,
            httpFailures: a.unhealthy?.http_failures ?? 5,
            tcpFailures: a.unhealthy?.tcp_failures ?? 2,
            timeouts: a.unhealthy?.timeouts ?? 3,
          },
        };
  const passive: PassivePolicy | undefined =
    p === undefined
      ? undefined
      : {
          healthyStatuses: new Set((p.healthy?.http_statuses as number[] | undefined) ?? DEFAULT_PASSIVE_HEALTHY),
          unhealthyStatuses: new Set((p.unhealthy?.http_statuses as number[] | undefined) ?? [429, 500, 503]),
          grpcStatuses: new Set((p.unhealthy?.grpc_statuses as number[] | undefined) ?? DEFAULT_GRPC_FAILURES),
          thresholds: {
            successes: p.healthy?.successes ?? 5,
            httpFailures: p.unhealthy?.http_failures ?? 5,
            tcpFailures: p.unhealthy?.tcp_failures ?? 2,
            timeouts: p.unhealthy?.timeouts ?? 7,
          },
          ejectionMs: Math.round((p.base_ejection_time ?? DEFAULT_EJECTION_MS / 1000) * 1000),
        };
  return { active, passive };
}
