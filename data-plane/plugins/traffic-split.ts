/**
 * `traffic-split` (APISIX priority 966): sends a share of a route's calls, or the calls that match, to other
 * upstreams: canaries by weight, or by header (`match: [{vars: [["http_x_canary", "==", "1"]]}]`). The first rule
 * whose `match` holds (any of its `{vars}` entries, each an AND of expressions; no `match`: every call) picks the
 * call's upstream from its `weighted_upstreams` by smooth weighted round robin (the upstream balancer's): an entry with
 * `upstream_id` or an inline `upstream` names one, an entry with neither stands for the route's own upstream, and
 * weight 0 is never picked. No rule holding leaves the route's upstream.
 *
 * The weighted upstreams are resolved when the route is built (env.upstream, config/snapshots.ts), as the route's
 * own is: an upstream object shared with other routes shares their balancer and health checker, and a change to it
 * rebuilds the route. The plugin only sets request.upstream; the engines pick the node from it.
 */
import type { TrafficSplitConf } from '../../shared/schema/plugin-policies.ts';
import { compileVars, matchVars, type CompiledVars } from '../../shared/vars-expr.ts';
import type { ResolvedUpstream } from '../upstream/upstream.ts';
import { RoundRobinBalancer } from '../upstream/balancers/roundrobin.ts';
import type { CompiledPlugin, PluginEnv } from './pipeline.ts';
import { variableValue } from './variables.ts';

const PRIORITY = 966;
const DEFAULT_WEIGHT = 1;

interface Rule {
  /** Any one matching; undefined: every call. */
  readonly match: readonly CompiledVars[] | undefined;
  readonly picker: WeightedPicker;
}

export function compileTrafficSplit(conf: TrafficSplitConf, env: PluginEnv): CompiledPlugin {
  const resolve = env.upstream;
  if (resolve === undefined) throw new Error('traffic-split runs on routes, services and plugin configs only');
  const upstreams: ResolvedUpstream[] = [];
  const rules: Rule[] = conf.rules.map((rule, r) => {
    const match = rule.match?.map((entry, m) => {
      const compiled = compileVars([entry.vars ?? []], `traffic-split rules[${String(r)}].match[${String(m)}].vars`);
      if (typeof compiled === 'string') throw new Error(compiled); // the admin API refuses such vars
      return compiled;
    });
    const choices = rule.weighted_upstreams.map((weighted) => {
      const upstream = weighted.upstream === undefined && weighted.upstream_id === undefined ? undefined : resolve(weighted);
      if (upstream !== undefined) upstreams.push(upstream);
      return { upstream, weight: weighted.weight ?? DEFAULT_WEIGHT };
    });
    return { match, picker: new WeightedPicker(choices) };
  });
  return {
    name: 'traffic-split',
    priority: PRIORITY,
    upstreams,
    access(request) {
      for (const rule of rules) {
        if (rule.match !== undefined && !rule.match.some((vars) => matchVars(vars, (ref) => variableValue(ref, request)))) continue;
        const chosen = rule.picker.next();
        if (chosen !== undefined) request.upstream = chosen;
        return undefined;
      }
      return undefined;
    },
  };
}

/**
 * The rule's weighted upstreams, picked by the upstream balancer's smooth weighted round robin (nginx's,
 * upstream/balancers/roundrobin.ts): over a cycle of the total weight each is picked `weight` times, spread out;
 * weight 0 is never picked. `undefined` (the route's own upstream) is picked like the others.
 */
export class WeightedPicker {
  private readonly upstreams: readonly (ResolvedUpstream | undefined)[];
  private readonly balancer: RoundRobinBalancer;

  constructor(choices: readonly { readonly upstream: ResolvedUpstream | undefined; readonly weight: number }[]) {
    this.upstreams = choices.map((c) => c.upstream);
    this.balancer = new RoundRobinBalancer(choices.map((c, i) => ({ key: String(i), weight: c.weight })));
  }

  /** The next upstream (undefined: the route's own, also when every weight is 0). */
  next(): ResolvedUpstream | undefined {
    const index = this.balancer.pick(undefined, '');
    return index < 0 ? undefined : this.upstreams[index];
  }
}
