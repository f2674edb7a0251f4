/**
 * `traffic-split` (APISIX priority 966): sends a share of a route's calls, or the calls that match, to other
 * upstreams: canaries by weight, or by header (`match: [{vars: [["http_x_canary", "==", "1"]]}]`). The first rule
 * whose `match` holds (any of its `{vars}` entries, each an AND of expressions; no `match`: every call) picks the
 * call's upstream from its `weighted_upstreams` by smooth weighted round robin (nginx's): an entry with
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
 * nginx's smooth weighted round robin: each pick adds every choice's weight to its current value, takes the
 * highest, and takes the total off it; over a cycle of the total weight each choice is picked `weight` times,
 * spread out. `undefined` choices (the route's own upstream) are picked like the others.
 */
export class WeightedPicker {
  private readonly choices: readonly { readonly upstream: ResolvedUpstream | undefined; readonly weight: number }[];
  private readonly current: number[];
  private readonly total: number;

  constructor(choices: readonly { readonly upstream: ResolvedUpstream | undefined; readonly weight: number }[]) {
    this.choices = choices.filter((c) => c.weight > 0);
    this.current = this.choices.map(() => 0);
    this.total = this.choices.reduce((sum, c) => sum + c.weight, 0);
  }

  /** The next upstream (undefined: the route's own). */
  next(): ResolvedUpstream | undefined {
    const choices = this.choices;
    if (choices.length <= 1) return choices[0]?.upstream;
    let best = 0;
    for (let i = 0; i < choices.length; i++) {
      const value = (this.current[i] as number) + (choices[i] as { weight: number }).weight;
      this.current[i] = value;
      if (value > (this.current[best] as number)) best = i;
    }
    this.current[best] = (this.current[best] as number) - this.total;
    return (choices[best] as { upstream: ResolvedUpstream | undefined }).upstream;
  }
}
