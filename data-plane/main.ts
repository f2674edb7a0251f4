/**
 * The data-plane process: config → logger → data plane (etcd sync, listeners) → graceful drain on SIGTERM/SIGINT.
 * It only reads etcd; any number of these can run against one etcd cluster.
 */
import { loadConfig } from '../shared/config.ts';
import { createLogger } from '../shared/logger.ts';
import { startDataPlane } from './data-plane.ts';

/** How long calls in flight may run on after SIGTERM before their sessions are destroyed. */
const SHUTDOWN_GRACE_MS = 10_000;

const config = loadConfig();
const log = createLogger({ level: config.log.level, name: 'data-plane' });

try {
  const dataPlane = await startDataPlane({ config, log });
  for (const address of dataPlane.addresses) {
    log.info({ kind: address.kind, host: address.host, port: address.port }, 'gRPC listener ready');
  }
  const status = dataPlane.statusAddress;
  if (status === undefined) log.info('status server off (apisix.status)');
  else log.info({ host: status.host, port: status.port, paths: ['/healthz', '/readyz'] }, 'status server ready');
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, graceMs: SHUTDOWN_GRACE_MS }, 'draining');
    dataPlane.close(SHUTDOWN_GRACE_MS).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (err) {
  log.fatal({ err }, 'data plane failed to start');
  process.exit(1);
}
