/**
 * Immutable config snapshots and their atomic swap. A snapshot is everything a call needs (router with resolved
 * upstreams, SNI table) built from one consistent config state; a call pins the snapshot current when it starts
 * and keeps it to the end, so a change in etcd applies to new calls only and never disturbs calls in flight.
 *
 * Rebuilding keeps what did not change: a route whose upstream settings are the same keeps its ResolvedUpstream
 * (and so its balancer position), and unchanged certificates keep their secure contexts.
 *
 * Rebuilding is incremental, so one change costs little at 10,000 routes. ConfigStore keeps unchanged items (and
 * whole maps of unchanged types) by identity from one state to the next, and each route's build remembers the
 * item it came from and every object its resolution looked up (resolve-route.ts). A route whose item is the same
 * and whose lookups all find the same items (or still find nothing) would resolve exactly as before, so it keeps
 * its RouteEntry; the others are resolved again, and the router is derived from the previous one with only those
 * entries swapped (Router.with). A change to an upstream, a service or an ssl therefore rebuilds exactly the routes
 * that reference it, a deleted upstream included (they answer UNAVAILABLE). The shared upstreams and the node keys
 * in use are counted per route and updated by difference, and `targets` is a view of the route builds, so a change
 * fills one map of all routes (plus the router's copy) instead of five. Measured with bench/route-scale.ts: one
 * change at 10,000 routes went from about 14 ms to under 2 ms.
 *
 * A route whose references are missing is logged when it is (re)built, not again on every later rebuild.
 *
 * A route that cannot be built at all (its build throws: a value nested deeper than JSON.stringify can recurse,
 * or any bug a value triggers) is isolated like an invalid value (docs/architecture.md; APISIX's "invalid data should
 * only cancel this config item update"): it is logged with its key, revision and the objects it references, its
 * last good build stays in service (or it is left out if it never had one), and every other route applies. The
 * failure is remembered with what it looked up, so later rebuilds skip it quietly until the route or one of its
 * references changes. `failed` counts such routes for /readyz.
 */
import type { Logger } from '../../shared/logger.ts';
import type { RouteConf } from '../../shared/schema/route.ts';
import type { UpstreamConf } from '../../shared/schema/upstream.ts';
import { Router, type RouteEntry } from '../routing/router.ts';
import type { RouteTarget } from '../routing/route-target.ts';
import { SniTable } from '../tls/sni-table.ts';
import type { ListenerTlsOptions } from '../tls/tls-policy.ts';
import { resolveUpstream, type ResolvedUpstream } from '../upstream/upstream.ts';
import type { HealthRegistry } from '../upstream/health/registry.ts';
import { NoHealthyNode, RouteNotFound, describe } from '../../shared/errors.ts';
import { compilePlugins, storesOf, type PluginChain } from '../plugins/pipeline.ts';
import type { RedisStore, RedisStores } from '../plugins/redis-stores.ts';
import { ProtoRegistry } from '../transcode/proto-registry.ts';
import { compileTranscode, type TranscodeTarget } from '../transcode/transcode-target.ts';
import { WebCors } from '../web/cors.ts';
import { DEFAULT_CORS_ALLOW_HEADERS } from '../../shared/schema/plugin-web.ts';
import { ConsumerTable } from '../plugins/consumers.ts';
import type { ConfigItem, ConfigState } from './config-state.ts';
import { lookupsHold, resolveRoute, resolveUpstreamRef, type Lookup } from './resolve-route.ts';
import { TargetsById } from './targets-view.ts';

/** What a matched route resolves to for its calls. */
/** How one route was built: what the next build compares to decide whether it may keep the route's entry. */
export interface RouteBuild {
  readonly item: ConfigItem<RouteConf>;
  /** Every object its resolution looked up, with what was found. */
  readonly lookups: readonly Lookup[];
  readonly entry: RouteEntry<RouteTarget>;
  /** What its upstream was built from (JSON); undefined when the route resolves to an error. */
  readonly fingerprint: string | undefined;
  /**
   * The upstream comes from an upstream object or a service, so other routes may share it (upstreamCache). An
   * inline upstream is the route's own: its fingerprint names the route, no other route can have it.
   */
  readonly shared: boolean;
}

export interface Snapshot {
  readonly revision: string;
  readonly router: Router<RouteTarget>;
  readonly sni: SniTable;
  /** Every upstream node key in use, so the pool can drain sessions to nodes no route uses any more. */
  readonly nodeKeys: ReadonlySet<string>;
  /** Route id → its target (also for routes with `status: 0`, which the router leaves out). */
  readonly targets: ReadonlyMap<string, RouteTarget>;
  /** Shared resolved upstreams (from upstream objects and services) by fingerprint, for reuse among routes and builds. */
  readonly upstreamCache: ReadonlyMap<string, ResolvedUpstream>;
  /** Route id → how it was built, for the next build to reuse. */
  readonly routeBuilds: ReadonlyMap<string, RouteBuild>;
  /** How many routes use each upstreamCache entry and each node key: the next build updates them by difference. */
  readonly uses: Uses;
  /** The global rules' plugins, one chain per rule in the order of their ids: run on every routed call first. */
  readonly globalPlugins: readonly PluginChain[];
  /** The global_rules map they were built from: kept while the map is the same object. */
  readonly globalSource: ConfigState['global_rules'];
  /** The consumers, by credential (plugins/consumers.ts), read by authentication plugins through the call's snapshot. */
  readonly consumers: ConsumerTable;
  /** The consumers and consumer groups maps the table was built from: kept while both are the same objects. */
  readonly consumersSource: ConfigState['consumers'];
  readonly consumerGroupsSource: ConfigState['consumer_groups'];
  /** The protos, compiled with their imports (transcode/proto-registry.ts), and the map they were built from. */
  readonly protos: ProtoRegistry;
  readonly protosSource: ConfigState['protos'];
  /** The plugin metadata map the global rules' chains and the consumers' plugins were compiled with. */
  readonly metadataSource: ConfigState['plugin_metadata'];
  /** The ssls map the SNI table was built from: the next build keeps the table while the map is the same. */
  readonly sniSource: ConfigState['ssls'];
  /** Route id → the build that threw, for routes of this state that could not be built (see the file comment). */
  readonly failed: ReadonlyMap<string, FailedBuild>;
}

/** A route whose build threw: the item and what it looked up until then, so an unchanged failure is not retried. */
export interface FailedBuild {
  readonly item: ConfigItem<RouteConf>;
  readonly lookups: readonly Lookup[];
}

interface Uses {
  readonly upstreams: ReadonlyMap<string, number>;
  readonly nodes: ReadonlyMap<string, number>;
}

/**
 * Above this share of changed routes, the router is built from scratch rather than derived: copying the tables
 * and re-sorting many paths would cost about as much.
 */
const INCREMENTAL_ROUTER_MAX_SHARE = 0.25;

export function buildSnapshot(
  input: ConfigState,
  previous: Snapshot | undefined,
  log: Logger,
  tls?: ListenerTlsOptions,
  health?: HealthRegistry,
  stores?: RedisStores,
): Snapshot {
  const routeBuilds = new Map<string, RouteBuild>();
  const previousBuilds = previous?.routeBuilds;
  // Relative to `previous`: the builds it had that this one does not keep, and the builds made now.
  const removed: RouteBuild[] = [];
  const added: RouteBuild[] = [];
  const protos = previous !== undefined && previous.protosSource === input.protos ? previous.protos : new ProtoRegistry(input.protos, previous?.protos, log);
  const shared: Sharing = { previous: previous?.upstreamCache, fresh: new Map(), health, stores, protos };
  const failed = new Map<string, FailedBuild>();
  let carriedOver = 0; // routes of the previous snapshot still in the config
  for (const item of input.routes.values()) {
    const before = previousBuilds?.get(item.id);
    let build: RouteBuild | undefined;
    if (before !== undefined && before.item === item && lookupsHold(before.lookups, input)) {
      build = before;
    } else {
      // A route that cannot be built keeps `before` (its last good build), which stays out of removed/added.
      build = buildRouteIsolated(item, input, before, shared, failed, previous?.failed.get(item.id), log);
      if (build !== before) {
        if (before !== undefined) removed.push(before);
        if (build !== undefined) added.push(build);
      }
    }
    if (before !== undefined) carriedOver++;
    if (build !== undefined) routeBuilds.set(item.id, build);
  }
  if (previousBuilds !== undefined && carriedOver < previousBuilds.size) {
    for (const [id, build] of previousBuilds) if (!routeBuilds.has(id)) removed.push(build);
  }
  const { upstreamCache, uses } = tally(previous, removed, added);
  const incremental = previous !== undefined && removed.length + added.length <= input.routes.size * INCREMENTAL_ROUTER_MAX_SHARE;
  return {
    revision: input.revision,
    router: incremental
      ? previous.router.with(
          removed.map((b) => b.entry),
          added.map((b) => b.entry),
        )
      : new Router(entriesOf(routeBuilds)),
    sni: previous !== undefined && previous.sniSource === input.ssls ? previous.sni : new SniTable(input.ssls.values(), previous?.sni, log, tls),
    nodeKeys: new Set(uses.nodes.keys()),
    targets: new TargetsById(routeBuilds),
    upstreamCache,
    routeBuilds,
    uses,
    sniSource: input.ssls,
    globalPlugins:
      previous !== undefined && previous.globalSource === input.global_rules && previous.metadataSource === input.plugin_metadata
        ? previous.globalPlugins
        : globalChains(input.global_rules, input.plugin_metadata, log, stores),
    globalSource: input.global_rules,
    consumers:
      previous !== undefined &&
      previous.consumersSource === input.consumers &&
      previous.consumerGroupsSource === input.consumer_groups &&
      previous.metadataSource === input.plugin_metadata
        ? previous.consumers
        : new ConsumerTable(input.consumers.values(), log, previous?.consumers, stores, input.consumer_groups, input.plugin_metadata),
    consumersSource: input.consumers,
    consumerGroupsSource: input.consumer_groups,
    metadataSource: input.plugin_metadata,
    protos,
    protosSource: input.protos,
    failed,
  };
}

/** One chain per global rule with plugins that act on calls, in the order of the rules' ids; one that fails to build is skipped. */
function globalChains(rules: ConfigState['global_rules'], metadata: ConfigState['plugin_metadata'], log: Logger, stores: RedisStores | undefined): PluginChain[] {
  const chains: PluginChain[] = [];
  const sorted = [...rules.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const rule of sorted) {
    try {
      const chain = compilePlugins(rule.value.plugins, { owner: `global_rules/${rule.id}`, stores, metadata: (name) => metadata.get(name)?.value });
      if (chain !== undefined) chains.push(chain);
    } catch (err) {
      log.error({ key: `global_rules/${rule.id}`, modRevision: rule.modRevision, error: describe(err) }, 'skipped a global rule that cannot be built; the rest of the configuration applies');
    }
  }
  return chains;
}

/**
 * buildRoute, with a throw isolated to this route: logged once, remembered in `failed`, and answered with the
 * route's last good build (undefined when it has none, so it is left out). An unchanged failure is not retried.
 */
function buildRouteIsolated(
  item: ConfigItem<RouteConf>,
  input: ConfigState,
  before: RouteBuild | undefined,
  sharing: Sharing,
  failed: Map<string, FailedBuild>,
  failedBefore: FailedBuild | undefined,
  log: Logger,
): RouteBuild | undefined {
  if (failedBefore !== undefined && failedBefore.item === item && lookupsHold(failedBefore.lookups, input)) {
    failed.set(item.id, failedBefore);
    return before;
  }
  const lookups: Lookup[] = [];
  try {
    return buildRoute(item, input, before, sharing, lookups, log);
  } catch (err) {
    failed.set(item.id, { item, lookups });
    log.error(
      {
        key: `routes/${item.id}`,
        modRevision: item.modRevision,
        references: lookups.map((l) => `${l.type}/${l.id}${l.found === undefined ? ' (missing)' : `@${l.found.modRevision}`}`),
        error: describe(err),
        keptPrevious: before !== undefined,
      },
      'skipped a route that cannot be built; the rest of the configuration applies',
    );
    return before;
  }
}

/** Where a route built now finds an upstream to share: one built earlier in this build, or the previous snapshot's. */
interface Sharing {
  readonly previous: ReadonlyMap<string, ResolvedUpstream> | undefined;
  readonly fresh: Map<string, ResolvedUpstream>;
  /** Where upstreams with `checks` get their checker (one per upstream object, kept across builds). */
  readonly health: HealthRegistry | undefined;
  /** Where plugins with a Redis policy get their client (one per server, kept while a snapshot uses it). */
  readonly stores: RedisStores | undefined;
  /** The snapshot's compiled protos (grpc-transcode routes). */
  readonly protos: ProtoRegistry;
}

/** Resolves one route against `input`, reusing an upstream already built for the same settings when there is one. */
function buildRoute(
  item: ConfigItem<RouteConf>,
  input: ConfigState,
  before: RouteBuild | undefined,
  sharing: Sharing,
  lookups: Lookup[],
  log: Logger,
): RouteBuild {
  const resolved = resolveRoute(item.id, item.value, item.modRevision, input, lookups);
  if (!resolved.ok) {
    log.warn({ route: item.id, detail: resolved.detail }, 'route references a missing object; its calls fail until it exists');
    const error = resolved.reason === 'service' ? new RouteNotFound(`${item.value.uri ?? item.id} (${resolved.detail})`) : new NoHealthyNode(`route ${item.id}: ${resolved.detail}`);
    const target: RouteTarget = { upstream: EMPTY_UPSTREAM, error, maxRequestMessageBytes: undefined, maxResponseMessageBytes: undefined, plugins: undefined };
    return { item, lookups, entry: { id: item.id, route: resolved.route, target }, fingerprint: undefined, shared: false };
  }
  // Routes that share an upstream object or service (and timeouts and client certificate) share one balancer, as
  // in APISIX; an upstream whose settings did not change keeps its balancer position across rebuilds.
  const fingerprint = JSON.stringify([resolved.upstreamKey, resolved.upstream, item.value.timeout ?? null, resolved.clientCert?.id ?? null]);
  const shared = resolved.upstreamKey !== `route/${item.id}`;
  let upstream = shared
    ? (sharing.fresh.get(fingerprint) ?? sharing.previous?.get(fingerprint))
    : before?.fingerprint === fingerprint
      ? before.entry.target.upstream
      : undefined;
  if (upstream === undefined) {
    upstream = resolveUpstream(resolved.upstreamKey, resolved.upstream, item.value.timeout, resolved.clientCert, sharing.health);
    if (shared) sharing.fresh.set(fingerprint, upstream);
  }
  const limits = resolved.route.plugins?.['grpc-limits'];
  // Compiled once per build of this route; a build reused across snapshots keeps its plugins' state (counters).
  const plugins = compilePlugins(resolved.route.plugins, {
    owner: `routes/${item.id}`,
    stores: sharing.stores,
    upstream: (ref) => splitUpstream(ref, item, input, sharing, lookups),
    metadata: (name) => {
      // Recorded: the route is rebuilt when the plugin's metadata changes.
      const found = input.plugin_metadata.get(name);
      lookups.push({ type: 'plugin_metadata', id: name, found });
      return found?.value;
    },
  });
  const split = plugins?.plugins.flatMap((plugin) => plugin.upstreams ?? []);
  const web = resolved.route.plugins?.['grpc-web'];
  const corsConf = resolved.route.plugins?.cors;
  const transcodeConf = resolved.route.plugins?.['grpc-transcode'];
  let transcode: TranscodeTarget | undefined;
  if (transcodeConf !== undefined) {
    // Recorded, the proto and every proto it imports: a change to any of them rebuilds the route.
    const protoId = String(transcodeConf.proto_id);
    const proto = sharing.protos.get(protoId);
    lookups.push({ type: 'protos', id: protoId, found: input.protos.get(protoId) });
    for (const imported of proto?.items.slice(1) ?? []) lookups.push({ type: 'protos', id: imported.id, found: input.protos.get(imported.id) });
    transcode = compileTranscode(transcodeConf, proto, sharing.protos.error(protoId));
  }
  const target: RouteTarget = {
    upstream,
    error: undefined,
    maxRequestMessageBytes: limits?.max_request_message_bytes,
    maxResponseMessageBytes: limits?.max_response_message_bytes,
    plugins,
    splitUpstreams: split === undefined || split.length === 0 ? undefined : split,
    cors: web === undefined && corsConf === undefined ? undefined : new WebCors(web === undefined ? undefined : (web.cors_allow_headers ?? DEFAULT_CORS_ALLOW_HEADERS), corsConf),
    transcode,
  };
  return { item, lookups, entry: { id: item.id, route: resolved.route, target }, fingerprint, shared };
}

/**
 * A traffic-split weighted upstream of route `item`, resolved as a route's own: an upstream object (recorded as a
 * lookup, so that its change rebuilds the route) shares the balancer of the routes that use it; an inline one is
 * the route's own. Throws when it cannot be followed (the route is then skipped, keeping its last good build).
 */
function splitUpstream(
  ref: { upstream?: UpstreamConf | undefined; upstream_id?: string | number | undefined },
  item: ConfigItem<RouteConf>,
  input: ConfigState,
  sharing: Sharing,
  lookups: Lookup[],
): ResolvedUpstream {
  const resolved = resolveUpstreamRef(ref, `route/${item.id}/traffic-split`, item.modRevision, input, lookups);
  if (!resolved.ok) throw new Error(`traffic-split: ${resolved.detail}`);
  const shared = ref.upstream === undefined;
  const fingerprint = JSON.stringify([resolved.upstreamKey, resolved.upstream, null, resolved.clientCert?.id ?? null]);
  let upstream = shared ? (sharing.fresh.get(fingerprint) ?? sharing.previous?.get(fingerprint)) : undefined;
  if (upstream === undefined) {
    upstream = resolveUpstream(resolved.upstreamKey, resolved.upstream, undefined, resolved.clientCert, sharing.health);
    if (shared) sharing.fresh.set(fingerprint, upstream);
  }
  return upstream;
}

/**
 * The previous snapshot's counts with the removed builds taken out and the added ones put in: the shared upstreams
 * still used by some route, and the node keys in use. Only the (few) entries of changed routes are touched.
 */
function tally(previous: Snapshot | undefined, removed: readonly RouteBuild[], added: readonly RouteBuild[]): { upstreamCache: ReadonlyMap<string, ResolvedUpstream>; uses: Uses } {
  const upstreamCache = new Map(previous?.upstreamCache);
  const upstreams = new Map(previous?.uses.upstreams);
  const nodes = new Map(previous?.uses.nodes);
  for (const build of removed) {
    if (build.shared && build.fingerprint !== undefined && count(upstreams, build.fingerprint, -1) === 0) upstreamCache.delete(build.fingerprint);
    for (const upstream of upstreamsOf(build.entry.target)) for (const node of upstream.nodes) count(nodes, node.key, -1);
  }
  for (const build of added) {
    if (build.shared && build.fingerprint !== undefined) {
      count(upstreams, build.fingerprint, 1);
      upstreamCache.set(build.fingerprint, build.entry.target.upstream);
    }
    for (const upstream of upstreamsOf(build.entry.target)) for (const node of upstream.nodes) count(nodes, node.key, 1);
  }
  return { upstreamCache, uses: { upstreams, nodes } };
}

/** Adds `delta` to the count of `key`, deleting it at zero; returns the new count. */
function count(counts: Map<string, number>, key: string, delta: number): number {
  const next = (counts.get(key) ?? 0) + delta;
  if (next > 0) counts.set(key, next);
  else counts.delete(key);
  return next;
}

function entriesOf(builds: ReadonlyMap<string, RouteBuild>): RouteEntry<RouteTarget>[] {
  const entries: RouteEntry<RouteTarget>[] = [];
  for (const build of builds.values()) entries.push(build.entry);
  return entries;
}

const EMPTY_UPSTREAM = resolveUpstream('(none)', { nodes: [] }, undefined);

/** The Redis stores the snapshot's plugins use (RedisStores.retain closes the others). */
export function storesInUse(snapshot: Snapshot): Set<RedisStore> {
  const stores = storesOf(snapshot.globalPlugins);
  storesOf(snapshot.consumers.chains(), stores);
  const routes: (PluginChain | undefined)[] = [];
  for (const target of snapshot.targets.values()) routes.push(target.plugins);
  return storesOf(routes, stores);
}

/** The ids of the health checkers the snapshot's routes use (HealthRegistry.retain stops the others). */
export function checkersInUse(snapshot: Snapshot): Set<string> {
  const ids = new Set<string>();
  for (const target of snapshot.targets.values()) {
    for (const upstream of upstreamsOf(target)) {
      const id = upstream.checker?.id;
      if (id !== undefined) ids.add(id);
    }
  }
  return ids;
}

/** The route's upstream, and those its plugins may send calls to instead (traffic-split). */
function upstreamsOf(target: RouteTarget): readonly ResolvedUpstream[] {
  const split = target.splitUpstreams;
  return split === undefined ? [target.upstream] : [target.upstream, ...split];
}

/** Holds the current snapshot; readers call current() once per call and keep what they got. */
export class Snapshots {
  private snapshot: Snapshot;
  private readonly listeners: ((snapshot: Snapshot) => void)[] = [];

  constructor(initial: Snapshot) {
    this.snapshot = initial;
  }

  current(): Snapshot {
    return this.snapshot;
  }

  swap(next: Snapshot): void {
    this.snapshot = next;
    for (const listener of this.listeners) listener(next);
  }

  onSwap(listener: (snapshot: Snapshot) => void): void {
    this.listeners.push(listener);
  }
}
