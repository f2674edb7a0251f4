/**
 * Assembles one data plane: config source (etcd range + watch) → snapshots → session pool → listeners. Tests
 * start it in-process with their own config; main.ts starts it for real. close() drains and releases everything.
 */
import type { GatewayConfig } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import { createEtcdConfigSource, type ConfigState } from './config/etcd-source.ts';
import { Snapshots, buildSnapshot } from './config/snapshots.ts';
import { startListeners, type BoundAddress } from './listeners.ts';
import { loadDefaultCert, type PemPair } from './tls/default-cert.ts';
import { SessionPool } from './upstream/pool.ts';

export interface DataPlane {
  readonly addresses: readonly BoundAddress[];
  readonly snapshots: Snapshots;
  /** Stops accepting, lets calls in flight finish for up to `graceMs`, then closes sessions and the watch. */
  close(graceMs?: number): Promise<void>;
}

export interface DataPlaneOptions {
  config: GatewayConfig;
  log: Logger;
  /** Pre-made default certificate (tests share one); otherwise loaded or generated from config. */
  defaultCert?: PemPair;
}

export async function startDataPlane(options: DataPlaneOptions): Promise<DataPlane> {
  const { config, log } = options;
  const pool = new SessionPool(log);
  let snapshots: Snapshots | undefined;
  const apply = (state: ConfigState): void => {
    if (snapshots === undefined) return;
    const started = performance.now();
    const next = buildSnapshot(state, snapshots.current(), log);
    snapshots.swap(next);
    pool.retain(next.nodeKeys);
    log.info(
      { revision: state.revision, routes: next.router.size, ssls: state.ssls.size, buildMs: +(performance.now() - started).toFixed(2) },
      'config applied',
    );
  };
  const source = createEtcdConfigSource({
    hosts: config.etcd.hosts,
    prefix: config.etcd.prefix,
    timeoutMs: config.etcd.timeoutMs,
    ...(config.etcd.username === undefined ? {} : { username: config.etcd.username }),
    ...(config.etcd.password === undefined ? {} : { password: config.etcd.password }),
    ...(config.etcd.tls === undefined ? {} : { tls: config.etcd.tls }),
    keyring: config.dataEncryption.keyring,
    log,
    onChange: apply,
  });
  try {
    const initial = await source.start();
    snapshots = new Snapshots(buildSnapshot(initial, undefined, log));
    log.info({ revision: initial.revision, routes: snapshots.current().router.size }, 'config loaded from etcd');
    const defaultCert = options.defaultCert ?? (await loadDefaultCert(config.ssl.defaultCertFile, config.ssl.defaultKeyFile));
    const listeners = await startListeners({
      h2c: config.nodeListen,
      tls: config.ssl.enable ? config.ssl.listen : [],
      fallbackSni: config.ssl.fallbackSni,
      defaultCert,
      deps: { snapshots, pool, log },
    });
    const current = snapshots;
    let closing: Promise<void> | undefined;
    return {
      addresses: listeners.addresses,
      snapshots: current,
      close: (graceMs = 0) => {
        closing ??= (async () => {
          await listeners.close(graceMs);
          // Every client stream is over, so every upstream stream is too: nothing left to wait for.
          await pool.close(0);
          await source.close();
        })();
        return closing;
      },
    };
  } catch (err) {
    await source.close();
    await pool.close();
    throw err;
  }
}
