/**
 * Worker processes (`nginx_config.worker_processes`): the primary forks N data-plane workers with node:cluster, all
 * serving the same gRPC ports (the primary accepts and hands connections out round-robin). The primary proxies
 * nothing: it reads the configuration (the replica's one etcd watch, or the standalone file) and relays every
 * validated change to the workers (config/relay.ts), owns the status port, replaces a worker that dies, and on
 * SIGTERM asks every worker to drain and waits for them.
 *
 * Workers report to the primary over the cluster IPC channel: their bound addresses once, and their status
 * (phase, revision, route count) whenever it changes. /readyz is 200 while at least one worker serves (the primary
 * hands connections only to workers that listen); `config_stale` while the primary's watch is down or a worker
 * cannot apply the newest state; `revision` is the oldest revision in service, so a probe never sees a change before
 * every worker has it.
 */
import cluster, { type Worker } from 'node:cluster';
import type { GatewayConfig } from '../shared/config.ts';
import { describe } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { BoundAddress } from './listeners.ts';
import { withDataPlaneNodeFlags } from './node-flags.ts';
import { clampDelay } from './timers.ts';
import { StatusPhase, startStatusServer, type StatusReport, type StatusServer, type WorkerStatus } from './status-server.ts';
import { loadDefaultCert, type PemPair } from './tls/default-cert.ts';
import { loadUpstreamTls } from './tls/tls-policy.ts';
import type { CheckerState, HealthChange } from './upstream/health/checker.ts';
import { ClusterMetrics, type MetricsRequest, type MetricsResponse } from './observability/cluster-metrics.ts';
import { ConfigRelay, type RelayMessage, type RelayPeer, type RelayRequest } from './config/relay.ts';
import type { ConfigSource } from './config/source.ts';

/** Messages from a worker to the primary. */
export type WorkerMessage =
  | { type: 'gateway:listening'; addresses: readonly BoundAddress[] }
  | { type: 'gateway:status'; report: Omit<WorkerStatus, 'id' | 'pid'> }
  /** A node's health changed in this worker (upstream/health/registry.ts): the primary relays it to the others. */
  | { type: 'gateway:health'; change: HealthChange }
  /** The probing worker's checker states, for /v1/healthcheck and for workers that start later. */
  | { type: 'gateway:health-report'; states: CheckerState[] }
  /** Its metrics' values, answering the primary's scrape (observability/cluster-metrics.ts). */
  | MetricsResponse
  /** Its listener for the primary's messages is installed: send the whole configuration (config/relay.ts). */
  | RelayRequest
  /** A worker that just started: send its setup (WorkerSetup). */
  | { type: 'gateway:setup-request' };

/**
 * What a worker starts from, sent by its primary: a worker reads no configuration itself (not conf/config.yaml, not
 * the environment, not etcd), so it never loads the YAML parser, the config schema or etcd3. `config` is the
 * primary's, as JSON (an unset optional field arrives absent), without the standalone file's environment.
 */
export interface WorkerSetup {
  type: 'gateway:setup';
  id: number;
  config: GatewayConfig;
  /** The primary's default certificate, so that every worker presents the same one. */
  defaultCert: PemPair;
}

/** Messages from the primary to a worker. */
export type PrimaryMessage =
  | { type: 'gateway:health'; change: HealthChange }
  /** For a (re)started worker: the probing worker's last report, then every change relayed since (newer). */
  | { type: 'gateway:health-sync'; states: CheckerState[]; changes: HealthChange[] }
  | MetricsRequest
  /** SIGUSR1 reached the primary: reopen the access-log file. */
  | { type: 'gateway:reopen-logs' }
  /** The configuration, whole then by changes, and the watch health (config/relay.ts). */
  | RelayMessage
  | WorkerSetup;

/** Relayed changes the primary remembers for workers that start later (the newest per checker and node). */
const MAX_REMEMBERED_CHANGES = 10_000;

/** The worker that runs the active health probes (one per replica, as APISIX's privileged agent). */
export const PROBING_WORKER_ID = 0;

/** A worker that lived less than this before dying counts as a crash loop, and its replacement waits longer. */
const HEALTHY_LIFETIME_MS = 10_000;
const RESPAWN_MIN_MS = 100;
const RESPAWN_MAX_MS = 30_000;
/** Beyond the drain grace: how long workers get to exit after SIGTERM before they are killed. */
const EXIT_MARGIN_MS = 5_000;

export interface Primary {
  /** Resolves once every worker exited, after stop(). */
  stop(signal: string): Promise<void>;
  /** Every worker reopens its access-log file (the primary got SIGUSR1). */
  reopenLogs(): void;
}

interface Slot {
  id: number;
  worker: Worker | undefined;
  startedAt: number;
  crashes: number;
  status: WorkerStatus | undefined;
  respawn: NodeJS.Timeout | undefined;
}

/** How often the primary checks whether its watch health changed, to tell the workers (as they report theirs). */
const HEALTH_RELAY_MS = 250;

export async function startPrimary(config: GatewayConfig, log: Logger): Promise<Primary> {
  const count = config.dataPlane.workerProcesses;
  const defaultCert = await loadDefaultCert(config.ssl.defaultCertFile, config.ssl.defaultKeyFile);
  await loadUpstreamTls(config.tls.trustedCertificateFile); // an unreadable CA bundle stops the start here, not in every worker
  const slots: Slot[] = Array.from({ length: count }, (_, id) => ({ id, worker: undefined, startedAt: 0, crashes: 0, status: undefined, respawn: undefined }));
  // The replica's one config reader; loaded here only, so workers never load etcd3 (config/create-source.ts).
  const { createConfigSource } = await import('./config/create-source.ts');
  const configRelay = new ConfigRelay(() => source.health());
  const source: ConfigSource = createConfigSource(config, log, (state) => configRelay.publish(state));
  source.start().then(
    (state) => configRelay.publish(state),
    () => undefined, // only rejects once closed
  );
  const healthRelay = setInterval(() => configRelay.checkHealth(), HEALTH_RELAY_MS);
  healthRelay.unref();
  let stopping = false;
  let announced = false;

  const report = (): StatusReport => {
    const workers = slots.flatMap((slot) => (slot.status === undefined ? [] : [slot.status]));
    const serving = workers.filter((w) => w.phase === StatusPhase.serving);
    const phase = stopping ? StatusPhase.draining : serving.length > 0 ? StatusPhase.serving : StatusPhase.loading;
    const oldest = serving.reduce<WorkerStatus | undefined>((min, w) => (min === undefined || BigInt(w.revision ?? '0') < BigInt(min.revision ?? '0') ? w : min), undefined);
    // The replica's one watch is the primary's.
    const watch = source.health();
    // A worker that cannot apply the configuration makes the whole stale (status-server.ts): its error is shown.
    const failing = workers.find((w) => w.config?.error !== undefined);
    const config = { error: failing?.config?.error, skipped: Math.max(0, ...workers.map((w) => w.config?.skipped ?? 0)) };
    return { phase, revision: oldest?.revision, routes: oldest?.routes ?? 0, watch, config, workers };
  };

  /** The probing worker's latest checker states, and the changes relayed since (both go to a worker that starts). */
  let healthStates: CheckerState[] = [];
  const healthChanges = new Map<string, HealthChange>();
  let status: StatusServer | undefined;
  let metricsServer: StatusServer | undefined;
  // One scrape sums every serving worker's metrics (observability/cluster-metrics.ts).
  const clusterMetrics = new ClusterMetrics();
  const prom = config.observability.metrics;
  const scrape = () =>
    clusterMetrics.scrape(slots.flatMap((slot) => (slot.worker !== undefined && slot.status !== undefined && slot.status.phase !== StatusPhase.loading ? [slot.worker] : [])));
  const metrics = prom.enable ? { uri: prom.exportUri, scrape } : undefined;
  if (config.status !== undefined) {
    status = await startStatusServer({ listen: config.status, log, report, healthcheck: () => healthStates, ...(metrics === undefined || prom.exportAddr !== undefined ? {} : { metrics }) });
    log.info({ host: status.address.host, port: status.address.port, paths: ['/healthz', '/readyz'] }, 'status server ready');
  } else {
    log.info('status server off (apisix.status)');
  }
  if (metrics !== undefined && prom.exportAddr !== undefined) {
    metricsServer = await startStatusServer({ listen: prom.exportAddr, log, report, metrics, metricsOnly: true });
    log.info({ host: metricsServer.address.host, port: metricsServer.address.port, path: prom.exportUri }, 'metrics server ready');
  }

  const workerConfig: GatewayConfig = { ...config, dataPlane: { ...config.dataPlane, standaloneEnv: {} } };
  // Workers get the data plane's V8 flags (node-flags.ts) whatever the primary was started with.
  cluster.setupPrimary({ execArgv: withDataPlaneNodeFlags(process.execArgv) });
  const fork = (slot: Slot): void => {
    slot.respawn = undefined;
    if (stopping) return;
    const worker = cluster.fork();
    const peer: RelayPeer = { send: (message) => tell(worker, message) };
    slot.worker = worker;
    slot.startedAt = Date.now();
    slot.status = undefined;
    worker.on('message', (message: WorkerMessage) => {
      if (slot.worker !== worker) return;
      if (message.type === 'gateway:setup-request') {
        tell(worker, { type: 'gateway:setup', id: slot.id, config: workerConfig, defaultCert });
      } else if (message.type === 'gateway:config-request') {
        configRelay.request(peer);
      } else if (message.type === 'gateway:status') {
        slot.status = { id: slot.id, pid: worker.process.pid ?? 0, ...message.report };
      } else if (message.type === 'gateway:health') {
        if (healthChanges.size >= MAX_REMEMBERED_CHANGES) healthChanges.clear();
        const key = `${message.change.checker}\n${message.change.node}`;
        healthChanges.delete(key); // re-inserted last: the map stays in the order the changes came
        healthChanges.set(key, message.change);
        for (const other of slots) if (other !== slot) tell(other.worker, { type: 'gateway:health', change: message.change });
      } else if (message.type === 'gateway:health-report') {
        if (slot.id === PROBING_WORKER_ID) {
          healthStates = message.states;
          healthChanges.clear(); // the report includes every change made before it
        }
      } else if (message.type === 'gateway:metrics') {
        clusterMetrics.onResponse(worker, message);
      } else if ((message.type as string) === 'gateway:listening') { // checked too: IPC may bring any message
        // A worker that (re)started: the nodes the others know to be unhealthy.
        // A replacement of the probing worker starts from its predecessor's states too.
        if (healthStates.length > 0 || healthChanges.size > 0) tell(worker, { type: 'gateway:health-sync', states: healthStates, changes: [...healthChanges.values()] });
        if (!announced) {
          announced = true;
          for (const address of message.addresses) log.info({ kind: address.kind, host: address.host, port: address.port, workers: count }, 'gRPC listener ready');
        }
      }
    });
    worker.on('error', (err: Error) => log.warn({ worker: slot.id, error: describe(err) }, 'worker IPC error'));
    worker.on('exit', (code, signal) => {
      clusterMetrics.onExit(worker);
      configRelay.remove(peer);
      if (slot.worker !== worker) return;
      slot.worker = undefined;
      slot.status = undefined;
      if (stopping) return;
      const lived = Date.now() - slot.startedAt;
      slot.crashes = lived < HEALTHY_LIFETIME_MS ? slot.crashes + 1 : 0;
      const delayMs = slot.crashes === 0 ? RESPAWN_MIN_MS : Math.min(RESPAWN_MAX_MS, RESPAWN_MIN_MS * 2 ** slot.crashes);
      log.error({ worker: slot.id, pid: worker.process.pid, code, signal, livedMs: lived, respawnInMs: delayMs }, 'data-plane worker died; its peers keep serving, starting a replacement');
      slot.respawn = setTimeout(() => fork(slot), delayMs);
    });
  };
  const tell = (worker: Worker | undefined, message: PrimaryMessage): void => {
    if (worker !== undefined && worker.isConnected()) worker.send(message);
  };
  for (const slot of slots) fork(slot);
  log.info({ workers: count, pid: process.pid }, 'data-plane primary started its workers');

  let stopped: Promise<void> | undefined;
  return {
    stop: (signal) => {
      stopped ??= (async () => {
        stopping = true;
        const graceMs = config.dataPlane.shutdownTimeoutMs;
        log.info({ signal, graceMs, workers: slots.filter((s) => s.worker !== undefined).length }, 'draining the workers');
        const exits: Promise<void>[] = [];
        for (const slot of slots) {
          clearTimeout(slot.respawn);
          const worker = slot.worker;
          if (worker === undefined) continue;
          exits.push(
            new Promise<void>((resolve) => {
              if (worker.isDead()) return resolve();
              worker.once('exit', () => resolve());
              const kill = setTimeout(() => {
                log.warn({ worker: slot.id, pid: worker.process.pid }, 'worker did not exit in time, killing it');
                worker.process.kill('SIGKILL');
              }, clampDelay(graceMs + EXIT_MARGIN_MS)); // worker_shutdown_timeout, from config: timers.ts
              worker.once('exit', () => clearTimeout(kill));
              worker.process.kill('SIGTERM');
            }),
          );
        }
        await Promise.all(exits);
        clearInterval(healthRelay);
        await source.close();
        clusterMetrics.close();
        await metricsServer?.close();
        await status?.close();
      })();
      return stopped;
    },
    reopenLogs: () => {
      for (const slot of slots) tell(slot.worker, { type: 'gateway:reopen-logs' });
    },
  };
}
