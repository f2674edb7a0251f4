/**
 * `limit-conn` (APISIX priority 1003): at most `conn` concurrent calls per key, counted by this process (`policy:
 * local`). For gRPC a "connection" is a call (one HTTP/2 stream): many calls share one client connection, and it
 * is the calls a slow upstream has to carry. As APISIX runs it (lua-resty-limit-traffic's resty.limit.conn):
 *
 * - A call counts from its access phase until it is over, however it ends (answered, failed, refused by a plugin
 *   after this one, reset by its client, its connection lost): the release is registered with the request's onDone
 *   and each engine calls it exactly once.
 * - Call number n of a key (itself included): over `conn + burst` → refused with RESOURCE_EXHAUSTED and
 *   `rejected_msg`, not counted; over `conn` → it waits unit × ⌊(n − 1) / conn⌋ seconds, counted meanwhile, then
 *   goes on. The unit is `default_conn_delay`; unless `only_use_default_delay`, each call that ends moves it to the
 *   mean of itself and that call's duration (APISIX's `leaving(key, latency)`), so the wait follows how long calls
 *   last. gRPC streams can last hours: the learnt unit is capped (MAX_LEARNT_UNIT_MS), so a held call always goes
 *   on within a bound.
 *
 * The table holds only keys with calls in flight (a key leaves it when its count is back to 0), so it is bounded
 * by the calls the listeners admit and needs no eviction.
 */
import { RateLimited } from '../../shared/errors.ts';
import type { LimitConnConf } from '../../shared/schema/plugin-policies.ts';
import { holdFor, keyReader, waitFirst, type Hold } from './limit-common.ts';
import type { CompiledPlugin } from './pipeline.ts';

const PRIORITY = 1003;
const DEFAULT_MESSAGE = 'too many concurrent calls';
const MS = 1000;
/**
 * The most the learnt unit may reach, unless default_conn_delay is larger: a unary call lasts milliseconds, but a
 * stream may last hours, and a call should not wait in the gateway for a stream's lifetime.
 */
export const MAX_LEARNT_UNIT_MS = 10_000;

/** `now` (milliseconds) and `hold` are injectable for tests. */
export function compileLimitConn(conf: LimitConnConf, now: () => number = Date.now, hold: Hold = holdFor): CompiledPlugin {
  const max = conf.conn;
  const limit = conf.conn + conf.burst;
  const learns = conf.only_use_default_delay !== true;
  const ceiling = Math.max(conf.default_conn_delay * MS, MAX_LEARNT_UNIT_MS);
  let unitMs = conf.default_conn_delay * MS;
  const keyOf = keyReader('limit-conn', conf);
  const refused = { error: new RateLimited(conf.rejected_msg ?? DEFAULT_MESSAGE, conf.rejected_code ?? 503) };
  const counts = new Map<string, number>();

  const leave = (key: string, latencyMs: number): void => {
    const left = (counts.get(key) ?? 1) - 1;
    if (left > 0) counts.set(key, left);
    else counts.delete(key);
    if (learns) unitMs = Math.min((Math.max(latencyMs, 0) + unitMs) / 2, ceiling);
  };

  return {
    name: 'limit-conn',
    priority: PRIORITY,
    access(request) {
      const key = keyOf(request);
      const conns = (counts.get(key) ?? 0) + 1;
      if (conns > limit) return refused;
      counts.set(key, conns);
      const delayMs = conns > max ? unitMs * Math.floor((conns - 1) / max) : 0;
      const startedAt = now();
      // The call's duration without its wait here, as APISIX measures it (request_time - delay).
      request.onDone(() => leave(key, now() - startedAt - delayMs));
      return waitFirst(hold, delayMs);
    },
  };
}
