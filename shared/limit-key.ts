/**
 * The key a rate-limiting plugin counts by (`limit-count`'s `key_type` and `key`), parsed once: APISIX's
 * `key_type: var` names one nginx variable (`remote_addr`, `http_x_user`, …); `var_combination` is text with
 * `$variables` in it (`"$remote_addr $http_x_user"`). The variables a gRPC call has are below; `http_<name>` is the
 * request header `<name>` with `_` for `-`. Checked at admin-write time, evaluated per call by the data plane.
 */

/** Variables that are not headers. */
export const LIMIT_KEY_VARIABLES = ['remote_addr', 'remote_port', 'server_addr', 'server_port', 'route_id', 'host', 'uri', 'request_uri', 'consumer_name'] as const;
export type LimitKeyVariable = (typeof LIMIT_KEY_VARIABLES)[number];

export type LimitKeyPart = { readonly text: string } | { readonly variable: LimitKeyVariable } | { readonly header: string };

const HEADER_PREFIX = 'http_';
const VARIABLE_IN_TEXT = /\$([A-Za-z0-9_]+)/g;

/** The parts of `key`, or a message saying what is wrong with it. */
export function parseLimitKey(key: string, combination: boolean): LimitKeyPart[] | string {
  if (!combination) {
    const part = variablePart(key);
    return part === undefined ? `unknown variable "${key}" in "key"` : [part];
  }
  const parts: LimitKeyPart[] = [];
  let last = 0;
  let variables = 0;
  for (const match of key.matchAll(VARIABLE_IN_TEXT)) {
    const name = match[1] ?? '';
    const part = variablePart(name);
    if (part === undefined) return `unknown variable "$${name}" in "key"`;
    if (match.index > last) parts.push({ text: key.slice(last, match.index) });
    parts.push(part);
    variables++;
    last = match.index + match[0].length;
  }
  if (variables === 0) return '"key" of key_type var_combination names no $variable';
  if (last < key.length) parts.push({ text: key.slice(last) });
  return parts;
}

/** A message when `key` cannot be used, for the admin API's validation. */
export function checkLimitKey(key: string, combination: boolean): string | undefined {
  const parsed = parseLimitKey(key, combination);
  return typeof parsed === 'string' ? parsed : undefined;
}

/** One variable by its name (`remote_addr`, `http_x_user`), undefined when the gateway has no such variable. */
export function variablePart(name: string): Exclude<LimitKeyPart, { readonly text: string }> | undefined {
  if (name.startsWith(HEADER_PREFIX) && name.length > HEADER_PREFIX.length) {
    return { header: name.slice(HEADER_PREFIX.length).toLowerCase().replaceAll('_', '-') };
  }
  return (LIMIT_KEY_VARIABLES as readonly string[]).includes(name) ? { variable: name as LimitKeyVariable } : undefined;
}

/** What a Redis policy needs (APISIX's rules): `redis_host` for redis; nodes and a name for redis-cluster. */
export function checkRedisPolicy(conf: {
  policy?: string;
  redis_host?: string;
  redis_cluster_nodes?: readonly string[];
  redis_cluster_name?: string;
}): string | undefined {
  if (conf.policy === 'redis' && conf.redis_host === undefined) return 'property "redis_host" is required when "policy" is "redis"';
  if (conf.policy !== 'redis-cluster') return undefined;
  if (conf.redis_cluster_nodes === undefined) return 'property "redis_cluster_nodes" is required when "policy" is "redis-cluster"';
  if (conf.redis_cluster_name === undefined) return 'property "redis_cluster_name" is required when "policy" is "redis-cluster"';
  for (const node of conf.redis_cluster_nodes) {
    if (parseRedisNode(node) === undefined) return `"${node}" in "redis_cluster_nodes" is not host:port`;
  }
  return undefined;
}

/** `host:port` (an IPv6 host in brackets) of a Redis cluster node; undefined when it is not one. */
export function parseRedisNode(node: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(node);
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2]) as string, port };
}
