/**
 * The etcd key layout, APISIX's: `<prefix>/<resource>/<id>` holds the JSON value of one object, and
 * `<prefix>/<resource>/` holds APISIX's `init_dir` placeholder, which readers skip (docs/apisix-compatibility.md).
 */
export const RESOURCE_TYPES = ['routes', 'upstreams', 'services', 'ssls', 'consumers', 'consumer_groups', 'global_rules', 'plugin_configs', 'plugin_metadata', 'protos'] as const;
export type ResourceType = (typeof RESOURCE_TYPES)[number];

export function isResourceType(name: string): name is ResourceType {
  return (RESOURCE_TYPES as readonly string[]).includes(name);
}

export function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/\/+$/, '');
  return trimmed.startsWith('/') ? trimmed : `/${trimmed}`;
}

export function resourceKey(prefix: string, type: ResourceType, id: string): string {
  return `${prefix}/${type}/${id}`;
}

export function resourceDir(prefix: string, type: ResourceType): string {
  return `${prefix}/${type}/`;
}

export interface ParsedKey {
  type: ResourceType;
  id: string;
}

/** `/apisix/routes/1` → {type: 'routes', id: '1'}; placeholders, nested keys and unknown dirs → undefined. */
export function parseKey(prefix: string, key: string): ParsedKey | undefined {
  if (!key.startsWith(`${prefix}/`)) return undefined;
  const rest = key.slice(prefix.length + 1);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const type = rest.slice(0, slash);
  const id = rest.slice(slash + 1);
  if (id === '' || id.includes('/') || !isResourceType(type)) return undefined;
  return { type, id };
}
