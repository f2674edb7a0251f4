/**
 * The immutable router of one config snapshot: matches a gRPC call's `:path`, `:method` and `:authority` against
 * the routes' `uri`/`uris` (exact, or prefix with a trailing `/*`), `methods` and `host`/`hosts`.
 *
 * Order (APISIX's radixtree semantics): exact paths before prefixes, longer prefixes before shorter ones, and among
 * routes on the same path the highest `priority` first (ties: the lower route id, so the order is stable). A route
 * with `status: 0` is not in the router at all. Matching is one Map lookup plus a walk over the (few) prefixes.
 */
import type { RouteConf } from '../../shared/schema/route.ts';

export interface RouteEntry<T> {
  id: string;
  route: RouteConf;
  /** What the snapshot resolved this route to (its upstream). */
  target: T;
}

export interface RequestInfo {
  path: string;
  method: string;
  /** `:authority` (or Host) as the client sent it, possibly with a port. */
  authority: string | undefined;
}

interface Candidate<T> {
  entry: RouteEntry<T>;
  priority: number;
  methods: ReadonlySet<string> | undefined;
  hosts: readonly HostPattern[] | undefined;
}

type HostPattern = { kind: 'any' } | { kind: 'exact'; host: string } | { kind: 'wildcard'; suffix: string };

export class Router<T> {
  private readonly exact = new Map<string, Candidate<T>[]>();
  private readonly prefixes: { prefix: string; candidates: Candidate<T>[] }[] = [];
  readonly size: number;

  constructor(entries: readonly RouteEntry<T>[]) {
    const prefixMap = new Map<string, Candidate<T>[]>();
    let size = 0;
    for (const entry of entries) {
      if (entry.route.status === 0) continue;
      size++;
      const candidate: Candidate<T> = {
        entry,
        priority: entry.route.priority ?? 0,
        methods: entry.route.methods === undefined ? undefined : new Set(entry.route.methods),
        hosts: hostPatterns(entry.route),
      };
      for (const uri of entry.route.uris ?? (entry.route.uri === undefined ? [] : [entry.route.uri])) {
        if (uri.endsWith('*')) pushTo(prefixMap, uri.slice(0, -1), candidate);
        else pushTo(this.exact, uri, candidate);
      }
    }
    for (const list of this.exact.values()) list.sort(byPriority);
    for (const [prefix, candidates] of prefixMap) this.prefixes.push({ prefix, candidates: candidates.sort(byPriority) });
    this.prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
    this.size = size;
  }

  match(request: RequestInfo): RouteEntry<T> | undefined {
    const host = hostOf(request.authority);
    const exact = this.exact.get(request.path);
    if (exact !== undefined) {
      const found = pick(exact, request.method, host);
      if (found !== undefined) return found;
    }
    for (const { prefix, candidates } of this.prefixes) {
      if (!request.path.startsWith(prefix)) continue;
      const found = pick(candidates, request.method, host);
      if (found !== undefined) return found;
    }
    return undefined;
  }
}

function pick<T>(candidates: readonly Candidate<T>[], method: string, host: string | undefined): RouteEntry<T> | undefined {
  for (const c of candidates) {
    if (c.methods !== undefined && !c.methods.has(method)) continue;
    if (c.hosts !== undefined && (host === undefined || !c.hosts.some((p) => hostMatches(p, host)))) continue;
    return c.entry;
  }
  return undefined;
}

function byPriority<T>(a: Candidate<T>, b: Candidate<T>): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  return a.entry.id < b.entry.id ? -1 : a.entry.id > b.entry.id ? 1 : 0;
}

function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

/** APISIX lower-cases route hosts; `*.foo.com` matches exactly one more label, `*` matches any host. */
function hostPatterns(route: RouteConf): HostPattern[] | undefined {
  const hosts = route.hosts ?? (route.host === undefined ? undefined : [route.host]);
  if (hosts === undefined) return undefined;
  return hosts.map((raw): HostPattern => {
    const host = raw.toLowerCase();
    if (host === '*') return { kind: 'any' };
    if (host.startsWith('*.')) return { kind: 'wildcard', suffix: host.slice(1) };
    return { kind: 'exact', host };
  });
}

function hostMatches(pattern: HostPattern, host: string): boolean {
  switch (pattern.kind) {
    case 'any':
      return true;
    case 'exact':
      return pattern.host === host;
    case 'wildcard': {
      if (!host.endsWith(pattern.suffix)) return false;
      const label = host.slice(0, host.length - pattern.suffix.length);
      return label.length > 0 && !label.includes('.');
    }
  }
}

/** `Example.com:9443` → `example.com`; `[::1]:9081` → `[::1]`. */
export function hostOf(authority: string | undefined): string | undefined {
  if (authority === undefined || authority === '') return undefined;
  let host = authority;
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    host = end < 0 ? host : host.slice(0, end + 1);
  } else {
    const colon = host.lastIndexOf(':');
    if (colon >= 0) host = host.slice(0, colon);
  }
  host = host.toLowerCase();
  return host.endsWith('.') ? host.slice(0, -1) : host;
}
