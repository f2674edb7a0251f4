/**
 * `fault-injection` (APISIX priority 11000, so it runs before every other plugin): `abort` answers `percentage` of
 * the calls (all when unset) itself, trailers-only, with `abort.grpc_status` or the status gRPC maps
 * `abort.http_status` to (http-grpc-status-mapping.md: 503 → UNAVAILABLE, 403 → PERMISSION_DENIED, …) and `body` as
 * the grpc-message. The call never reaches a node: chaos testing of clients' retry and error handling.
 *
 * `delay` holds `percentage` of the calls (all when unset) for `duration` seconds, then lets them go on: the access
 * phase answers with a promise that a timer resolves (pipeline.ts), and the engines hold the stream meanwhile, its
 * DATA under flow control. The promise never rejects; the schema bounds the duration (MAX_FAULT_DELAY_SECONDS).
 * Both may be set: as in APISIX, a call may be delayed, then aborted.
 *
 * Each takes `vars` (shared/vars-expr.ts), compiled here once per snapshot: the fault applies only to the calls that
 * match them, and `percentage` of those. As in APISIX, both `vars` are read when the call arrives, then chance
 * decides the delay, then the abort (in that order: the injectable `random` is drawn for delay first).
 */
import { FaultInjected } from '../../shared/errors.ts';
import { grpcStatusFromHttp, type GrpcStatusCode } from '../../shared/grpc-status.ts';
import type { FaultInjectionConf } from '../../shared/schema/plugin-policies.ts';
import { compileVars, matchVars, type CompiledVars } from '../../shared/vars-expr.ts';
import { clampDelay } from '../timers.ts';
import type { CompiledPlugin } from './pipeline.ts';
import type { AccessVerdict, PluginRequest } from './request.ts';
import { variableValue } from './variables.ts';

const PRIORITY = 11000;
const DEFAULT_MESSAGE = 'fault injected';
const PERCENT = 100;
const MS = 1000;

/** How a call is held for `ms` milliseconds: injectable, so tests see the delay without waiting. Never rejects. */
export type Wait = (ms: number) => Promise<void>;

/** A timer, unref'd: a held call never keeps a draining process alive (its stream ends with the process anyway). */
const waitFor: Wait = (ms) =>
  new Promise((resolve) => {
    setTimeout(resolve, clampDelay(ms)).unref();
  });

/** `random` (a number in [0, 1)) and `wait` are injectable for tests. */
export function compileFaultInjection(conf: FaultInjectionConf, random: () => number = Math.random, wait: Wait = waitFor): CompiledPlugin {
  const abort = conf.abort;
  let abortVerdict: AccessVerdict | undefined;
  if (abort !== undefined) {
    const grpcStatus = (abort.grpc_status ?? grpcStatusFromHttp(abort.http_status ?? 503)) as GrpcStatusCode;
    abortVerdict = { error: new FaultInjected(abort.body ?? DEFAULT_MESSAGE, grpcStatus, abort.http_status ?? 503) };
  }
  const delayMs = conf.delay === undefined ? 0 : conf.delay.duration * MS;
  const aborts = abort === undefined ? undefined : condition(abort.percentage, abort.vars, 'abort.vars', random);
  const delays = conf.delay === undefined ? undefined : condition(conf.delay.percentage, conf.delay.vars, 'delay.vars', random);
  return {
    name: 'fault-injection',
    priority: PRIORITY,
    access(request) {
      // Both vars are read first, then chance decides the delay, then the abort (APISIX's fault-injection.lua).
      const abortMatched = aborts !== undefined && aborts.matches(request);
      const delayMatched = delays !== undefined && delays.matches(request);
      const delayed = delayMatched && delays.hit();
      const verdict = abortMatched && aborts.hit() ? abortVerdict : undefined;
      return delayed ? wait(delayMs).then(() => verdict) : verdict;
    },
  };
}

interface Condition {
  /** The call matches `vars` (always, without them). */
  matches(request: PluginRequest): boolean;
  /** Chance says yes for this call (`percentage` out of 100; always, without it). */
  hit(): boolean;
}

function condition(percentage: number | undefined, vars: readonly (readonly unknown[])[] | undefined, where: string, random: () => number): Condition {
  // APISIX: `math.random(1, 100) <= percentage`, i.e. percentage out of 100 calls.
  const hit = percentage === undefined ? (): boolean => true : (): boolean => random() * PERCENT < percentage;
  if (vars === undefined) return { matches: () => true, hit };
  const compiled: CompiledVars | string = compileVars(vars, where);
  if (typeof compiled === 'string') throw new Error(`fault-injection: ${compiled}`); // the admin API refuses such vars
  return { matches: (request) => matchVars(compiled, (ref) => variableValue(ref, request)), hit };
}
