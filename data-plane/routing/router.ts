/**
 * The immutable router of one config snapshot: matches a gRPC call's `:path`, `:method` and `:authority` against
 * the routes' `uri`/`uris` (exact, or prefix with a trailing `/*`), `methods` and `host`/`hosts`.
 *
 * Order (APISIX's radixtree semantics): exact paths before prefixes, longer prefixes before shorter ones, and among
 * routes on the same path the highest `priority` first (ties: the lower route id, so the order is stable). A route
 * with `status: 0` is not in the router at all.
 *
 * Matching is one Map lookup for the exact path, then one Map lookup per distinct prefix length (longest first) of
 * `path.slice(0, length)`: two different prefixes of one length cannot both match a path, so this finds the same
 * prefix a walk over all prefixes sorted by length would, at a cost that does not grow with the number of prefix
 * routes (10,000 `/svc<i>.S/*` routes have a handful of lengths).
 *
 * `with(removed, added)` derives the next router from this one for a config change: the tables are copied (a
 * native Map copy) and only the paths of the changed routes are rebuilt, so a change costs far less than a build
 * from scratch at 10,000 routes. This router is left untouched: calls that pinned it keep matching against it.
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

/** Candidates per path, best first. Lists are never changed once a router holds them (later routers copy). */
type CandidateMap<T> = Map<string, readonly Candidate<T>[]>;

interface Tables<T> {
  exact: CandidateMap<T>;
  /** By prefix without its `*`. */
  prefixes: CandidateMap<T>;
  /** How many prefixes have each length: the lengths to look up. */
  lengthCounts: Map<number, number>;
  /** The distinct prefix lengths, longest first. */
  lengths: readonly number[];
  size: number;
}

export class Router<T> {
  // Not readonly: with() fills a new router's tables from this one's.
  #tables: Tables<T>;

  constructor(entries: Iterable<RouteEntry<T>>) {
    const exact = new Map<string, Candidate<T>[]>();
    const prefixes = new Map<string, Candidate<T>[]>();
    let size = 0;
    for (const entry of entries) {
      if (!served(entry)) continue;
      size++;
      const candidate = candidateOf(entry);
      for (const uri of urisOf(entry.route)) {
        if (uri.endsWith('*')) pushTo(prefixes, uri.slice(0, -1), candidate);
        else pushTo(exact, uri, candidate);
      }
    }
    for (const list of exact.values()) if (list.length > 1) list.sort(byPriority);
    const lengthCounts = new Map<number, number>();
    for (const [prefix, list] of prefixes) {
      if (list.length > 1) list.sort(byPriority);
      lengthCounts.set(prefix.length, (lengthCounts.get(prefix.length) ?? 0) + 1);
    }
    this.#tables = { exact, prefixes, lengthCounts, lengths: sortedLengths(lengthCounts), size };
  }

  /** Routes served (those with `status: 0` are not). */
  get size(): number {
    return this.#tables.size;
  }

  /**
   * The router with the `removed` entries taken out and the `added` ones put in; this one is unchanged. Entries are
   * compared by identity: `removed` are entries this router was built with (a route's old entry when it changed
   * or went away), `added` the new ones.
   */
  with(removed: readonly RouteEntry<T>[], added: readonly RouteEntry<T>[]): Router<T> {
    if (removed.length === 0 && added.length === 0) return this;
    const old = this.#tables;
    const exact: CandidateMap<T> = new Map(old.exact);
    const prefixes: CandidateMap<T> = new Map(old.prefixes);
    const lengthCounts = new Map(old.lengthCounts);
    let size = old.size;
    const gone: ReadonlySet<RouteEntry<T>> = new Set(removed);
    for (const entry of removed) {
      if (!served(entry)) continue;
      size--;
      for (const uri of urisOf(entry.route)) {
        const isPrefix = uri.endsWith('*');
        const key = isPrefix ? uri.slice(0, -1) : uri;
        const map = isPrefix ? prefixes : exact;
        const list = map.get(key);
        if (list === undefined) continue; // a uri listed twice: its list is already gone
        const kept = list.filter((c) => !gone.has(c.entry));
        if (kept.length > 0) {
          map.set(key, kept);
        } else {
          map.delete(key);
          if (isPrefix) count(lengthCounts, key.length, -1);
        }
      }
    }
    for (const entry of added) {
      if (!served(entry)) continue;
      size++;
      const candidate = candidateOf(entry);
      for (const uri of urisOf(entry.route)) {
        const isPrefix = uri.endsWith('*');
        const key = isPrefix ? uri.slice(0, -1) : uri;
        const map = isPrefix ? prefixes : exact;
        const list = map.get(key);
        if (list === undefined) {
          map.set(key, [candidate]);
          if (isPrefix) count(lengthCounts, key.length, 1);
        } else {
          map.set(key, [...list, candidate].sort(byPriority));
        }
      }
    }
    const next = new Router<T>([]);
    next.#tables = { exact, prefixes, lengthCounts, lengths: sortedLengths(lengthCounts), size };
    return next;
  }

  match(request: RequestInfo): RouteEntry<T> | undefined {
    const { path } = request;
    const { exact, prefixes, lengths } = this.#tables;
    const host = request.authority; // normalized by pick() only for routes that have hosts
    const exactCandidates = exact.get(path);
    if (exactCandidates !== undefined) {
      const found = pick(exactCandidates, request.method, host);
      if (found !== undefined) return found;
    }
    for (const length of lengths) {
      if (length > path.length) continue;
      const candidates = prefixes.get(length === path.length ? path : path.slice(0, length));
      if (candidates === undefined) continue;
      const found = pick(candidates, request.method, host);
      if (found !== undefined) return found;
    }
    return undefined;
  }
}

function served<T>(entry: RouteEntry<T>): boolean {
  return entry.route.status !== 0;
}

function urisOf(route: RouteConf): readonly string[] {
  return route.uris ?? (route.uri === undefined ? [] : [route.uri]);
}

function candidateOf<T>(entry: RouteEntry<T>): Candidate<T> {
  return {
    entry,
    priority: entry.route.priority ?? 0,
    methods: entry.route.methods === undefined ? undefined : new Set(entry.route.methods),
    hosts: hostPatterns(entry.route),
  };
}

function count(counts: Map<number, number>, length: number, delta: number): void {
  const next = (counts.get(length) ?? 0) + delta;
  if (next > 0) counts.set(length, next);
  else counts.delete(length);
}

function sortedLengths(counts: ReadonlyMap<number, number>): number[] {
  return [...counts.keys()].sort((a, b) => b - a);
}

function pick<T>(candidates: readonly Candidate<T>[], method: string, authority: string | undefined): RouteEntry<T> | undefined {
  let host: string | undefined;
  let normalized = false;
  for (const c of candidates) {
    if (c.methods !== undefined && !c.methods.has(method)) continue;
    if (c.hosts !== undefined) {
      if (!normalized) {
        host = hostOf(authority);
        normalized = true;
      }
      const h = host;
      if (h === undefined || !c.hosts.some((p) => hostMatches(p, h))) continue;
    }
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
