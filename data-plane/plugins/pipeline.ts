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
 * owns (redis_timeout), so a call is never left hanging.
 */
import type { GatewayError } from '../../shared/errors.ts';
import type { PluginsConf } from '../../shared/schema/plugins.ts';
import { compileFaultInjection } from './fault-injection.ts';
import { compileIpRestriction } from './ip-restriction.ts';
import { compileLimitCount } from './limit-count.ts';
import { compileKeyAuth } from './key-auth.ts';
import { compileJwtAuth } from './jwt-auth.ts';
import { compileConsumerRestriction } from './consumer-restriction.ts';
import { compileProxyRewrite } from './proxy-rewrite.ts';
import type { AccessVerdict, PluginRequest } from './request.ts';
import type { RedisStore, RedisStores } from './redis-stores.ts';

export interface CompiledPlugin {
  readonly name: string;
  /** APISIX's priority for the plugin (apisix/plugins/<name>.lua): higher runs first. */
  readonly priority: number;
  /** undefined: the call goes on untouched; a promise: the verdict comes later (it never rejects). */
  access(request: PluginRequest): AccessVerdict | undefined | Promise<AccessVerdict | undefined>;
  /** The shared store the plugin counts in (limit-count's Redis policies), kept open while a snapshot uses it. */
  readonly store?: RedisStore;
}

export class PluginChain {
  readonly plugins: readonly CompiledPlugin[];

  constructor(plugins: readonly CompiledPlugin[]) {
    this.plugins = [...plugins].sort((a, b) => b.priority - a.priority);
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
  for (; c <= globals.length; c++, p = 0) {
    const chain = c < globals.length ? globals[c] : route;
    if (chain === undefined) continue;
    const plugins = chain.plugins;
    for (; p < plugins.length; p++) {
      let verdict: AccessVerdict | undefined | Promise<AccessVerdict | undefined>;
      if (resuming) {
        verdict = settled;
        resuming = false;
      } else verdict = (plugins[p] as CompiledPlugin).access(request);
      if (verdict === undefined) continue;
      if (verdict instanceof Promise) return later(verdict, globals, route, request, c, p, fields);
      if (verdict.fields !== undefined) (fields ??= []).push(...verdict.fields);
      if (verdict.error !== undefined) return { error: verdict.error, fields };
    }
  }
  return fields === undefined ? undefined : { error: undefined, fields };
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

type PolicyPlugins = Omit<Required<PluginsConf>, 'grpc-limits' | 'prometheus' | 'opentelemetry'>;

/** What compiling a plugin may need besides its configuration. */
export interface PluginEnv {
  /** Who owns the plugins (`route/1`, `global_rules/2`): names their shared state, such as Redis counter keys. */
  readonly owner: string;
  /** Where Redis policies get their client (one per server and credentials, shared by routes). */
  readonly stores: RedisStores | undefined;
}

/** How each plugin that acts on calls is compiled from its configuration (the others are read where they apply). */
const COMPILERS: { readonly [K in keyof PolicyPlugins]: (conf: PolicyPlugins[K], env: PluginEnv) => CompiledPlugin } = {
  'ip-restriction': compileIpRestriction,
  'fault-injection': (conf) => compileFaultInjection(conf),
  'key-auth': compileKeyAuth,
  'jwt-auth': (conf) => compileJwtAuth(conf),
  'consumer-restriction': compileConsumerRestriction,
  'proxy-rewrite': compileProxyRewrite,
  'limit-count': (conf, env) => compileLimitCount(conf, env),
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
