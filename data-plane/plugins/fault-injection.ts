/**
 * `fault-injection` (APISIX priority 11000, so it runs before every other plugin): `abort` answers `percentage` of
 * the calls (all when unset) itself, trailers-only, with `abort.grpc_status` or the status gRPC maps
 * `abort.http_status` to (http-grpc-status-mapping.md: 503 → UNAVAILABLE, 403 → PERMISSION_DENIED, …) and `body` as
 * the grpc-message. The call never reaches a node: chaos testing of clients' retry and error handling.
 */
import { FaultInjected } from '../../shared/errors.ts';
import { grpcStatusFromHttp, type GrpcStatusCode } from '../../shared/grpc-status.ts';
import type { FaultInjectionConf } from '../../shared/schema/plugin-policies.ts';
import type { CompiledPlugin } from './pipeline.ts';

const PRIORITY = 11000;
const DEFAULT_MESSAGE = 'fault injected';
const PERCENT = 100;

/** `random` is injectable for tests; it returns a number in [0, 1). */
export function compileFaultInjection(conf: FaultInjectionConf, random: () => number = Math.random): CompiledPlugin {
  const abort = conf.abort;
  const grpcStatus = (abort.grpc_status ?? grpcStatusFromHttp(abort.http_status ?? 503)) as GrpcStatusCode;
  const verdict = { error: new FaultInjected(abort.body ?? DEFAULT_MESSAGE, grpcStatus, abort.http_status ?? 503) };
  const percentage = abort.percentage;
  return {
    name: 'fault-injection',
    priority: PRIORITY,
    // APISIX: `math.random(1, 100) <= percentage`, i.e. percentage out of 100 calls.
    access: () => (percentage === undefined || random() * PERCENT < percentage ? verdict : undefined),
  };
}
