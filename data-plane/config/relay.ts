/**
 * One configuration reader per replica (issue #15, as APISIX 3.5+ does): with worker processes, the primary alone
 * runs the config source (etcd range + watch, or the standalone file), and hands every worker each validated change
 * over the cluster IPC channel. Workers never import etcd3, the validators or the YAML parser: they receive items
 * that were decoded, decrypted and validated once, in the primary.
 *
 * What crosses the channel is a delta between two immutable states (`diffStates`): per resource type, the items put
 * (new, or not the same object as before: the store hands unchanged items on by identity) and the ids deleted. A
 * worker applies it to its own copy of the state (`applyDelta`), copy-on-write per type like the store, so that an
 * unchanged item keeps its identity there too and the snapshot build reuses what it resolved to (snapshots.ts). A
 * worker that starts, or restarts, asks for the state (`gateway:config-request`) once its listener is installed,
 * and gets the whole current state at once as a delta from nothing (`full: true`); the primary sends every later
 * change to it in order, on the same channel.
 *
 * The watch health travels the same way: the primary's `/readyz` reads its own source (`config_stale`), and the
 * workers get it too, for `apisix_etcd_reachable` in their metrics.
 */
import { RESOURCE_TYPES, type ResourceType } from '../../shared/etcd-keys.ts';
import type { ResourceConfs } from '../../shared/validate.ts';
import type { ConfigItem, ConfigMaps, ConfigState } from './config-state.ts';
import type { ConfigSource, WatchHealth } from './source.ts';

/** One type's changes: items put (whole), ids deleted. */
export interface TypeDelta {
  readonly put: readonly ConfigItem<unknown>[];
  readonly deleted: readonly string[];
}

/** What changed from one state to the next; `full` when the receiver must start from nothing. */
export interface ConfigDelta {
  readonly revision: string;
  readonly full: boolean;
  readonly types: Partial<Record<ResourceType, TypeDelta>>;
}

/** Primary → worker. */
export type RelayMessage =
  | { readonly type: 'gateway:config'; readonly delta: ConfigDelta; readonly watch: WatchHealth }
  | { readonly type: 'gateway:config-health'; readonly watch: WatchHealth };

/** Worker → primary: its listener is installed, send the whole state (now, or as soon as there is one). */
export interface RelayRequest {
  readonly type: 'gateway:config-request';
}

const EMPTY_MAPS: ConfigMaps = { routes: new Map(), upstreams: new Map(), services: new Map(), ssls: new Map(), consumers: new Map(), consumer_groups: new Map(), global_rules: new Map(), plugin_configs: new Map(), plugin_metadata: new Map(), protos: new Map() };

/**
 * The changes from `previous` to `next`; from nothing (`full`) when `previous` is undefined. A type whose map is the
 * same object in both states is not looked at: the store copies a type's map only when one of its items changes.
 */
export function diffStates(previous: ConfigState | undefined, next: ConfigState): ConfigDelta {
  const base: ConfigMaps = previous ?? EMPTY_MAPS;
  const types: Partial<Record<ResourceType, TypeDelta>> = {};
  for (const type of RESOURCE_TYPES) {
    const before: ReadonlyMap<string, ConfigItem<unknown>> = base[type];
    const after: ReadonlyMap<string, ConfigItem<unknown>> = next[type];
    if (before === after) continue;
    const put: ConfigItem<unknown>[] = [];
    const deleted: string[] = [];
    for (const [id, item] of after) if (before.get(id) !== item) put.push(item);
    for (const id of before.keys()) if (!after.has(id)) deleted.push(id);
    if (put.length > 0 || deleted.length > 0) types[type] = { put, deleted };
  }
  return { revision: next.revision, full: previous === undefined, types };
}

/** `previous` with `delta` applied: a new frozen state sharing every unchanged map and item with `previous`. */
export function applyDelta(previous: ConfigState | undefined, delta: ConfigDelta): ConfigState {
  const base: ConfigMaps = delta.full || previous === undefined ? EMPTY_MAPS : previous;
  const maps: { -readonly [K in ResourceType]: ReadonlyMap<string, ConfigItem<ResourceConfs[K]>> } = {
    routes: base.routes,
    upstreams: base.upstreams,
    services: base.services,
    ssls: base.ssls,
    consumers: base.consumers,
    consumer_groups: base.consumer_groups,
    global_rules: base.global_rules,
    plugin_configs: base.plugin_configs,
    plugin_metadata: base.plugin_metadata,
    protos: base.protos,
  };
  for (const type of RESOURCE_TYPES) {
    const change = delta.types[type];
    if (change === undefined) continue;
    const map = new Map<string, ConfigItem<unknown>>(base[type]);
    for (const id of change.deleted) map.delete(id);
    for (const item of change.put) map.set(item.id, Object.freeze(item));
    Object.assign(maps, { [type]: map }); // `maps[type] = map` is beyond TypeScript for a union key
  }
  return Object.freeze({ ...maps, revision: delta.revision });
}

/**
 * A worker's config source: the states its primary relays. It is made, and receives, before the data plane that uses
 * it starts (messages from the primary are not kept for later by Node); `use(onChange)` hands it to the data plane.
 * start() resolves with the newest state once the first whole state came; every later delta becomes a state handed
 * to onChange, as the etcd source does with its watch events.
 */
export class RelayedConfigSource implements ConfigSource {
  #onChange: (state: ConfigState) => void = () => undefined;
  #state: ConfigState | undefined;
  #health: WatchHealth = { connected: false, since: Date.now() };
  #first: { promise: Promise<ConfigState>; resolve: (state: ConfigState) => void; reject: (err: Error) => void };
  #closed = false;

  constructor() {
    let resolve: (state: ConfigState) => void = () => undefined;
    let reject: (err: Error) => void = () => undefined;
    const promise = new Promise<ConfigState>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined); // rejected only by close(), which a start() caller may never have awaited
    this.#first = { promise, resolve, reject };
  }

  /** A message from the primary; anything that is not a relay message is not ours and returns false. */
  receive(message: { readonly type: string } | RelayMessage): boolean {
    if (message.type === 'gateway:config-health') {
      this.#health = (message as RelayMessage).watch;
      return true;
    }
    if (message.type !== 'gateway:config') return false;
    if (this.#closed) return true;
    const { delta, watch } = message as Extract<RelayMessage, { type: 'gateway:config' }>;
    this.#health = watch;
    // Until the first whole state, a delta has nothing to apply to (the primary sends the whole state first).
    if (this.#state === undefined && !delta.full) return true;
    const first = this.#state === undefined;
    this.#state = applyDelta(this.#state, delta);
    if (first) this.#first.resolve(this.#state);
    else this.#onChange(this.#state);
    return true;
  }

  /** The data plane's change handler; returns this source, for DataPlaneOptions.source. */
  use(onChange: (state: ConfigState) => void): this {
    this.#onChange = onChange;
    return this;
  }

  /** The newest state, once the first whole one came (changes before use() are in it). */
  start(): Promise<ConfigState> {
    return this.#first.promise.then(() => this.#state ?? Promise.reject(new Error('no configuration')));
  }

  current(): ConfigState | undefined {
    return this.#state;
  }

  health(): WatchHealth {
    return this.#health;
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#first.reject(new Error('the relayed config source was closed before its configuration arrived'));
    }
    return Promise.resolve();
  }
}

/** What the primary needs of each worker: whether it has had the whole state, and a way to send. */
export interface RelayPeer {
  send(message: RelayMessage): void;
}

/**
 * The primary's side: the source's states become deltas for every worker that has had the whole state, and a
 * worker that asks gets the whole current state (or gets it as soon as the first state is read).
 */
export class ConfigRelay {
  #state: ConfigState | undefined;
  readonly #health: () => WatchHealth;
  /** Workers that asked, in the order they did; each gets every change from the state it was given. */
  readonly #peers = new Set<RelayPeer>();
  readonly #waiting = new Set<RelayPeer>();
  #lastHealth: WatchHealth | undefined;

  constructor(health: () => WatchHealth) {
    this.#health = health;
  }

  /** The source's first state, then each new one. */
  publish(state: ConfigState): void {
    const previous = this.#state;
    this.#state = state;
    const watch = this.#watch();
    if (previous !== undefined) {
      const delta = diffStates(previous, state);
      for (const peer of this.#peers) peer.send({ type: 'gateway:config', delta, watch });
    }
    if (this.#waiting.size > 0) {
      const delta = diffStates(undefined, state);
      for (const peer of this.#waiting) {
        this.#peers.add(peer);
        peer.send({ type: 'gateway:config', delta, watch });
      }
      this.#waiting.clear();
    }
  }

  /** A worker asked for the whole state (it started, or restarted). */
  request(peer: RelayPeer): void {
    this.#peers.delete(peer);
    if (this.#state === undefined) {
      this.#waiting.add(peer);
      return;
    }
    this.#peers.add(peer);
    peer.send({ type: 'gateway:config', delta: diffStates(undefined, this.#state), watch: this.#watch() });
  }

  /** A worker exited. */
  remove(peer: RelayPeer): void {
    this.#peers.delete(peer);
    this.#waiting.delete(peer);
  }

  /** Tells every worker when the watch health changed (called on a timer). */
  checkHealth(): void {
    const watch = this.#health();
    const last = this.#lastHealth;
    if (last !== undefined && last.connected === watch.connected && last.since === watch.since) return;
    this.#lastHealth = watch;
    for (const peer of this.#peers) peer.send({ type: 'gateway:config-health', watch });
  }

  #watch(): WatchHealth {
    const watch = this.#health();
    this.#lastHealth = watch;
    return watch;
  }
}
