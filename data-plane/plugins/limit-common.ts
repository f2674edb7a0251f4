/**
 * What the local limiting plugins (limit-count, limit-req, limit-conn) share: the key a call is counted under, the
 * bound on how many keys one route keeps, and holding a call for a while.
 *
 * The key is `key_type`/`key` evaluated per call (shared/limit-key.ts parses it once, variables.ts reads the
 * variables); a value that comes out empty counts by the client's address instead, as APISIX's plugins do. Keys
 * come from clients (a header can take any value), so a table of per-key state stays under MAX_KEYS entries
 * (makeRoom).
 *
 * A delay (limit-req's leaky bucket, limit-conn's burst) is a promise the access phase waits on (pipeline.ts): the
 * engines hold the stream meanwhile, its DATA under flow control. It never rejects, and it settles after the delay,
 * which the plugin bounds (burst / rate, or limit-conn's unit delay); the timer does not keep a process alive.
 */
import { parseLimitKey } from '../../shared/limit-key.ts';
import { clampDelay } from '../timers.ts';
import type { PluginRequest } from './request.ts';
import { variableValue } from './variables.ts';

/** Keys one route counts at most; each costs ~100 bytes. */
export const MAX_KEYS = 100_000;

/** How a plugin holds a call for `ms` milliseconds: injectable, so tests can see the delays without waiting. */
export type Hold = (ms: number) => Promise<undefined>;

/** The real hold: a timer (unref'd: a held call never keeps a draining process alive). */
export const holdFor: Hold = (ms) =>
  new Promise((resolve) => {
    setTimeout(resolve, clampDelay(ms), undefined).unref();
  });

/** APISIX sleeps only for a delay of at least 1 ms (`if delay >= 0.001`). */
const MIN_DELAY_MS = 1;

/** The access verdict of a call that must wait `ms` first: held by `hold`, or none (go on now) below 1 ms. */
export function waitFirst(hold: Hold, ms: number): Promise<undefined> | undefined {
  return ms >= MIN_DELAY_MS ? hold(ms) : undefined;
}

/**
 * Room for one more key in `table`, which has reached MAX_KEYS: the entries whose state has run out (`left` ≤ 0:
 * an ended window, a drained bucket, as if never seen) are dropped; if none had, the one with the least left.
 */
export function makeRoom<V>(table: Map<string, V>, left: (value: V) => number): void {
  let least: string | undefined;
  let leastLeft = Number.POSITIVE_INFINITY;
  for (const [key, value] of table) {
    const remaining = left(value);
    if (remaining <= 0) table.delete(key);
    else if (remaining < leastLeft) {
      leastLeft = remaining;
      least = key;
    }
  }
  if (table.size >= MAX_KEYS && least !== undefined) table.delete(least);
}

/** `key_type` and `key` as the plugins take them; `key` defaults to `remote_addr` (limit-count's default). */
export interface LimitKeyConf {
  key_type?: 'var' | 'var_combination' | 'constant';
  key?: string;
}

/** The function that reads a call's key; `plugin` names the plugin in the error for a key the admin API refuses. */
export function keyReader(plugin: string, conf: LimitKeyConf): (request: PluginRequest) => string {
  const type = conf.key_type ?? 'var';
  if (type === 'constant') {
    const constant = conf.key ?? '';
    return () => constant;
  }
  const parts = parseLimitKey(conf.key ?? 'remote_addr', type === 'var_combination');
  if (typeof parts === 'string') throw new Error(`${plugin}: ${parts}`); // the admin API refuses such a key
  return (request) => {
    let key = '';
    // An absent header or consumer adds nothing, as a nil nginx variable does.
    for (const part of parts) key += 'text' in part ? part.text : (variableValue(part, request) ?? '');
    return key === '' ? request.remoteAddress : key;
  };
}
