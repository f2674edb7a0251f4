/**
 * The config source a configuration names: etcd (`deployment.role_data_plane.config_provider: etcd`, the default) or
 * the standalone YAML file (`yaml`). This module, and with it etcd3, is loaded only by a process that reads the
 * configuration itself: a single data-plane process, or the primary of worker processes (relay.ts).
 */
import type { GatewayConfig } from '../../shared/config.ts';
import type { Logger } from '../../shared/logger.ts';
import type { ConfigState } from './config-state.ts';
import { createEtcdConfigSource } from './etcd-source.ts';
import type { ConfigSource } from './source.ts';
import { createYamlConfigSource } from './yaml-source.ts';

export function createConfigSource(config: GatewayConfig, log: Logger, onChange: (state: ConfigState) => void): ConfigSource {
  const keyring = config.dataEncryption.keyring;
  if (config.dataPlane.configProvider === 'yaml') {
    return createYamlConfigSource({ file: config.dataPlane.standaloneFile, env: config.dataPlane.standaloneEnv, keyring, log, onChange, ...(config.dataPlane.standalonePollMs === undefined ? {} : { pollMs: config.dataPlane.standalonePollMs }) });
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
