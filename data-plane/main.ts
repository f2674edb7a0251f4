/**
 * The data-plane process: config → logger → data plane (config sync, listeners) → graceful drain on SIGTERM/SIGINT.
 * It only reads etcd; any number of these can run against one etcd cluster.
 *
 * With `worker_processes` above 1 (conf/config.yaml: `auto`, one per core) this process becomes the primary of
 * that many workers (data-plane/workers.ts), each of which runs this same file as a worker.
 */
import cluster from 'node:cluster';
import type { GatewayConfig } from '../shared/config.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { startDataPlane } from './data-plane.ts';
import { StatusPhase } from './status-server.ts';
import { answerMetricsRequest } from './observability/cluster-metrics.ts';
import { missingDataPlaneNodeFlags } from './node-flags.ts';
import type { PemPair } from './tls/default-cert.ts';
import { RelayedConfigSource } from './config/relay.ts';
import { PROBING_WORKER_ID, startPrimary, type PrimaryMessage, type WorkerMessage, type WorkerSetup } from './workers.ts';

/** How often a worker checks whether its status changed, to tell the primary. */
const WORKER_REPORT_MS = 250;

const send = (message: WorkerMessage): void => {
  if (process.connected) process.send?.(message);
};

// A worker reads no configuration itself (workers.ts WorkerSetup): it asks its primary, and holds every other
// message the primary sends until the part of this file that handles them is ready (listen()).
const inbox: PrimaryMessage[] = [];
let deliver: (message: PrimaryMessage) => void = (message) => void inbox.push(message);
function listen(handler: (message: PrimaryMessage) => void): void {
  deliver = handler;
  for (const message of inbox.splice(0)) handler(message);
}
const setup = cluster.isWorker ? await setupFromPrimary() : undefined;
const config: GatewayConfig = setup?.config ?? (await readConfig());
const baseLog = createLogger({ level: config.log.level, name: 'data-plane' });
if (setup === undefined && config.ignoredKeys.length > 0) {
  baseLog.warn({ keys: config.ignoredKeys }, 'config keys this gateway does not read are ignored');
}
const graceMs = config.dataPlane.shutdownTimeoutMs;

if (cluster.isPrimary && config.dataPlane.workerProcesses > 1) {
  try {
    const primary = await startPrimary(config, baseLog);
    stopOnSignals(baseLog, (signal) => primary.stop(signal));
    process.on('SIGUSR1', () => primary.reopenLogs());
  } catch (err) {
    baseLog.fatal({ err }, 'data plane failed to start');
    process.exit(1);
  }
} else {
  const worker = setup?.id;
  const log = worker === undefined ? baseLog : baseLog.child({ worker });
  try {
    // A worker's status is served by its primary; it presents the primary's default certificate.
    const defaultCert: PemPair | undefined = setup?.defaultCert;
    if (worker !== undefined) send({ type: 'gateway:status', report: { phase: StatusPhase.loading, revision: undefined, routes: 0, watch: { connected: false, since: Date.now() } } });
    // A worker reads no configuration itself: its primary relays every state (config/relay.ts). Config messages go
    // to the relayed source at once, even while the data plane starts; health changes relayed while this worker
    // starts are kept, and applied once it runs.
    const relayed = worker === undefined ? undefined : new RelayedConfigSource();
    const early: PrimaryMessage[] = [];
    let onPrimaryMessage = (message: PrimaryMessage): void => void early.push(message);
    if (relayed !== undefined) {
      listen((message) => {
        if (!relayed.receive(message)) onPrimaryMessage(message);
      });
      send({ type: 'gateway:config-request' });
    }
    const dataPlane = await startDataPlane({
      config: worker === undefined ? config : { ...config, status: undefined },
      log,
      ...(defaultCert === undefined ? {} : { defaultCert }),
      // The primary serves the scrape (summed over workers) on export_addr.
      ...(worker === undefined ? {} : { serveMetrics: false }),
      ...(relayed === undefined ? {} : { source: (onChange) => relayed.use(onChange) }),
      // One process per replica probes (workers.ts PROBING_WORKER_ID); every worker publishes what it saw change.
      health:
        worker === undefined
          ? { probes: true }
          : { probes: worker === PROBING_WORKER_ID, publish: (change) => send({ type: 'gateway:health', change }) },
    });
    if (worker === undefined) {
      const missing = missingDataPlaneNodeFlags(process.execArgv);
      if (missing.length > 0) log.info({ missing }, 'single data-plane process started without its V8 flags (data-plane/node-flags.ts): large messages cost more CPU');
      for (const address of dataPlane.addresses) {
        log.info({ kind: address.kind, host: address.host, port: address.port }, 'gRPC listener ready');
      }
      const status = dataPlane.statusAddress;
      if (status === undefined) log.info('status server off (apisix.status)');
      else log.info({ host: status.host, port: status.port, paths: ['/healthz', '/readyz'] }, 'status server ready');
    } else {
      send({ type: 'gateway:listening', addresses: dataPlane.addresses });
      let last = '';
      const report = (): void => {
        const { phase, revision, routes, watch, config: configHealth } = dataPlane.report();
        const text = JSON.stringify([phase, revision, routes, watch.connected, watch.since, configHealth]);
        if (text === last) return;
        last = text;
        send({ type: 'gateway:status', report: { phase, revision, routes, watch, ...(configHealth === undefined ? {} : { config: configHealth }) } });
      };
      onPrimaryMessage = (message) => {
        if (message.type === 'gateway:metrics-request') answerMetricsRequest(dataPlane.metrics, message, send);
        else if (message.type === 'gateway:reopen-logs') dataPlane.reopenLogs();
        else if (message.type === 'gateway:health') dataPlane.health.applyRemote(message.change);
        else if (message.type === 'gateway:health-sync') {
          dataPlane.health.sync(message.states);
          for (const change of message.changes) dataPlane.health.applyRemote(change);
        }
      };
      for (const message of early.splice(0)) onPrimaryMessage(message);
      let lastHealth = '';
      const reportHealth = (): void => {
        if (worker !== PROBING_WORKER_ID) return;
        const states = dataPlane.health.report();
        const text = JSON.stringify(states);
        if (text === lastHealth) return;
        lastHealth = text;
        send({ type: 'gateway:health-report', states });
      };
      report();
      setInterval(() => {
        report();
        reportHealth();
      }, WORKER_REPORT_MS).unref();
    }
    // nginx's reopen signal: logrotate moved the access log, new lines go to a new file.
    process.on('SIGUSR1', () => dataPlane.reopenLogs());
    const stop = stopOnSignals(log, (reason) => {
      log.info({ reason, graceMs }, 'draining');
      const closing = dataPlane.close(graceMs);
      if (worker !== undefined) send({ type: 'gateway:status', report: { ...dataPlane.report(), phase: StatusPhase.draining } });
      return closing;
    });
    // A worker whose primary is gone gets no more connections: it finishes what it has and exits.
    if (worker !== undefined) process.on('disconnect', () => stop('primary exited'));
  } catch (err) {
    log.fatal({ err }, 'data plane failed to start');
    process.exit(1);
  }
}

/** conf/config.yaml and the environment; loaded only here, so that a worker never loads the parser and schema. */
async function readConfig(): Promise<GatewayConfig> {
  const { loadConfig } = await import('../shared/config.ts');
  try {
    return loadConfig();
  } catch (err) {
    // No logger yet: the message names the file and key (shared/config-errors.ts).
    process.stderr.write(`data plane failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}

/** Asks the primary for this worker's setup; what the primary sends besides waits in the inbox. */
function setupFromPrimary(): Promise<WorkerSetup> {
  return new Promise((resolve) => {
    process.on('message', (message: PrimaryMessage) => {
      if (message.type === 'gateway:setup') resolve(message);
      else deliver(message);
    });
    send({ type: 'gateway:setup-request' });
  });
}

/** SIGTERM/SIGINT run `shutdown` once, then the process exits (0, or 1 if it failed). Returns the trigger. */
function stopOnSignals(log: Logger, shutdown: (reason: string) => Promise<void>): (reason: string) => void {
  let stopping = false;
  const stop = (reason: string): void => {
    if (stopping) return;
    stopping = true;
    shutdown(reason).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return stop;
}
