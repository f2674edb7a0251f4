/**
 * `api-breaker` (APISIX priority 1005), for gRPC: a circuit breaker on the route's answers. Each call's end is told
 * to the plugin (PluginRequest.onDone, with the grpc-status the client got): an unhealthy one (its status in
 * `unhealthy.grpc_statuses`, or its HTTP equivalent in `unhealthy.http_statuses`) counts towards `failures`, a
 * healthy one towards `successes` once something failed. As in APISIX, every `failures`-th unhealthy answer in a
 * row opens the breaker for 2^(unhealthy ÷ failures) seconds, at most `max_breaker_sec`; while it is open, calls are
 * answered at once by the gateway (`break_response_code` mapped to a gRPC status, `break_response_body` as the
 * grpc-message, `break_response_headers` added) and never reach a node; once the time is over, calls go through
 * again, and `successes` healthy answers in a row close it for good (the counts start afresh).
 *
 * Defaults: unhealthy when the call ends UNAVAILABLE (14) or its HTTP equivalent is 500 (APISIX's default
 * `http_statuses: [500]`: INTERNAL, UNKNOWN, DATA_LOSS), 3 failures; healthy when OK, 3 successes. A call the
 * client cancelled, or whose end the engine cannot tell, is neither. The counts are per route and per process.
 */
import { CircuitOpen } from '../../shared/errors.ts';
import { GrpcStatus, grpcStatusFromHttp, httpStatusFromGrpc } from '../../shared/grpc-status.ts';
import type { ApiBreakerConf } from '../../shared/schema/plugin-policies.ts';
import type { CompiledPlugin } from './pipeline.ts';
import type { AccessVerdict } from './request.ts';

const PRIORITY = 1005;
const DEFAULT_MAX_BREAKER_SEC = 300;
const DEFAULT_FAILURES = 3;
const DEFAULT_SUCCESSES = 3;
const DEFAULT_MESSAGE = 'circuit breaker is open';
const MS = 1000;

/** `now` is injectable for tests (milliseconds). */
export function compileApiBreaker(conf: ApiBreakerConf, now: () => number = Date.now): CompiledPlugin {
  const unhealthyGrpc = new Set<number>(conf.unhealthy?.grpc_statuses ?? (conf.unhealthy?.http_statuses === undefined ? [GrpcStatus.UNAVAILABLE] : []));
  const unhealthyHttp = new Set<number>(conf.unhealthy?.http_statuses ?? [500]);
  const healthyGrpc = new Set<number>(conf.healthy?.grpc_statuses ?? (conf.healthy?.http_statuses === undefined ? [GrpcStatus.OK] : []));
  const healthyHttp = new Set<number>(conf.healthy?.http_statuses ?? [200]);
  const failures = conf.unhealthy?.failures ?? DEFAULT_FAILURES;
  const successes = conf.healthy?.successes ?? DEFAULT_SUCCESSES;
  const maxBreakerMs = (conf.max_breaker_sec ?? DEFAULT_MAX_BREAKER_SEC) * MS;
  const fields = (conf.break_response_headers ?? []).flatMap((h) => [h.key.toLowerCase(), h.value]);
  const open: AccessVerdict = {
    error: new CircuitOpen(conf.break_response_body ?? DEFAULT_MESSAGE, grpcStatusFromHttp(conf.break_response_code), conf.break_response_code),
    ...(fields.length === 0 ? {} : { fields }),
  };
  let unhealthy = 0;
  let healthy = 0;
  let openedAt = 0;
  const ended = (grpcStatus: number): void => {
    if (grpcStatus < 0 || grpcStatus === GrpcStatus.CANCELLED) return; // the client went, or no answer was seen
    const http = httpStatusFromGrpc(grpcStatus);
    if (unhealthyGrpc.has(grpcStatus) || unhealthyHttp.has(http)) {
      healthy = 0;
      unhealthy++;
      if (unhealthy % failures === 0) openedAt = now();
      return;
    }
    if (unhealthy > 0 && (healthyGrpc.has(grpcStatus) || healthyHttp.has(http))) {
      healthy++;
      if (healthy >= successes) {
        unhealthy = 0;
        healthy = 0;
      }
    }
  };
  return {
    name: 'api-breaker',
    priority: PRIORITY,
    access(request) {
      if (unhealthy >= failures) {
        const breakerMs = Math.min(2 ** Math.floor(unhealthy / failures) * MS, maxBreakerMs);
        if (now() < openedAt + breakerMs) return open;
      }
      request.onDone(ended);
      return undefined;
    },
  };
}
