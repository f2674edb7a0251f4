/**
 * The table of resource types the admin API serves. Each entry says how one type is named in URLs and messages
 * and which of its fields must never leave the control plane; the handlers in resource-handlers.ts are generic
 * over this table. Adding upstreams or services means adding the type to shared/etcd-keys.ts RESOURCE_TYPES (with
 * its schema in shared/validate.ts) and one entry here: the mapped type below makes a missing entry a type error.
 */
import { RESOURCE_TYPES, type ResourceType } from '../../shared/etcd-keys.ts';
import { UnsupportedResourceType } from '../../shared/errors.ts';

export interface ResourceKind {
  /** The 3.x URL segment and etcd directory, e.g. `routes`. */
  type: ResourceType;
  /** The singular APISIX uses in messages: `wrong route id`, `missing ssl id`. */
  singular: string;
  /** Other URL segments accepted for this type, e.g. the 2.x `ssl` (renamed `ssls` in 3.0, apisix-compat §2.2). */
  aliases: readonly string[];
  /** Fields never returned by any response: APISIX strips `key` and `keys` of SSLs (apisix/admin/resource.lua). */
  secretFields: readonly string[];
}

export const RESOURCE_KINDS: { readonly [K in ResourceType]: ResourceKind & { type: K } } = {
  routes: { type: 'routes', singular: 'route', aliases: [], secretFields: [] },
  ssls: { type: 'ssls', singular: 'ssl', aliases: ['ssl'], secretFields: ['key', 'keys'] },
};

const BY_SEGMENT: ReadonlyMap<string, ResourceKind> = new Map(
  RESOURCE_TYPES.flatMap((type) => {
    const kind: ResourceKind = RESOURCE_KINDS[type];
    return [type, ...kind.aliases].map((segment) => [segment, kind] as const);
  }),
);

/** `routes` → the routes kind, `ssl` → the ssls kind; anything else is a 404 `Unsupported resource type: X`. */
export function resolveKind(segment: string): ResourceKind {
  const kind = BY_SEGMENT.get(segment);
  if (kind === undefined) throw new UnsupportedResourceType(segment);
  return kind;
}

/** APISIX's id_schema string form; ids from the URL are strings (apisix-compat §1.1). */
const ID_PATTERN = /^[a-zA-Z0-9-_.]{1,64}$/;

export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id);
}

/** The stored value as responses show it: secret fields removed, everything else as stored. */
export function publicValue(kind: ResourceKind, value: unknown): unknown {
  if (kind.secretFields.length === 0 || !isJsonObject(value)) return value;
  const copy: Record<string, unknown> = { ...value };
  for (const field of kind.secretFields) delete copy[field];
  return copy;
}

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
