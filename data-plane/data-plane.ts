/**
 * Assembles one data plane: status server → config source (etcd range + watch) → snapshots → session pool →
 * listeners. Tests start it in-process with their own config; main.ts starts it for real. close() drains and
 * releases everything.
 *
 * The status server (when `apisix.status` is set) starts first, so that while the first load waits for etcd a probe
 * sees a live process that is not ready (/healthz 200, /readyz 503) rather than a refused connection; /readyz turns
 * 200 only once the snapshot is in service behind bound gRPC listeners, and 503 again when close() starts draining.
 *
 * A configuration that cannot be applied never takes the process down: a route whose build throws is skipped
 * (snapshots.ts), a whole build that throws leaves the last good snapshot in service (RebuildThrottle's handler
 * below) and the next change is built as usual, and a first load that cannot be built starts with an empty
 * snapshot instead of exiting (a restarted worker would otherwise crash-loop on the same etcd value). Either way
 * /readyz says so (`config_error`, `config_skipped`, `config_stale`; status-server.ts).
 */
import type { GatewayConfig } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import { RebuildThrottle } from './config/rebuild-throttle.ts';
import { describe } from '../shared/errors.ts';
import type { ConfigSource, ConfigState } from './config/source.ts';
import { Snapshots, buildSnapshot, checkersInUse, storesInUse, type Snapshot } from './config/snapshots.ts';
import { HealthRegistry } from './upstream/health/registry.ts';
import { RedisStores } from './plugins/redis-stores.ts';
import type { HealthChange } from './upstream/health/checker.ts';
import { upstreamSettings } from './http2-settings.ts';
import { startListeners, type BoundAddress, type Listeners } from './listeners.ts';
import { startNativeListeners } from './native-listeners.ts';
import { ClientPool } from './upstream/client-pool.ts';
import { loadDefaultCert, type PemPair } from './tls/default-cert.ts';
import { listenerTlsOptions, loadUpstreamTls } from './tls/tls-policy.ts';
import { clampDelay } from './timers.ts';
import { SessionPool } from './upstream/pool.ts';
import { StatusPhase, startStatusServer, type StatusAddress, type StatusReport, type StatusServer } from './status-server.ts';
import { Observer } from './observability/observer.ts';
import { metricSources } from './observability/sources.ts';
import type { Registry } from 'prom-client';

export interface DataPlane {
  readonly addresses: readonly BoundAddress[];
  readonly snapshots: Snapshots;
  /** Where /healthz and /readyz answer; undefined when `apisix.status` is off. */
  readonly statusAddress: StatusAddress | undefined;
  /** What /readyz would say now (worker processes send it to their primary, which serves the status port). */
  report(): StatusReport;
  /** The upstream health checkers (`checks`): their states for /v1/healthcheck, and changes from other workers. */
  readonly health: HealthRegistry;
  /** Reopens the access-log file (SIGUSR1, after logrotate moved it), as nginx does. */
  reopenLogs(): void;
  /** The Prometheus registry of this process's calls (observability/metrics.ts); undefined when metrics are off. */
  readonly metrics: Registry | undefined;
  /** The native engine's upstream pool (ClientPool.stats()): tests check it for leaked streams. Undefined on `node`. */
  upstreamStats(): { connections: number; streams: number; bufferedBytes: number } | undefined;
  /** Stops accepting, lets calls in flight finish for up to `graceMs`, then closes sessions and the watch. */
  close(graceMs?: number): Promise<void>;
}

export interface DataPlaneOptions {
  config: GatewayConfig;
  log: Logger;
  /** Pre-made default certificate (tests share one); otherwise loaded or generated from config. */
  defaultCert?: PemPair;
  /**
   * Health checks across worker processes (upstream/health/registry.ts): whether this process runs the active
   * probes (default true: a single process does) and where its state changes go.
   */
  health?: { probes: boolean; publish?: (change: HealthChange) => void };
  /** false in worker processes: their primary serves the scrape (summed over workers) on export_addr. */
  serveMetrics?: boolean;
  /**
   * Where the configuration comes from: by default the source `config` names (etcd or the standalone file,
   * config/create-source.ts, loaded only then). Worker processes pass the states their primary relays
   * (config/relay.ts), and so never load etcd3.
   */
  source?: (onChange: (state: ConfigState) => void) => ConfigSource;
}

export async function startDataPlane(options: DataPlaneOptions): Promise<DataPlane> {
  const { config, log } = options;
  const tlsPolicy = listenerTlsOptions(config.tls);
  const upstreamTls = await loadUpstreamTls(config.tls.trustedCertificateFile);
  // Metrics, access log, request ids, traces (observability/): undefined when every one of them is off. An access
  // log that cannot be opened, or a format with a typo, stops the start here.
  const o = config.observability;
  const observer = o.metrics.enable || o.accessLog.enable || o.requestId.enable || o.tracing.collector !== undefined ? new Observer(o, log) : undefined;
  // The HTTP/2 engine (apisix.http2_engine): our own (data-plane/http2/), or node:http2 for one release.
  const native = config.http2Engine === 'native';
  const pool: SessionPool | ClientPool = native ? new ClientPool(log, config.http2, upstreamTls) : new SessionPool(log, upstreamSettings(config.http2), upstreamTls);
  const health = new HealthRegistry({ log, upstreamTls, probes: options.health?.probes ?? true, ...(options.health?.publish === undefined ? {} : { publish: options.health.publish }) });
  // Redis clients of plugins' shared policies (limit-count policy redis): opened by the builds that need them.
  const stores = new RedisStores(log);
  /** Why the newest state could not be applied; undefined while the newest state is in service. */
  let configError: { revision: string; error: string } | undefined;
  /** The first snapshot; one that cannot be built is reported and replaced by an empty one (see the file comment). */
  const firstSnapshot = (initial: ConfigState): Snapshot => {
    try {
      return buildSnapshot(initial, undefined, log, tlsPolicy, health, stores);
    } catch (err) {
      configError = { revision: initial.revision, error: describe(err) };
      log.error(configError, 'cannot build the configuration; serving none until a change can be applied');
      return buildSnapshot(emptyState(initial.revision), undefined, log, tlsPolicy, health, stores);
    }
  };
  let snapshots: Snapshots | undefined;
  /** The config state the snapshot in service was built from (etcd modify indexes for the metrics). */
  let stateInService: ConfigState | undefined;
  // An isolated change applies at once; a burst shares rebuilds (config/rebuild-throttle.ts).
  const throttle = new RebuildThrottle<ConfigState>(
    (state) => {
      if (snapshots === undefined) return;
      const started = performance.now();
      const next = buildSnapshot(state, snapshots.current(), log, tlsPolicy, health, stores);
      snapshots.swap(next);
      stateInService = state;
      configError = undefined;
      pool.retain(next.nodeKeys);
      if (health.size > 0) health.retain(checkersInUse(next));
      if (stores.size > 0) stores.retain(storesInUse(next));
      const buildMs = +(performance.now() - started).toFixed(2);
      log.info({ revision: state.revision, routes: next.router.size, skipped: next.failed.size, ssls: state.ssls.size, buildMs }, 'config applied');
    },
    undefined,
    (err, state) => {
      // Checkers the failed build started are stopped: only the snapshot in service keeps its own.
      if (snapshots !== undefined && health.size > 0) health.retain(checkersInUse(snapshots.current()));
      if (snapshots !== undefined && stores.size > 0) stores.retain(storesInUse(snapshots.current()));
      configError = { revision: state.revision, error: describe(err) };
      log.error({ ...configError, inService: snapshots?.current().revision }, 'cannot apply the configuration; the last good one stays in service');
    },
  );
  const apply = (state: ConfigState): void => throttle.push(state);
  const source = options.source !== undefined ? options.source(apply) : (await import('./config/create-source.ts')).createConfigSource(config, log, apply);
  let phase: StatusPhase = StatusPhase.loading;
  const report = (): StatusReport => ({
    phase,
    revision: snapshots?.current().revision,
    routes: snapshots?.current().router.size ?? 0,
    watch: source.health(),
    config: { error: configError === undefined ? undefined : `revision ${configError.revision}: ${configError.error}`, skipped: snapshots?.current().failed.size ?? 0 },
  });
  let status: StatusServer | undefined;
  let metricsServer: StatusServer | undefined;
  let listeners: Listeners | undefined;
  const registry = observer?.metrics?.registry(
    metricSources({
      connected: () => source.health().connected,
      state: () => stateInService,
      connections: () => listeners?.stats?.(),
      health: () => health.report(),
      observer,
    }),
  );
  const scrape = registry === undefined ? undefined : async () => ({ contentType: registry.contentType, body: await registry.metrics() });
  try {
    if (config.status !== undefined) {
      status = await startStatusServer({
        listen: config.status,
        log,
        report,
        healthcheck: () => health.report(),
        ...(scrape === undefined || o.metrics.exportAddr !== undefined ? {} : { metrics: { uri: o.metrics.exportUri, scrape } }),
      });
    }
    if (scrape !== undefined && o.metrics.exportAddr !== undefined && options.serveMetrics !== false) {
      metricsServer = await startStatusServer({ listen: o.metrics.exportAddr, log, report, metrics: { uri: o.metrics.exportUri, scrape }, metricsOnly: true });
    }
    const initial = await source.start();
    stateInService = initial;
    snapshots = new Snapshots(firstSnapshot(initial));
    log.info({ revision: initial.revision, routes: snapshots.current().router.size, provider: config.dataPlane.configProvider }, 'config loaded');
    const defaultCert = options.defaultCert ?? (await loadDefaultCert(config.ssl.defaultCertFile, config.ssl.defaultKeyFile));
    const listenerOptions = {
      h2c: config.nodeListen,
      tls: config.ssl.enable ? config.ssl.listen : [],
      fallbackSni: config.ssl.fallbackSni,
      defaultCert,
      tlsPolicy,
      limits: config.http2,
      connections: config.connections,
    };
    listeners =
      pool instanceof ClientPool
        ? await startNativeListeners({ ...listenerOptions, deps: { snapshots, pool, log, observer } })
        : await startListeners({ ...listenerOptions, deps: { snapshots, pool, log } });
    const serving = listeners;
    log.info({ engine: config.http2Engine }, 'HTTP/2 engine');
    const current = snapshots;
    const statusServer = status;
    phase = StatusPhase.serving;
    let closing: Promise<void> | undefined;
    return {
      addresses: listeners.addresses,
      snapshots: current,
      statusAddress: statusServer?.address,
      report,
      health,
      metrics: registry,
      reopenLogs: () => observer?.accessLog?.reopen(),
      upstreamStats: () => (pool instanceof ClientPool ? pool.stats() : undefined),
      close: (graceMs = 0) => {
        closing ??= (async () => {
          phase = StatusPhase.draining;
          throttle.close();
          await serving.close(clampDelay(graceMs)); // worker_shutdown_timeout, from config: timers.ts
          // Every client stream is over, so every upstream stream is too: nothing left to wait for.
          await pool.close(0);
          await health.close();
          stores.close();
          await source.close();
          await observer?.close(); // the last access-log lines and spans
          await metricsServer?.close();
          await statusServer?.close();
        })();
        return closing;
      },
    };
  } catch (err) {
    throttle.close();
    stores.close();
    await source.close();
    await pool.close();
    await health.close();
    await observer?.close();
    await metricsServer?.close();
    await status?.close();
    throw err;
  }
}

function emptyState(revision: string): ConfigState {
  return { revision, routes: new Map(), upstreams: new Map(), services: new Map(), ssls: new Map(), consumers: new Map(), consumer_groups: new Map(), global_rules: new Map(), plugin_configs: new Map(), plugin_metadata: new Map(), protos: new Map() };
}
