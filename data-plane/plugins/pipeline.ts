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

export interface CompiledPlugin {
  readonly name: string;
  /** APISIX's priority for the plugin (apisix/plugins/<name>.lua): higher runs first. */
  readonly priority: number;
  /** undefined: the call goes on untouched. */
  access(request: PluginRequest): AccessVerdict | undefined;
}

export class PluginChain {
  readonly plugins: readonly CompiledPlugin[];

  constructor(plugins: readonly CompiledPlugin[]) {
    this.plugins = [...plugins].sort((a, b) => b.priority - a.priority);
  }

  /** This chain alone (no global rules): see runAccess. */
  access(request: PluginRequest): ChainVerdict {
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
export function runAccess(globals: readonly PluginChain[], route: PluginChain | undefined, request: PluginRequest): ChainVerdict {
  let fields: string[] | undefined;
  for (let i = 0; i <= globals.length; i++) {
    const chain = i < globals.length ? globals[i] : route;
    if (chain === undefined) continue;
    for (const plugin of chain.plugins) {
      const verdict = plugin.access(request);
      if (verdict === undefined) continue;
      if (verdict.fields !== undefined) (fields ??= []).push(...verdict.fields);
      if (verdict.error !== undefined) return { error: verdict.error, fields };
    }
  }
  return fields === undefined ? undefined : { error: undefined, fields };
}

type PolicyPlugins = Omit<Required<PluginsConf>, 'grpc-limits' | 'prometheus' | 'opentelemetry'>;

/** How each plugin that acts on calls is compiled from its configuration (the others are read where they apply). */
const COMPILERS: { readonly [K in keyof PolicyPlugins]: (conf: PolicyPlugins[K]) => CompiledPlugin } = {
  'ip-restriction': compileIpRestriction,
  'fault-injection': (conf) => compileFaultInjection(conf),
  'key-auth': compileKeyAuth,
  'jwt-auth': (conf) => compileJwtAuth(conf),
  'consumer-restriction': compileConsumerRestriction,
  'proxy-rewrite': compileProxyRewrite,
  'limit-count': (conf) => compileLimitCount(conf),
};

/** The chain for a route's merged plugins; undefined when none of them acts on calls. */
export function compilePlugins(conf: PluginsConf | undefined): PluginChain | undefined {
  if (conf === undefined) return undefined;
  const plugins: CompiledPlugin[] = [];
  for (const name of Object.keys(COMPILERS) as (keyof PolicyPlugins)[]) {
    const pluginConf = conf[name];
    if (pluginConf !== undefined) plugins.push((COMPILERS[name] as (value: typeof pluginConf) => CompiledPlugin)(pluginConf));
  }
  return plugins.length === 0 ? undefined : new PluginChain(plugins);
}
