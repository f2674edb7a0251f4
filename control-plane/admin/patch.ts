/**
 * APISIX's PATCH semantics (`core.table.merge` and `core.table.patch` in APISIX):
 *
 * - `PATCH /routes/1` with an object deep-merges it into the stored value: objects merge recursively, arrays and
 *   scalars replace wholesale, and `null` deletes the field (`{"upstream":{"nodes":{"127.0.0.1:1980":null}}}`
 *   removes one node);
 * - `PATCH /routes/1/upstream/nodes` replaces the value at that sub-path with the raw body, whatever its JSON type;
 *   missing objects on the way are created, and a path through a non-object is `invalid sub-path: /…`.
 *
 * Unlike APISIX, a `null` body on a sub-path deletes the field there (APISIX would store a JSON null the schema
 * then refuses), so both forms treat null the same way. Neither function mutates its input.
 *
 * Prototype pollution (issue #11 case 8): results are built on prototype-less objects (`Object.create(null)`), on
 * which `result['__proto__'] = x` defines an own property instead of changing the prototype, and keys are read
 * with Object.hasOwn so nothing inherited is ever merged. The bodies themselves were already refused if they carry
 * `__proto__`, `constructor` or `prototype` (request-body.ts); a sub-path naming one is refused here. Recursion is
 * bounded: bodies and stored values are at most MAX_JSON_DEPTH deep (shared/json-bounds.ts).
 */
import { AdminBadRequest } from '../../shared/errors.ts';
import { FORBIDDEN_KEYS } from '../../shared/json-bounds.ts';
import { isJsonObject } from './resources.ts';

type JsonRecord = Record<string, unknown>;

/** The stored value with `patch` merged in (RFC 7396 JSON Merge Patch, which is what APISIX's merge amounts to). */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isJsonObject(patch)) return patch;
  const result = isJsonObject(target) ? bareCopy(target) : bareObject();
  for (const field of Object.keys(patch)) {
    const value = patch[field];
    if (value === null) delete result[field];
    else result[field] = mergePatch(Object.hasOwn(result, field) ? result[field] : undefined, value);
  }
  return result;
}

/** `upstream/nodes` → ['upstream', 'nodes']; empty segments (a trailing slash) are ignored, as APISIX's split does. */
export function splitSubPath(subPath: string): string[] {
  const segments = subPath.split('/').filter((segment) => segment !== '');
  for (const segment of segments) {
    if (FORBIDDEN_KEYS.has(segment)) throw new AdminBadRequest(`invalid sub-path: property name "${segment}" is forbidden`);
  }
  return segments;
}

/** The stored value with the field at `segments` replaced by `body` (deleted when `body` is null). */
export function setAtSubPath(target: Record<string, unknown>, segments: readonly string[], body: unknown): Record<string, unknown> {
  return setAt(target, segments, 0, body);
}

function setAt(node: Record<string, unknown>, segments: readonly string[], index: number, body: unknown): Record<string, unknown> {
  const field = segments[index];
  if (field === undefined) throw new AdminBadRequest('invalid sub-path: /');
  const copy = bareCopy(node);
  if (index === segments.length - 1) {
    if (body === null) delete copy[field];
    else copy[field] = body;
    return copy;
  }
  const child = (Object.hasOwn(copy, field) ? copy[field] : undefined) ?? bareObject();
  if (!isJsonObject(child)) throw new AdminBadRequest(`invalid sub-path: /${segments.slice(0, index + 1).join('/')}`);
  copy[field] = setAt(child, segments, index + 1, body);
  return copy;
}

function bareObject(): JsonRecord {
  return Object.create(null) as JsonRecord;
}

/** A shallow copy of `source`'s own enumerable fields on a prototype-less object. */
function bareCopy(source: JsonRecord): JsonRecord {
  const copy = bareObject();
  for (const field of Object.keys(source)) copy[field] = source[field];
  return copy;
}
