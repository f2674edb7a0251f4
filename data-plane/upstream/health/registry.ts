/**
 * The health checkers of one data-plane process, one per upstream identity: the upstream object (`upstreams/1`, or
 * the route or service that carries it inline), its `checks` block, and what its probes depend on (scheme, TLS
 * verification, client certificate). Every route and every snapshot that uses that upstream gets the same checker,
 * so its node states survive rebuilds; an edited `checks` block is another identity, so the old checker stops and a
 * new one starts (all nodes healthy, as APISIX's new checker). After each snapshot swap `retain` stops the checkers
 * no route uses any more, with their probes and connections.
 *
 * Processes (docs/proxying.md): active probes run in one process per replica, the single data-plane process
 * or worker 0 of `worker_processes` (APISIX probes from one privileged agent per instance; this is the same rate).
 * Every worker counts its own calls' passive outcomes. A state change is logged where it happens and published; the
 * primary relays it to the other workers, which apply it quietly (`applyRemote`), and keeps worker 0's report for
 * `GET /v1/healthcheck` and for workers that start later (`sync`).
 */
import type { Logger } from '../../../shared/logger.ts';
import type { UpstreamConf } from '../../../shared/schema/upstream.ts';
import type { ClientCertificate } from '../client-certificate.ts';
import type { UpstreamTlsDefaults } from '../../tls/tls-policy.ts';
import { HealthChecker, type CheckedNode, type CheckerState, type HealthChange } from './checker.ts';
import { healthPolicy } from './policy.ts';
import { Prober } from './probes.ts';
import type { ProbeTarget } from './types.ts';

/** How often due probes start and passive ejections are looked at. Intervals are whole seconds, so 100 ms is fine. */
const TICK_MS = 100;
/** Changes received for checkers this process has not built yet (its config lags), kept until it builds them. */
const MAX_PENDING = 10_000;
/**
 * A change older than this found no checker to apply to in time: the checker it was for is gone, and a checker of
 * the same identity built later starts afresh (as in the process that probes).
 */
const PENDING_MAX_AGE_MS = 10_000;

export interface HealthRegistryOptions {
  readonly log: Logger;
  /** Whether this process runs the active probes (see the file comment). */
  readonly probes: boolean;
  readonly upstreamTls: UpstreamTlsDefaults;
  /** Hands a state change that happened here to the other processes (workers only). */
  readonly publish?: (change: HealthChange) => void;
}

export class HealthRegistry {
  private readonly checkers = new Map<string, HealthChecker>();
  /** Changes for checkers not built here yet, with when they came (stale ones are dropped: PENDING_MAX_AGE_MS). */
  private readonly pending = new Map<string, Map<string, { healthy: boolean; at: number }>>();
  private readonly prober: Prober | undefined;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private readonly options: HealthRegistryOptions;

  constructor(options: HealthRegistryOptions) {
    this.options = options;
    this.log = options.log.child({ module: 'health' });
    this.prober = options.probes ? new Prober(this.log) : undefined;
  }

  /**
   * The checker of an upstream (undefined when it has no `checks`), watching `nodes`. Called by each snapshot build
   * for every upstream it resolves.
   */
  checkerFor(upstreamKey: string, conf: UpstreamConf, nodes: readonly CheckedNode[], clientCert: ClientCertificate | undefined): HealthChecker | undefined {
    const checks = conf.checks;
    if (checks === undefined || this.closed) return undefined;
    const scheme = conf.scheme ?? 'grpc';
    const id = JSON.stringify([upstreamKey, checks, scheme, conf.tls?.verify ?? false, clientCert?.id ?? null]);
    let checker = this.checkers.get(id);
    if (checker === undefined) {
      const policy = healthPolicy(checks);
      const active = policy.active;
      const ca = this.options.upstreamTls.ca;
      const targetOf = (node: CheckedNode): ProbeTarget => {
        const https = active?.type === 'https';
        const tlsProbe = https || (active?.type === 'grpc' && scheme === 'grpcs');
        return {
          host: node.host,
          port: active?.port ?? node.port,
          scheme,
          tls: tlsProbe
            ? {
                clientCert,
                // https probes: APISIX's https_verify_certificate (default true); grpc probes follow the upstream's
                // `tls.verify` unless https_verify_certificate says otherwise.
                verify: active.httpsVerifyCertificate ?? (https ? true : (conf.tls?.verify ?? false)),
                ca,
              }
            : undefined,
        };
      };
      checker = new HealthChecker(id, upstreamKey, policy, targetOf, { log: this.log, prober: this.prober, publish: this.options.publish });
      this.checkers.set(id, checker);
      this.log.info({ upstream: upstreamKey, nodes: nodes.length, active: active?.type ?? null, passive: policy.passive !== undefined, probing: this.prober !== undefined }, 'health checker started');
      this.timer ??= setInterval(() => this.tick(), TICK_MS).unref();
    }
    checker.setNodes(nodes);
    const waiting = this.pending.get(id);
    if (waiting !== undefined) {
      this.pending.delete(id);
      const now = Date.now();
      for (const [node, change] of waiting) if (now - change.at <= PENDING_MAX_AGE_MS) checker.applyRemote(node, change.healthy);
    }
    return checker;
  }

  /** Stops every checker whose id is not in `live` (the checkers of the snapshot now in service). */
  retain(live: ReadonlySet<string>): void {
    for (const [id, checker] of this.checkers) {
      if (live.has(id)) continue;
      checker.close();
      this.checkers.delete(id);
      this.log.info({ upstream: checker.upstream }, 'health checker stopped: no route uses it any more');
    }
    if (this.checkers.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** A change published by another process. */
  applyRemote(change: HealthChange): void {
    const checker = this.checkers.get(change.checker);
    if (checker !== undefined) return checker.applyRemote(change.node, change.healthy);
    let waiting = this.pending.get(change.checker);
    if (waiting === undefined) {
      if (this.pending.size >= MAX_PENDING) this.pending.clear();
      waiting = new Map();
      this.pending.set(change.checker, waiting);
    }
    waiting.set(change.node, { healthy: change.healthy, at: Date.now() });
  }

  /** The checker with this id, if it runs here. */
  get(id: string): HealthChecker | undefined {
    return this.checkers.get(id);
  }

  get size(): number {
    return this.checkers.size;
  }

  /** Open probe connections (tests look for leaks). */
  get probeConnections(): number {
    return this.prober?.connections ?? 0;
  }

  /** Every checker's state (APISIX's `GET /v1/healthcheck` body, plus the ids other workers sync from). */
  report(): CheckerState[] {
    const out: CheckerState[] = [];
    for (const checker of this.checkers.values()) out.push(checker.report());
    return out;
  }

  /** A worker that started after the others: the prober's states, applied like published changes. */
  sync(states: readonly CheckerState[]): void {
    for (const state of states) {
      for (const node of state.nodes) {
        const healthy = node.status === 'healthy' || node.status === 'mostly_healthy';
        if (!healthy) this.applyRemote({ checker: state.id, node: node.key, healthy, reason: 'sync' });
      }
    }
  }

  private tick(): void {
    const now = Date.now();
    for (const checker of this.checkers.values()) checker.tick(now);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    for (const checker of this.checkers.values()) checker.close();
    this.checkers.clear();
    this.pending.clear();
    await this.prober?.close();
  }
}
