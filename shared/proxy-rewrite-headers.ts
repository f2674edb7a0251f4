/**
 * `proxy-rewrite`'s `headers` in one shape: APISIX 3's `{set, add, remove}`, or the older flat map of names to
 * values, which sets them. Used by the admin API's checks (shared/validate.ts) and by the data plane's plugin.
 */
import type { ProxyRewriteConf } from './schema/plugin-policies.ts';

export interface HeaderEdits {
  readonly set: readonly (readonly [string, string])[];
  readonly add: readonly (readonly [string, string])[];
  readonly remove: readonly string[];
}

const STRUCTURED_KEYS: ReadonlySet<string> = new Set(['set', 'add', 'remove']);

export function headerEdits(headers: ProxyRewriteConf['headers']): HeaderEdits {
  if (headers === undefined) return { set: [], add: [], remove: [] };
  const entries = Object.entries(headers as Record<string, unknown>);
  // The structured form: only set/add/remove, none of them a string (a flat map may name a header `set`).
  const structured = entries.length > 0 && entries.every(([key, value]) => STRUCTURED_KEYS.has(key) && typeof value !== 'string');
  if (!structured) return { set: pairs(headers), add: [], remove: [] };
  const { set, add, remove } = headers as { set?: Record<string, unknown>; add?: Record<string, unknown>; remove?: unknown[] };
  return { set: pairs(set), add: pairs(add), remove: (remove ?? []).filter((name): name is string => typeof name === 'string') };
}

function pairs(map: Record<string, unknown> | undefined): [string, string][] {
  return Object.entries(map ?? {}).flatMap(([name, value]) => (typeof value === 'string' ? [[name, value] as [string, string]] : []));
}
