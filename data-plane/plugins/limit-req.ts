/**
 * `limit-req` (APISIX priority 1001): `rate` calls per second per key, nginx's limit_req leaky bucket as APISIX runs
 * it (lua-resty-limit-traffic's resty.limit.req), counted by this process (`policy: local`).
 *
 * Each key has an excess (calls ahead of the rate) and the time of its last admitted call. A call makes it
 *
 *   excess = max(excess - rate × elapsed + 1, 0)        (a key's first call: 0)
 *
 * and then: over `burst` → refused with RESOURCE_EXHAUSTED and `rejected_msg`, the key's state left as it was (a
 * refused call takes no place in the bucket); else, unless `nodelay`, the call waits excess / rate seconds, its
 * turn at the rate, before it goes on (at most burst / rate; APISIX does not hold a call for less than 1 ms). The
 * wait holds the stream in the engine (its DATA under flow control), and the client's deadline keeps running.
 *
 * The key is `key_type`/`key` per call (limit-common.ts). The table of buckets is bounded: at MAX_KEYS, drained
 * buckets (which would start afresh anyway) are dropped, then the one closest to drained.
 */
import { RateLimited } from '../../shared/errors.ts';
import type { LimitReqConf } from '../../shared/schema/plugin-policies.ts';
import { holdFor, keyReader, makeRoom, MAX_KEYS, waitFirst, type Hold } from './limit-common.ts';
import type { CompiledPlugin } from './pipeline.ts';

const PRIORITY = 1001;
const DEFAULT_MESSAGE = 'rate limit exceeded';
const MS = 1000;

interface Bucket {
  /** Calls ahead of the rate, as of `last`. */
  excess: number;
  /** When the key's last admitted call came (ms). */
  last: number;
}

/** `now` (milliseconds) and `hold` are injectable for tests. */
export function compileLimitReq(conf: LimitReqConf, now: () => number = Date.now, hold: Hold = holdFor): CompiledPlugin {
  const rate = conf.rate;
  const burst = conf.burst;
  const perMs = rate / MS;
  const delays = conf.nodelay !== true;
  const keyOf = keyReader('limit-req', conf);
  const refused = { error: new RateLimited(conf.rejected_msg ?? DEFAULT_MESSAGE, conf.rejected_code ?? 503) };
  const buckets = new Map<string, Bucket>();
  return {
    name: 'limit-req',
    priority: PRIORITY,
    access(request) {
      const at = now();
      const key = keyOf(request);
      const bucket = buckets.get(key);
      let excess = 0;
      if (bucket === undefined) {
        if (buckets.size >= MAX_KEYS) makeRoom(buckets, (b) => b.excess / perMs - (at - b.last));
        buckets.set(key, { excess: 0, last: at });
      } else {
        excess = Math.max(bucket.excess - perMs * Math.abs(at - bucket.last) + 1, 0);
        if (excess > burst) return refused;
        bucket.excess = excess;
        bucket.last = at;
      }
      return delays ? waitFirst(hold, excess / perMs) : undefined;
    },
  };
}
