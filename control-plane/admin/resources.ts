/**
 * The table of resource types the admin API serves. Each entry says how one type is named in URLs, messages and
 * the schema endpoint; the handlers are generic over this table, and its mapped type makes a type added to
 * shared/etcd-keys.ts RESOURCE_TYPES without an entry here a type error.
 *
 * Which fields are secret (never returned, encrypted at rest) is shared/crypto.ts SECRET_FIELDS, so the data plane
 * decrypts exactly what the admin API encrypts.
 */
import { stripSecrets } from '../../shared/crypto.ts';
import { RESOURCE_TYPES, type ResourceType } from '../../shared/etcd-keys.ts';
import { UnsupportedResourceType } from '../../shared/errors.ts';

export interface ResourceKind {
  /** The 3.x URL segment and etcd directory, e.g. `routes`. */
  type: ResourceType;
  /** The singular APISIX uses in messages and in `/apisix/admin/schema/<name>`: `wrong route id`, `ssl`. */
  singular: string;
  /** Other URL segments accepted for this type, e.g. the 2.x `ssl` (renamed `ssls` in 3.0). */
  aliases: readonly string[];
  /** How the OpenAPI description names it. */
  title: string;
  /**
   * `username` for consumers: the object is named by that field of its body (its etcd key), not by an `id`; it
   * cannot be POSTed (no generated name) or PATCHed, as in APISIX.
   */
  idField?: 'username';
  /** APISIX takes no POST for this type (global rules and plugin configs are named by the client). */
  noPost?: true;
}

export const RESOURCE_KINDS: { readonly [K in ResourceType]: ResourceKind & { type: K } } = {
  routes: { type: 'routes', singular: 'route', aliases: [], title: 'Routes' },
  upstreams: { type: 'upstreams', singular: 'upstream', aliases: [], title: 'Upstreams' },
  services: { type: 'services', singular: 'service', aliases: [], title: 'Services' },
  ssls: { type: 'ssls', singular: 'ssl', aliases: ['ssl'], title: 'SSL certificates' },
  consumers: { type: 'consumers', singular: 'consumer', aliases: [], title: 'Consumers', idField: 'username' },
  consumer_groups: { type: 'consumer_groups', singular: 'consumer_group', aliases: [], title: 'Consumer groups', noPost: true },
  global_rules: { type: 'global_rules', singular: 'global_rule', aliases: [], title: 'Global rules', noPost: true },
  plugin_configs: { type: 'plugin_configs', singular: 'plugin_config', aliases: [], title: 'Plugin configs', noPost: true },
  protos: { type: 'protos', singular: 'proto', aliases: [], title: 'Protos' },
  plugin_metadata: { type: 'plugin_metadata', singular: 'plugin_metadata', aliases: [], title: 'Plugin metadata', noPost: true },
};

export const KINDS: readonly ResourceKind[] = RESOURCE_TYPES.map((type): ResourceKind => RESOURCE_KINDS[type]);

const BY_SEGMENT: ReadonlyMap<string, ResourceKind> = new Map(
  KINDS.flatMap((kind) => [kind.type, ...kind.aliases].map((segment) => [segment, kind] as const)),
);

/** `routes` → the routes kind, `ssl` → the ssls kind; anything else is a 404 `Unsupported resource type: X`. */
export function resolveKind(segment: string): ResourceKind {
  const kind = BY_SEGMENT.get(segment);
  if (kind === undefined) throw new UnsupportedResourceType(segment);
  return kind;
}

/** The kind whose singular is `name` (`route`), for `/apisix/admin/schema/<name>`. */
export function kindBySingular(name: string): ResourceKind | undefined {
  return KINDS.find((kind) => kind.singular === name);
}

/** APISIX's id_schema string form; ids from the URL are strings. */
const ID_PATTERN = /^[a-zA-Z0-9-_.]{1,64}$/;

export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id);
}

/** The stored value as responses show it: private keys removed, everything else as stored. */
export function publicValue(kind: ResourceKind, value: unknown): unknown {
  return stripSecrets(kind.type, value);
}

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
