/**
 * Where a data plane's configuration comes from: etcd (range read + watch, written by the control plane), or a
 * standalone YAML file (APISIX's conf/apisix.yaml, `config_provider: yaml`). Both hand the data plane the same
 * immutable ConfigState, first from start(), then on every change through onChange.
 */
import type { GatewayConfig } from '../../shared/config.ts';
import type { Logger } from '../../shared/logger.ts';
import type { ConfigState } from './config-state.ts';
import { createEtcdConfigSource } from './etcd-source.ts';
import { createYamlConfigSource } from './yaml-source.ts';

export type { ConfigState } from './config-state.ts';

/** Whether the source is live (etcd watch acknowledged; standalone file read), and since when (epoch ms). */
export interface WatchHealth {
  readonly connected: boolean;
  readonly since: number;
}

export interface ConfigSource {
  /** Resolves with the first complete state, retrying while the source is unavailable; rejects only if closed first. */
  start(): Promise<ConfigState>;
  current(): ConfigState | undefined;
  /** Not connected while the state in service may lag behind the source (the data plane's `config_stale`). */
  health(): WatchHealth;
  /** Idempotent: stops watches, timers and clients. */
  close(): Promise<void>;
}

export function createConfigSource(config: GatewayConfig, log: Logger, onChange: (state: ConfigState) => void): ConfigSource {
  const keyring = config.dataEncryption.keyring;
  if (config.dataPlane.configProvider === 'yaml') {
    return createYamlConfigSource({ file: config.dataPlane.standaloneFile, keyring, log, onChange, ...(config.dataPlane.standalonePollMs === undefined ? {} : { pollMs: config.dataPlane.standalonePollMs }) });
  }
  const { etcd } = config;
  return createEtcdConfigSource({
    hosts: etcd.hosts,
    prefix: etcd.prefix,
    timeoutMs: etcd.timeoutMs,
    ...(etcd.username === undefined ? {} : { username: etcd.username }),
    ...(etcd.password === undefined ? {} : { password: etcd.password }),
    ...(etcd.tls === undefined ? {} : { tls: etcd.tls }),
    ...(config.dataPlane.snapshotCache === undefined ? {} : { snapshotCache: config.dataPlane.snapshotCache }),
    keyring,
    log,
    onChange,
  });
}
