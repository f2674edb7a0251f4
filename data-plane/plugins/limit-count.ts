/**
 * `limit-count` (APISIX priority 1002) with `policy: local`: at most `count` calls per `time_window` seconds per key,
 * in a fixed window that starts at the key's first call (as APISIX's local counter does), counted by this process.
 * With several worker processes or replicas each counts its own calls. Over the quota: RESOURCE_EXHAUSTED with
 * `rejected_msg`. With `show_limit_quota_header` (default on) every answer carries `x-ratelimit-limit`,
 * `x-ratelimit-remaining` and `x-ratelimit-reset` (seconds until the window ends; other names through the plugin's
 * metadata, `/apisix/admin/plugin_metadata/limit-count`), in the response headers or in
 * the trailers-only refusal.
 *
 * The key is `key_type`/`key` evaluated per call (limit-common.ts); an empty value counts by the client's
 * address instead, as APISIX does. Keys come from clients (a header can take any value), so the table is bounded:
 * at MAX_KEYS, expired windows are dropped, then the window that ends first.
 *
 * With `policy: redis` or `redis-cluster` the window lives in Redis (redis-stores.ts), so every worker and replica
 * shares one count: the window starts at the key's first call anywhere, and the verdict comes when Redis answers
 * (the engines hold the call meanwhile). Redis keys are `limit-count:<owner>:<key>`, the owner being the route or
 * global rule, and expire with their window. When Redis does not answer within `redis_timeout`, or is known to be
 * down, `allow_degradation: true` lets the call through uncounted and without quota headers; otherwise (APISIX's
 * default) it is refused with UNAVAILABLE, as APISIX answers 500: a call is never left waiting on Redis.
 */
import { RateLimited, RateLimitStoreUnavailable } from '../../shared/errors.ts';
import type { LimitCountConf } from '../../shared/schema/plugin-policies.ts';
import { keyReader, makeRoom, MAX_KEYS } from './limit-common.ts';
import type { CompiledPlugin, PluginEnv } from './pipeline.ts';
import type { AccessVerdict } from './request.ts';

export { MAX_KEYS };

const PRIORITY = 1002;
const DEFAULT_MESSAGE = 'rate limit exceeded';
const MS = 1000;

interface Window {
  remaining: number;
  endsAt: number;
}

/** `now` is injectable for tests (milliseconds). */
export function compileLimitCount(conf: LimitCountConf, env?: PluginEnv, now: () => number = Date.now): CompiledPlugin {
  if (conf.policy === 'redis' || conf.policy === 'redis-cluster') return compileShared(conf, env);
  const count = conf.count;
  const windowMs = conf.time_window * MS;
  const keyOf = keyReader('limit-count', conf);
  const headers = conf.show_limit_quota_header ?? true;
  const limitText = String(count);
  const names = headerNames(env);
  const refusal = new RateLimited(conf.rejected_msg ?? DEFAULT_MESSAGE, conf.rejected_code ?? 503);
  const windows = new Map<string, Window>();
  return {
    name: 'limit-count',
    priority: PRIORITY,
    access(request) {
      const at = now();
      const key = keyOf(request);
      let window = windows.get(key);
      if (window === undefined || at >= window.endsAt) {
        if (window !== undefined) windows.delete(key); // re-inserted last: the map stays ordered by window end
        else if (windows.size >= MAX_KEYS) makeRoom(windows, (ended) => ended.endsAt - at); // ended windows, then the one that ends first
        window = { remaining: count, endsAt: at + windowMs };
        windows.set(key, window);
      }
      const allowed = window.remaining > 0;
      if (allowed) window.remaining--;
      const fields = headers
        ? [names.limit, limitText, names.remaining, String(window.remaining), names.reset, String(Math.ceil((window.endsAt - at) / MS))]
        : undefined;
      if (allowed) return fields === undefined ? undefined : { fields };
      return fields === undefined ? { error: refusal } : { error: refusal, fields };
    },
  };
}

/** The Redis policies: one window per key for every process that serves the route. */
function compileShared(conf: LimitCountConf, env: PluginEnv | undefined): CompiledPlugin {
  const stores = env?.stores;
  if (stores === undefined) throw new Error(`limit-count: policy ${String(conf.policy)} needs Redis stores, which this process has not`);
  const store = stores.get(conf);
  const count = conf.count;
  const windowMs = conf.time_window * MS;
  const keyOf = keyReader('limit-count', conf);
  const prefix = `limit-count:${env?.owner ?? ''}:`;
  const headers = conf.show_limit_quota_header ?? true;
  const limitText = String(count);
  const names = headerNames(env);
  const refusal = new RateLimited(conf.rejected_msg ?? DEFAULT_MESSAGE, conf.rejected_code ?? 503);
  const degrade = conf.allow_degradation === true;
  const verdictOf = (result: [number, number] | Error): AccessVerdict | undefined => {
    if (result instanceof Error) return degrade ? undefined : { error: new RateLimitStoreUnavailable(result.message) };
    const [used, ttlMs] = result;
    const allowed = used <= count;
    const fields = headers
      ? [names.limit, limitText, names.remaining, String(allowed ? count - used : 0), names.reset, String(Math.ceil(ttlMs / MS))]
      : undefined;
    if (allowed) return fields === undefined ? undefined : { fields };
    return fields === undefined ? { error: refusal } : { error: refusal, fields };
  };
  return {
    name: 'limit-count',
    priority: PRIORITY,
    store,
    access: (request) => store.count(prefix + keyOf(request), windowMs).then(verdictOf),
  };
}

/** The quota headers' names: the plugin metadata's (lower case, as HTTP/2 sends them), else APISIX's. */
function headerNames(env: PluginEnv | undefined): { limit: string; remaining: string; reset: string } {
  const meta = env?.metadata?.('limit-count');
  return {
    limit: (meta?.limit_header ?? 'x-ratelimit-limit').toLowerCase(),
    remaining: (meta?.remaining_header ?? 'x-ratelimit-remaining').toLowerCase(),
    reset: (meta?.reset_header ?? 'x-ratelimit-reset').toLowerCase(),
  };
}
