/**
 * Where a data plane's configuration comes from: etcd (range read + watch, written by the control plane), or a
 * standalone YAML file (APISIX's conf/apisix.yaml, `config_provider: yaml`). Both hand the data plane the same
 * immutable ConfigState, first from start(), then on every change through onChange. With worker processes, only the
 * primary runs one (create-source.ts) and its workers get the states relayed (relay.ts).
 */
import type { ConfigState } from './config-state.ts';

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
