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

  /** The combined verdict: the first refusal (with the fields gathered so far), or the fields to add. */
  access(request: PluginRequest): { error: GatewayError | undefined; fields: string[] | undefined } | undefined {
    let fields: string[] | undefined;
    for (const plugin of this.plugins) {
      const verdict = plugin.access(request);
      if (verdict === undefined) continue;
      if (verdict.fields !== undefined) (fields ??= []).push(...verdict.fields);
      if (verdict.error !== undefined) return { error: verdict.error, fields };
    }
    return fields === undefined ? undefined : { error: undefined, fields };
  }
}

export type ChainVerdict = { error: GatewayError | undefined; fields: string[] | undefined } | undefined;

/**
 * A routed call's access phase: every global rule's chain, then the route's, as APISIX runs global rules before a
 * route's plugins; the first refusal ends it, with the response fields gathered until then.
 */
export function runAccess(globals: readonly PluginChain[], route: PluginChain | undefined, request: PluginRequest): ChainVerdict {
  let fields: string[] | undefined;
  for (let i = 0; i <= globals.length; i++) {
    const chain = i < globals.length ? globals[i] : route;
    const verdict = chain?.access(request);
    if (verdict === undefined) continue;
    if (verdict.fields !== undefined) (fields ??= []).push(...verdict.fields);
    if (verdict.error !== undefined) return { error: verdict.error, fields };
  }
  return fields === undefined ? undefined : { error: undefined, fields };
}

/** The chain for a route's merged plugins; undefined when none of them acts on calls. */
export function compilePlugins(conf: PluginsConf | undefined): PluginChain | undefined {
  if (conf === undefined) return undefined;
  const plugins: CompiledPlugin[] = [];
  const ip = conf['ip-restriction'];
  if (ip !== undefined) plugins.push(compileIpRestriction(ip));
  const fault = conf['fault-injection'];
  if (fault !== undefined) plugins.push(compileFaultInjection(fault));
  const keyAuth = conf['key-auth'];
  if (keyAuth !== undefined) plugins.push(compileKeyAuth(keyAuth));
  const jwtAuth = conf['jwt-auth'];
  if (jwtAuth !== undefined) plugins.push(compileJwtAuth(jwtAuth));
  const restriction = conf['consumer-restriction'];
  if (restriction !== undefined) plugins.push(compileConsumerRestriction(restriction));
  const rewrite = conf['proxy-rewrite'];
  if (rewrite !== undefined) plugins.push(compileProxyRewrite(rewrite));
  const limit = conf['limit-count'];
  if (limit !== undefined) plugins.push(compileLimitCount(limit));
  return plugins.length === 0 ? undefined : new PluginChain(plugins);
}
