/**
 * The health of one upstream object's nodes (APISIX: one lua-resty-healthcheck checker per upstream), shared by every
 * route and every build that uses that upstream with the same `checks` (registry.ts keeps one per identity).
 *
 * Node states follow lua-resty-healthcheck's counters: a node has consecutive counts of successes, http failures,
 * tcp failures and timeouts. A healthy node turns unhealthy when one failure count reaches its threshold; an
 * unhealthy node turns healthy after `successes` consecutive successes; a success clears the failure counts and a
 * failure clears the success count. Active probes (when this process probes: registry.ts) and passive outcomes
 * (attempts of real calls, reported by the proxy) feed the same counters with their own thresholds.
 *
 * A node ejected by passive checks when the upstream has no active check comes back after
 * `passive.base_ejection_time` (Envoy's outlier ejection); with an active check only probes bring it back.
 *
 * Every state change is logged once, by the process where it happened, with the upstream, node, reason and counts,
 * and handed to `publish` so the other worker processes apply it (registry.ts); changes received from them are
 * applied quietly. `version` grows with every change, which is all a picker needs to know to redo its masks.
 */
import type { Logger } from '../../../shared/logger.ts';
import type { HealthPolicy, Thresholds } from './policy.ts';
import type { ProbeOutcome, ProbeResult, ProbeTarget } from './types.ts';
import type { Prober } from './probes.ts';

export type CheckSource = 'active' | 'passive';

/** A node as the checker knows it. */
export interface CheckedNode {
  readonly key: string;
  readonly host: string;
  readonly port: number;
}

/** A state change, as published to the other processes. */
export interface HealthChange {
  readonly checker: string;
  readonly node: string;
  readonly healthy: boolean;
  readonly reason: string;
}

/** APISIX's control API view of a node (`GET /v1/healthcheck`). */
export interface NodeReport {
  ip: string;
  port: number;
  hostname: string;
  status: 'healthy' | 'unhealthy' | 'mostly_healthy' | 'mostly_unhealthy';
  counter: { success: number; http_failure: number; tcp_failure: number; timeout_failure: number };
}

export interface CheckerReport {
  /** `/apisix/upstreams/1`, `/apisix/routes/1` or `/apisix/services/1`: the object that holds the upstream. */
  name: string;
  type: string;
  nodes: NodeReport[];
}

/** A checker's report as processes exchange it: its id, and each node's pool key (not served). */
export interface CheckerState extends CheckerReport {
  id: string;
  nodes: (NodeReport & { key: string })[];
}

class NodeState {
  healthy = true;
  success = 0;
  httpFailure = 0;
  tcpFailure = 0;
  timeouts = 0;
  /** When the next active probe is due (epoch ms); a probe in flight sets `probing`. */
  nextProbeAt = 0;
  probing = false;
  /** With passive checks only: when a passive ejection ends (epoch ms); 0 = not ejected by time. */
  ejectedUntil = 0;
  /** The ejection was made in another process, which logs and publishes its end: here it ends quietly. */
  ejectedElsewhere = false;
  readonly node: CheckedNode;
  /** Where the active probes go (made once per node: probes allocate nothing for it). */
  readonly target: ProbeTarget;

  constructor(node: CheckedNode, target: ProbeTarget) {
    this.node = node;
    this.target = target;
  }

  clearFailures(): void {
    this.httpFailure = this.tcpFailure = this.timeouts = 0;
  }
}

export interface CheckerDeps {
  readonly log: Logger;
  /** Runs the active probes; undefined in a process that does not probe (registry.ts). */
  readonly prober: Prober | undefined;
  /** Hands a state change that happened here to the other processes. */
  readonly publish: ((change: HealthChange) => void) | undefined;
}

export class HealthChecker {
  /** Grows with every state change. */
  version = 0;
  /** Nodes currently unhealthy. */
  unhealthyCount = 0;
  private readonly nodes = new Map<string, NodeState>();
  /** The nodes in probing order, and where the next scan for due probes starts (so every node gets its turn). */
  private order: NodeState[] = [];
  private cursor = 0;
  private closed = false;
  /** Probes in flight (bounded by `active.concurrency`). */
  private inFlight = 0;

  /** Identity: the upstream's key, its checks and what the probes depend on (registry.ts). */
  readonly id: string;
  /** `upstreams/1`, `route/7`, `service/2`. */
  readonly upstream: string;
  readonly policy: HealthPolicy;
  private readonly targetOf: (node: CheckedNode) => ProbeTarget;
  private readonly deps: CheckerDeps;

  constructor(id: string, upstream: string, policy: HealthPolicy, targetOf: (node: CheckedNode) => ProbeTarget, deps: CheckerDeps) {
    this.id = id;
    this.upstream = upstream;
    this.policy = policy;
    this.targetOf = targetOf;
    this.deps = deps;
  }

  /** The nodes to watch: new ones start healthy (and are probed at once), those not listed stop being probed. */
  setNodes(nodes: readonly CheckedNode[]): void {
    const keys = new Set<string>();
    for (const node of nodes) {
      keys.add(node.key);
      if (!this.nodes.has(node.key)) this.nodes.set(node.key, new NodeState(node, this.targetOf(node)));
    }
    for (const [key, state] of this.nodes) {
      if (keys.has(key)) continue;
      this.nodes.delete(key);
      if (!state.healthy) {
        this.unhealthyCount--;
        this.version++;
      }
      if (this.deps.prober !== undefined && this.policy.active !== undefined) this.deps.prober.forget(state.target);
    }
    this.order = [...this.nodes.values()];
    this.cursor = 0;
  }

  /** Unknown nodes (not, or no longer, watched) count as healthy. */
  isHealthy(nodeKey: string): boolean {
    return this.nodes.get(nodeKey)?.healthy ?? true;
  }

  get size(): number {
    return this.nodes.size;
  }

  /** An outcome of a real call's attempt on `nodeKey` (the proxy's passive report). */
  passive(nodeKey: string, outcome: ProbeOutcome, reason: string): void {
    const passive = this.policy.passive;
    if (passive === undefined || this.closed) return;
    const state = this.nodes.get(nodeKey);
    if (state !== undefined) this.record(state, outcome, reason, 'passive', passive.thresholds);
  }

  /** A change that happened in another process: applied without a log line or a publish. */
  applyRemote(nodeKey: string, healthy: boolean, now = Date.now()): void {
    const state = this.nodes.get(nodeKey);
    if (state === undefined || state.healthy === healthy) return;
    state.success = 0;
    state.clearFailures();
    this.setState(state, healthy, now);
    state.ejectedElsewhere = !healthy;
  }

  /**
   * Called by the registry's tick: starts the probes that are due (up to `concurrency` in flight) and ends passive
   * ejections whose time has passed.
   */
  tick(now: number): void {
    if (this.closed) return;
    const active = this.policy.active;
    const passive = this.policy.passive;
    if (active === undefined) {
      if (passive === undefined || this.unhealthyCount === 0) return;
      for (const state of this.nodes.values()) {
        if (!state.healthy && state.ejectedUntil !== 0 && state.ejectedUntil <= now) {
          if (state.ejectedElsewhere) this.setState(state, true, now);
          else this.change(state, true, `ejected for ${passive.ejectionMs / 1000} s by passive checks, back on probation`, 'passive', now);
        }
      }
      return;
    }
    const prober = this.deps.prober;
    if (prober === undefined) return;
    const order = this.order;
    const n = order.length;
    for (let scanned = 0; scanned < n && this.inFlight < active.concurrency; scanned++) {
      const state = order[this.cursor] as NodeState;
      this.cursor = this.cursor + 1 === n ? 0 : this.cursor + 1;
      if (state.probing || state.nextProbeAt > now) continue;
      state.probing = true;
      state.nextProbeAt = now + (state.healthy ? active.healthyIntervalMs : active.unhealthyIntervalMs);
      this.inFlight++;
      void prober
        .probe(state.target, active)
        .then((result) => this.probed(state, result))
        .catch((err: unknown) => this.deps.log.error({ upstream: this.upstream, node: state.node.key, err: String(err) }, 'health probe bookkeeping failed'));
    }
  }

  private probed(state: NodeState, result: ProbeResult): void {
    this.inFlight--;
    state.probing = false;
    const active = this.policy.active;
    if (this.closed || active === undefined || this.nodes.get(state.node.key) !== state) return;
    this.record(state, result.outcome, result.reason, 'active', active.thresholds);
    // A slot under `concurrency` is free: a probe that is due now need not wait for the next tick.
    this.tick(Date.now());
  }

  private record(state: NodeState, outcome: ProbeOutcome, reason: string, source: CheckSource, limits: Thresholds): void {
    switch (outcome) {
      case 'none':
        return;
      case 'success':
        state.clearFailures();
        if (state.healthy) return;
        state.success++;
        // A node ejected by time (no active check) is only brought back by its ejection ending.
        if (source === 'passive' && state.ejectedUntil !== 0) return;
        if (state.success >= limits.successes) this.change(state, true, `${state.success} successes (${source})`, source);
        return;
      case 'http_failure':
        state.success = 0;
        if (state.healthy && ++state.httpFailure >= limits.httpFailures) this.change(state, false, `${reason} (${state.httpFailure} http failures, ${source})`, source);
        return;
      case 'tcp_failure':
        state.success = 0;
        if (state.healthy && ++state.tcpFailure >= limits.tcpFailures) this.change(state, false, `${reason} (${state.tcpFailure} tcp failures, ${source})`, source);
        return;
      case 'timeout':
        state.success = 0;
        if (state.healthy && ++state.timeouts >= limits.timeouts) this.change(state, false, `${reason} (${state.timeouts} timeouts, ${source})`, source);
        return;
    }
  }

  private change(state: NodeState, healthy: boolean, reason: string, source: CheckSource, now = Date.now()): void {
    const counts = { success: state.success, http_failure: state.httpFailure, tcp_failure: state.tcpFailure, timeout_failure: state.timeouts };
    state.ejectedElsewhere = false;
    state.success = 0;
    state.clearFailures();
    this.setState(state, healthy, now);
    const log = { upstream: this.upstream, node: state.node.key, check: source, reason, counter: counts };
    if (healthy) this.deps.log.info(log, 'upstream node is healthy again');
    else this.deps.log.warn(log, 'upstream node is unhealthy: calls go to other nodes');
    this.deps.publish?.({ checker: this.id, node: state.node.key, healthy, reason });
  }

  private setState(state: NodeState, healthy: boolean, now: number): void {
    if (state.healthy === healthy) return;
    state.healthy = healthy;
    this.unhealthyCount += healthy ? -1 : 1;
    const passive = this.policy.passive;
    state.ejectedUntil = !healthy && this.policy.active === undefined && passive !== undefined ? now + passive.ejectionMs : 0;
    // An unhealthy node is probed at the unhealthy interval from now on (and the reverse).
    const active = this.policy.active;
    if (active !== undefined && !state.probing) state.nextProbeAt = now + (healthy ? active.healthyIntervalMs : active.unhealthyIntervalMs);
    this.version++;
  }

  report(): CheckerState {
    const nodes: (NodeReport & { key: string })[] = [];
    for (const state of this.nodes.values()) {
      const failures = state.httpFailure + state.tcpFailure + state.timeouts;
      const status = state.healthy ? (failures > 0 ? 'mostly_healthy' : 'healthy') : state.success > 0 ? 'mostly_unhealthy' : 'unhealthy';
      nodes.push({
        key: state.node.key,
        ip: state.node.host,
        port: state.node.port,
        hostname: state.node.host,
        status,
        counter: { success: state.success, http_failure: state.httpFailure, tcp_failure: state.tcpFailure, timeout_failure: state.timeouts },
      });
    }
    return { id: this.id, name: `/apisix/${objectPath(this.upstream)}`, type: this.policy.active?.type ?? 'passive', nodes };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.deps.prober !== undefined && this.policy.active !== undefined) {
      for (const state of this.nodes.values()) this.deps.prober.forget(state.target);
    }
  }
}

/** `upstreams/1` → `upstreams/1`, `route/1` → `routes/1`, `service/1` → `services/1` (the etcd key's form). */
export function objectPath(upstreamKey: string): string {
  const slash = upstreamKey.indexOf('/');
  const kind = upstreamKey.slice(0, slash);
  const id = upstreamKey.slice(slash + 1);
  return `${kind === 'route' ? 'routes' : kind === 'service' ? 'services' : kind}/${id}`;
}
