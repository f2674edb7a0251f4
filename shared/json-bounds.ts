/**
 * The shape check every configuration value passes before anything recursive touches it: nesting depth and
 * prototype-polluting keys, in one iterative walk (an explicit stack, so a 10,000-level value costs a loop, not a
 * RangeError). Both planes run it: the admin API on the raw body (before a PATCH merges it) and again, through
 * shared/validate.ts, on the value it is about to write; the data plane on every value it reads from etcd, before
 * ajv, so a value nested too deep for JSON.stringify or structuredClone is skipped like any invalid value instead of
 * throwing inside the snapshot build (issue #11 cases 2 and 8).
 *
 * Keys `__proto__`, `constructor` and `prototype` are refused anywhere, not only at the top: JSON.parse makes
 * `__proto__` an own property, but the first plain assignment `target[key] = value` (a merge, a copy) turns it into
 * a prototype change, after which a validator sees inherited fields that JSON.stringify never writes. This is the
 * stricter form of Fastify's `onProtoPoisoning` / `onConstructorPoisoning: 'error'` (secure-json-parse), which
 * refuse `__proto__` and `constructor.prototype` only; no configuration field of APISIX uses any of the three names.
 */

/**
 * Deepest nesting accepted, counting the value itself as level 1. A route needs 5 (route → upstream → nodes → node →
 * metadata) and a plugin configuration a few more; 32 leaves ample room for metadata while keeping every recursive
 * consumer (JSON.stringify, structuredClone, ajv) thousands of frames away from the stack limit.
 */
export const MAX_JSON_DEPTH = 32;

/** Keys that reach `Object.prototype` or a constructor when assigned on a plain object. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** Where the first violation is (JSON-pointer segments from the top) and what it is. */
export interface ShapeViolation {
  path: string[];
  rule: string;
}

interface Pending {
  value: object;
  depth: number;
  path: string[];
}

/** Undefined when `value` is at most MAX_JSON_DEPTH deep and has no forbidden key; else the first violation found. */
export function checkJsonShape(value: unknown): ShapeViolation | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const stack: Pending[] = [{ value, depth: 1, path: [] }];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    if (next.depth > MAX_JSON_DEPTH) {
      return { path: next.path, rule: `nested deeper than ${MAX_JSON_DEPTH} levels` };
    }
    const isArray = Array.isArray(next.value);
    // Own keys only (Object.keys), so an inherited property can never be walked or mistaken for data.
    for (const key of Object.keys(next.value)) {
      if (!isArray && FORBIDDEN_KEYS.has(key)) return { path: next.path, rule: `property name "${key}" is forbidden` };
      const child: unknown = (next.value as Record<string, unknown>)[key];
      if (typeof child === 'object' && child !== null) {
        stack.push({ value: child, depth: next.depth + 1, path: [...next.path, key] });
      }
    }
  }
  return undefined;
}

/** Segments shown in a depth message: enough to find the field, short enough for a log line. */
const MAX_PATH_SHOWN = 6;

/**
 * A violation in APISIX's validator style: `property "upstream" validation failed: property name "__proto__" is
 * forbidden`. A depth violation names the field where the nesting starts to matter (its first segments) instead of
 * chaining 32 clauses.
 */
export function describeShapeViolation(violation: ShapeViolation): string {
  if (violation.path.length > MAX_PATH_SHOWN) {
    const shown = violation.path.slice(0, MAX_PATH_SHOWN).join('/');
    return `${violation.rule} (at /${shown}/…)`;
  }
  return violation.path.reduceRight((message, field) => `property "${field}" validation failed: ${message}`, violation.rule);
}

/** `checkJsonShape` and `describeShapeViolation` in one: undefined or the message. */
export function jsonShapeError(value: unknown): string | undefined {
  const violation = checkJsonShape(value);
  return violation === undefined ? undefined : describeShapeViolation(violation);
}
