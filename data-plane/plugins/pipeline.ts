/**
 * The plugin pipeline of a route: the plugins its `plugins` object enables (the route's own merged over its
 * service's, resolve-route.ts), compiled once when the snapshot is built and run in APISIX's priority order (higher
 * first) on every call at the access phase, before a node is picked. A route without such plugins has no chain at
 * all: the proxy tests one property and pays nothing more.
 *
 * The first plugin that refuses ends the call with its error (a trailers-only gRPC answer, the one error path:
 * proxy/respond-error.ts); the response header fields plugins add (limit-count's quota) are gathered in order.
 * Plugin instances keep their state (limit-count's counters) for as long as the route's build is reused, which is
 * as long as the route and what it references are unchanged.
 *
 * A plugin may answer later (limit-count with a Redis policy): its access() returns a promise, and runAccess returns
 * one for the rest of the phase, which goes on from that plugin once it settles. The engines then hold the stream
 * (its DATA kept under flow control) until the verdict; a plugin that answers at once costs the loop one
 * `instanceof` test and nothing more. Such a promise never rejects and always settles within a bound the plugin
 * owns (redis_timeout; limit-req's and limit-conn's delays), so a call is never left hanging.
 *
 * Completion: a plugin that holds something while the call runs (limit-conn's count) registers its release with
 * `request.onDone`, and the engine calls it once when the call is over, whatever ended it (request.ts).
 */
import type { GatewayError } from '../../shared/errors.ts';
import type { PluginsConf } from '../../shared/schema/plugins.ts';
import { compileFaultInjection } from './fault-injection.ts';
import { compileIpRestriction } from './ip-restriction.ts';
import { compileLimitCount } from './limit-count.ts';
import { compileLimitReq } from './limit-req.ts';
import { compileLimitConn } from './limit-conn.ts';
import { compileKeyAuth } from './key-auth.ts';
import { compileJwtAuth } from './jwt-auth.ts';
import { compileConsumerRestriction } from './consumer-restriction.ts';
import { compileProxyRewrite } from './proxy-rewrite.ts';
import { compileTrafficSplit } from './traffic-split.ts';
import { compileApiBreaker } from './api-breaker.ts';
import type { ResolvedUpstream } from '../upstream/upstream.ts';
import type { UpstreamConf } from '../../shared/schema/upstream.ts';
import type { PluginMetadataConf } from '../../shared/schema/plugin-holders.ts';
import type { AccessVerdict, PluginRequest } from './request.ts';
import type { RedisStore, RedisStores } from './redis-stores.ts';
import type { Consumer } from './consumers.ts';

export interface CompiledPlugin {
  readonly name: string;
  /** APISIX's priority for the plugin (apisix/plugins/<name>.lua): higher runs first. */
  readonly priority: number;
  /** undefined: the call goes on untouched; a promise: the verdict comes later (it never rejects). */
  access(request: PluginRequest): AccessVerdict | undefined | Promise<AccessVerdict | undefined>;
  /** The shared store the plugin counts in (limit-count's Redis policies), kept open while a snapshot uses it. */
  readonly store?: RedisStore;
  /** Upstreams the plugin may send calls to instead of the route's (traffic-split): their nodes stay pooled. */
  readonly upstreams?: readonly ResolvedUpstream[];
}

export class PluginChain {
  readonly plugins: readonly CompiledPlugin[];
  /** Set on a chain merged for a consumer (mergeConsumer): the consumer it was merged for. */
  readonly consumer: Consumer | undefined;

  constructor(plugins: readonly CompiledPlugin[], consumer?: Consumer) {
    this.plugins = [...plugins].sort((a, b) => b.priority - a.priority);
    this.consumer = consumer;
  }

  /** This chain alone (no global rules): see runAccess. */
  access(request: PluginRequest): ChainVerdict | Promise<ChainVerdict> {
    return runAccess(NO_CHAINS, this, request);
  }
}

export type ChainVerdict = { error: GatewayError | undefined; fields: string[] | undefined } | undefined;

const NO_CHAINS: readonly PluginChain[] = [];

/**
 * A routed call's access phase: every plugin of every global rule's chain, then the route's, as APISIX runs global
 * rules before a route's plugins; the first refusal ends it, with the response fields gathered until then. One loop
 * over the plugins, so a call allocates nothing here unless a plugin adds fields.
 */
export function runAccess(globals: readonly PluginChain[], route: PluginChain | undefined, request: PluginRequest): ChainVerdict | Promise<ChainVerdict> {
  return accessFrom(globals, route, request, 0, 0, undefined);
}

/**
 * The access phase from plugin `p` of chain `c` on (`c` = globals.length: the route's chain). When `resumed`,
 * plugin `p` already answered later with `settled`, which is taken as its verdict.
 */
function accessFrom(
  globals: readonly PluginChain[],
  route: PluginChain | undefined,
  request: PluginRequest,
  c: number,
  p: number,
  gathered: string[] | undefined,
  resumed = false,
  settled?: AccessVerdict,
): ChainVerdict | Promise<ChainVerdict> {
  let fields = gathered;
  let resuming = resumed;
  let routeChain = route;
  for (; c <= globals.length; c++, p = 0) {
    let chain = c < globals.length ? globals[c] : routeChain;
    if (c === globals.length && p === 0) {
      // A consumer identified by a global rule: its plugins merge over the whole route chain.
      const merged = mergeConsumer(request.consumer, routeChain, undefined);
      if (merged !== undefined) chain = routeChain = merged;
    }
    if (chain === undefined) continue;
    let plugins = chain.plugins;
    for (; p < plugins.length; p++) {
      let verdict: AccessVerdict | undefined | Promise<AccessVerdict | undefined>;
      if (resuming) {
        verdict = settled;
        resuming = false;
      } else verdict = (plugins[p] as CompiledPlugin).access(request);
      if (verdict !== undefined) {
        if (verdict instanceof Promise) return later(verdict, globals, routeChain, request, c, p, fields);
        if (verdict.fields !== undefined) (fields ??= []).push(...verdict.fields);
        if (verdict.error !== undefined) return { error: verdict.error, fields };
      }
      if (c === globals.length && request.consumer?.plugins !== undefined) {
        // A consumer identified by this route plugin: the rest of the chain is the merged one.
        const merged = mergeConsumer(request.consumer, routeChain, plugins[p]);
        if (merged !== undefined) {
          routeChain = merged;
          plugins = merged.plugins;
          p = -1;
        }
      }
    }
  }
  return fields === undefined ? undefined : { error: undefined, fields };
}

/**
 * The route chain with `consumer`'s plugins merged over it, as APISIX merges a consumer's configuration over the
 * route's once an authentication plugin identified it: a plugin the consumer configures replaces the route's, and
 * the others stay. `after`: the route plugin that identified the consumer; then the chain is what is left to run
 * after it (every plugin of the consumer, in priority order, and the route's after `after`). Undefined when there
 * is nothing to merge (no consumer, one without plugins, or a chain already merged for it). Each merge is made once
 * per consumer and route chain, then kept with the consumer (a WeakMap: gone with the route's build).
 */
function mergeConsumer(consumer: Consumer | undefined, route: PluginChain | undefined, after: CompiledPlugin | undefined): PluginChain | undefined {
  const own = consumer?.plugins;
  if (consumer === undefined || own === undefined || route?.consumer === consumer) return undefined;
  const key: object = after ?? route ?? own;
  let chain = consumer.merged?.get(key);
  if (chain === undefined) {
    const names = new Set(own.plugins.map((plugin) => plugin.name));
    const routePlugins = route === undefined ? [] : after === undefined ? route.plugins : route.plugins.slice(route.plugins.indexOf(after) + 1);
    chain = new PluginChain([...routePlugins.filter((plugin) => !names.has(plugin.name)), ...own.plugins], consumer);
    consumer.merged?.set(key, chain);
  }
  return chain;
}

/** Plugin `p` of chain `c` answers later: the phase goes on from it once it has. */
async function later(
  pending: Promise<AccessVerdict | undefined>,
  globals: readonly PluginChain[],
  route: PluginChain | undefined,
  request: PluginRequest,
  c: number,
  p: number,
  fields: string[] | undefined,
): Promise<ChainVerdict> {
  return accessFrom(globals, route, request, c, p, fields, true, await pending);
}

type PolicyPlugins = Omit<Required<PluginsConf>, 'grpc-limits' | 'prometheus' | 'opentelemetry' | 'grpc-web' | 'grpc-transcode' | 'cors'>;

/** What compiling a plugin may need besides its configuration. */
export interface PluginEnv {
  /** Who owns the plugins (`route/1`, `global_rules/2`): names their shared state, such as Redis counter keys. */
  readonly owner: string;
  /** Where Redis policies get their client (one per server and credentials, shared by routes). */
  readonly stores: RedisStores | undefined;
  /** A plugin's metadata (`/apisix/plugin_metadata/<name>`), read when the plugin is compiled. */
  readonly metadata?: ((plugin: string) => PluginMetadataConf | undefined) | undefined;
  /** A weighted upstream of traffic-split, resolved as the route's own is; only where a route is built. */
  readonly upstream?: ((ref: { upstream?: UpstreamConf | undefined; upstream_id?: string | number | undefined }) => ResolvedUpstream) | undefined;
}

/** How each plugin that acts on calls is compiled from its configuration (the others are read where they apply). */
const COMPILERS: { readonly [K in keyof PolicyPlugins]: (conf: PolicyPlugins[K], env: PluginEnv) => CompiledPlugin } = {
  'ip-restriction': compileIpRestriction,
  'fault-injection': (conf) => compileFaultInjection(conf),
  'key-auth': compileKeyAuth,
  'jwt-auth': (conf) => compileJwtAuth(conf),
  'consumer-restriction': compileConsumerRestriction,
  'proxy-rewrite': compileProxyRewrite,
  'traffic-split': compileTrafficSplit,
  'api-breaker': (conf) => compileApiBreaker(conf),
  'limit-count': (conf, env) => compileLimitCount(conf, env),
  'limit-req': (conf) => compileLimitReq(conf),
  'limit-conn': (conf) => compileLimitConn(conf),
};

/** The chain for a route's merged plugins; undefined when none of them acts on calls. */
export function compilePlugins(conf: PluginsConf | undefined, env: PluginEnv = NO_ENV): PluginChain | undefined {
  if (conf === undefined) return undefined;
  const plugins: CompiledPlugin[] = [];
  for (const name of Object.keys(COMPILERS) as (keyof PolicyPlugins)[]) {
    const pluginConf = conf[name];
    if (pluginConf !== undefined) plugins.push((COMPILERS[name] as (value: typeof pluginConf, env: PluginEnv) => CompiledPlugin)(pluginConf, env));
  }
  return plugins.length === 0 ? undefined : new PluginChain(plugins);
}

const NO_ENV: PluginEnv = { owner: '', stores: undefined };

/** The Redis stores the chains use, for RedisStores.retain to close the others. */
export function storesOf(chains: Iterable<PluginChain | undefined>, into: Set<RedisStore> = new Set()): Set<RedisStore> {
  for (const chain of chains) {
    if (chain === undefined) continue;
    for (const plugin of chain.plugins) if (plugin.store !== undefined) into.add(plugin.store);
  }
  return into;
}
