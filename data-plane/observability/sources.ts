/**
 * What a scrape reads from the rest of the data plane besides the call counters: etcd reachability and modify
 * indexes (APISIX's `apisix_etcd_reachable`, `apisix_etcd_modify_indexes{key}`), client connections, upstream health,
 * and the observer's own drop counts. Read only when Prometheus asks, never per call.
 */
import type { ConfigState } from '../config/config-state.ts';
import type { ConnectionStats } from '../listeners.ts';
import type { CheckerReport } from '../upstream/health/checker.ts';
import type { MetricSources } from './metrics.ts';
import type { Observer } from './observer.ts';

export interface SourceInputs {
  connected(): boolean;
  state(): ConfigState | undefined;
  connections(): ConnectionStats | undefined;
  health(): readonly CheckerReport[];
  observer: Observer | undefined;
}

/** APISIX's keys; the kinds this gateway does not have yet (consumers, global_rules, …) are left out. */
const KINDS = ['routes', 'services', 'upstreams', 'ssls'] as const;

export function metricSources(inputs: SourceInputs): MetricSources {
  return {
    etcd: () => {
      const state = inputs.state();
      const indexes: Record<string, number> = {};
      if (state !== undefined) {
        let max = 0;
        for (const kind of KINDS) {
          let kindMax = 0;
          for (const item of state[kind].values()) kindMax = Math.max(kindMax, Number(item.modRevision) || 0);
          indexes[kind] = kindMax;
          max = Math.max(max, kindMax);
        }
        indexes['max_modify_index'] = max;
        indexes['x_etcd_index'] = Number(state.revision) || 0;
      }
      return { reachable: inputs.connected(), indexes };
    },
    connections: () => inputs.connections() ?? { active: 0, writing: 0, waiting: 0, accepted: 0, handled: 0 },
    upstreams: () => inputs.health(),
    accessLog: () => inputs.observer?.accessLog?.stats(),
    spans: () => inputs.observer?.exporter?.stats(),
  };
}
