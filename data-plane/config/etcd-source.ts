/**
 * The data plane's only reader of etcd (and the only data-plane module that imports etcd3). It follows APISIX's
 * `config_etcd.lua` (docs/apisix-compatibility.md): one range read of the whole prefix at revision R, then one watch on
 * `<prefix>/` from R+1; a compacted watch or a revision that goes backwards (etcd restarted without its data)
 * triggers a full re-read. It never writes to etcd.
 *
 * Resuming is ours, not etcd3's. etcd3's Watcher reconnects by itself from `header.revision + 1` of the last
 * response it saw, but etcd sends the *current* store revision in the header of a watch's `created` response and
 * of every catch-up batch (mvcc `syncWatchers`), before the events up to it have been delivered; a disconnect in
 * between would skip them. So on `disconnected` the watcher is dropped and a new one is opened, after a jittered
 * backoff, from the mod_revision of the last event actually applied + 1.
 *
 * health() tells whether that watch is live: while it is not (etcd unreachable, a resync in progress), the state
 * in service may lag behind etcd, though it stays in service (the data plane's `config_stale`).
 */
import { ETCD_CHANNEL_OPTIONS, readEtcdTls } from '../../shared/etcd-tls.ts';
import type { EtcdTlsConfig } from '../../shared/config.ts';
import { Etcd3, type IOptions, type IResponseHeader, type IWatchResponse, type Watcher } from 'etcd3';
import type { Keyring } from '../../shared/crypto.ts';
import { describe } from '../../shared/errors.ts';
import { normalizePrefix } from '../../shared/etcd-keys.ts';
import type { Logger } from '../../shared/logger.ts';
import { clampDelay } from '../timers.ts';
import { Backoff, constantBackoff, delay } from './backoff.ts';
import { ConfigStore, summary, type ConfigState, type RawKeyValue } from './config-state.ts';
import { readSnapshotCache, writeSnapshotCache } from './snapshot-cache.ts';
import type { ConfigSource, WatchHealth } from './source.ts';

export type { ConfigItem, ConfigMaps, ConfigState } from './config-state.ts';
export type { WatchHealth } from './source.ts';

export interface EtcdConfigSourceOptions {
  hosts: string[];
  prefix: string;
  /** Deadline of each range-read attempt, of authenticate, and of establishing a watch; APISIX's `etcd.timeout`. */
  timeoutMs: number;
  username?: string;
  password?: string;
  /** `apisix.data_encryption.keyring`, to decrypt the private keys stored encrypted (shared/crypto.ts). */
  keyring?: Keyring;
  /** `deployment.etcd.tls`: client certificate and CA for `https://` etcd endpoints. */
  tls?: EtcdTlsConfig;
  /** A file to keep the last state read from etcd in, and to start from when etcd is down at start. */
  snapshotCache?: string;
  log: Logger;
  /** Called with every new state after the first, which `start()` returns. Bursts are coalesced into one call. */
  onChange: (state: ConfigState) => void;
}

/**
 * start() resolves after the first full load, retrying while etcd is unreachable; health() is not connected before
 * the first watch is acknowledged, while it is re-established, and once closed.
 */
export type EtcdConfigSource = ConfigSource;

/** grpc-js refuses messages over 4 MiB by default; a full range read of a large configuration can exceed that. */
const UNLIMITED_MESSAGE_LENGTH = -1;
/** etcd3 retries a dropped watch stream itself after this delay; ours is dropped first, so keep its timer short. */
const ETCD3_WATCH_RETRY_MS = 100;
/** Bounds how long close() waits for etcd to acknowledge the watch cancel before closing the channel anyway. */
const CLOSE_CANCEL_TIMEOUT_MS = 1_000;
/** A watch must stay up this long before the retry backoff starts again from its shortest delay (no flapping storm). */
const STABLE_WATCH_MS = 10_000;
/** The snapshot cache is rewritten at most this often: a burst of changes costs one write. */
const CACHE_WRITE_DELAY_MS = 1_000;

export function createEtcdConfigSource(options: EtcdConfigSourceOptions): EtcdConfigSource {
  return new Source(options);
}

class Source implements EtcdConfigSource {
  readonly #options: EtcdConfigSourceOptions;
  readonly #log: Logger;
  readonly #dir: string;
  readonly #prefix: string;
  /** A client for one member at a time (see #switchMember). */
  #client: Etcd3;
  #member = 0;
  readonly #store: ConfigStore;
  readonly #backoff = new Backoff();
  readonly #timers = new Set<NodeJS.Timeout>();
  /** Aborted by close(): wakes the retry sleep of a pending load. */
  readonly #lifetime = new AbortController();
  #closed = false;
  #started: Promise<ConfigState> | undefined;
  #watcher: Watcher | undefined;
  #resyncing = false;
  #flush: NodeJS.Immediate | undefined;
  #reconnect: NodeJS.Timeout | undefined;
  /** Every key-value under the prefix as etcd holds it, for the snapshot cache (only kept when one is configured). */
  readonly #raw = new Map<string, RawKeyValue>();
  #cacheTimer: NodeJS.Timeout | undefined;
  #cacheWrite: Promise<void> = Promise.resolve();
  /** The revision the store is complete up to: the bootstrap's header.revision, then each applied event's. */
  #applied = 0n;
  #clusterId: string | undefined;
  #health: WatchHealth = { connected: false, since: Date.now() };

  constructor(options: EtcdConfigSourceOptions) {
    this.#options = options;
    this.#log = options.log.child({ module: 'etcd-source' });
    const prefix = normalizePrefix(options.prefix);
    this.#dir = `${prefix}/`;
    this.#prefix = prefix;
    this.#store = new ConfigStore(prefix, this.#log, options.keyring);
    // A random member to start with, so that N data planes spread their watches over the cluster.
    this.#member = Math.floor(Math.random() * options.hosts.length);
    this.#client = new Etcd3(clientOptions(options, this.#memberHost()));
  }

  start(): Promise<ConfigState> {
    this.#started ??= this.#firstLoad();
    return this.#started;
  }

  /**
   * Without a usable snapshot cache: range reads until one succeeds (the data plane waits, not ready, logging each
   * failure). With one: a single attempt, and if etcd cannot answer it, the cached state is served while the
   * range read goes on in the background, as a resync whose result replaces it.
   */
  async #firstLoad(): Promise<ConfigState> {
    const cacheFile = this.#options.snapshotCache;
    const cached = cacheFile === undefined ? undefined : await readSnapshotCache(cacheFile, this.#prefix);
    if (cached === undefined || typeof cached === 'string') {
      if (cached !== undefined) this.#log.info({ file: cacheFile, reason: cached }, 'no usable config snapshot cache');
      const state = await this.#loadUntilDone('initial load');
      this.#openWatch();
      return state;
    }
    try {
      const state = await this.#loadOnce('initial load');
      this.#openWatch();
      return state;
    } catch (err) {
      if (this.#closed) throw new Error('the etcd config source was closed before its configuration loaded');
      const state = this.#store.replaceAll(cached.kvs, cached.revision);
      this.#applied = BigInt(cached.revision);
      this.#clusterId = cached.clusterId;
      this.#log.warn(
        {
          hosts: this.#options.hosts,
          error: describe(err),
          file: cacheFile,
          cachedAt: new Date(cached.writtenAt).toISOString(),
          ...summary(state),
        },
        'etcd is unreachable at start: serving the cached configuration until it answers',
      );
      this.#resync('etcd unreachable at start');
      return state;
    }
  }

  current(): ConfigState | undefined {
    return this.#store.current();
  }

  health(): WatchHealth {
    return this.#health;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#setConnected(false);
    this.#lifetime.abort();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    if (this.#flush !== undefined) clearImmediate(this.#flush);
    await this.#cacheWrite;
    const watcher = this.#watcher;
    this.#watcher = undefined;
    if (watcher !== undefined) {
      const cancelWait = new AbortController();
      await Promise.race([watcher.cancel().catch(() => undefined), delay(CLOSE_CANCEL_TIMEOUT_MS, cancelWait.signal)]);
      cancelWait.abort();
    }
    this.#client.close();
  }

  #memberHost(): string {
    return this.#options.hosts[this.#member % this.#options.hosts.length] ?? '';
  }

  /**
   * Moves to the next member after a failed read or a lost watch, with a new client. etcd3 keeps one watch stream
   * per client and picks a member for it at random; a member that hangs (accepts TCP, never answers) would get the
   * stream back again and again. One member per client, chosen here in turn, makes each retry go elsewhere.
   */
  #switchMember(): void {
    if (this.#closed) return;
    const previous = this.#client;
    this.#member = (this.#member + 1) % this.#options.hosts.length;
    this.#client = new Etcd3(clientOptions(this.#options, this.#memberHost()));
    previous.close();
  }

  /** One range read of the whole prefix: the new complete state, or a rejection. */
  async #loadOnce(reason: string): Promise<ConfigState> {
    // One deadline for the whole attempt: etcd3 retries a failed call up to 3 times and a per-call deadline
    // would let an unresponsive host hold the attempt (and its log line) for three times timeoutMs.
    const deadline = Date.now() + this.#options.timeoutMs;
    const res = await this.#client.getAll().prefix(this.#dir).options({ deadline }).exec();
    if (this.#closed) throw new Error('closed');
    const state = this.#store.replaceAll(res.kvs, res.header.revision);
    this.#applied = BigInt(res.header.revision);
    this.#clusterId = res.header.cluster_id;
    this.#backoff.reset();
    if (this.#options.snapshotCache !== undefined) {
      this.#raw.clear();
      for (const kv of res.kvs) this.#raw.set(kv.key.toString(), kv);
      this.#scheduleCacheWrite();
    }
    this.#log.info({ reason, ...summary(state) }, 'configuration loaded from etcd');
    return state;
  }

  /** One range read of the whole prefix, retried with backoff until it succeeds or the source is closed. */
  async #loadUntilDone(reason: string): Promise<ConfigState> {
    for (let attempt = 1; ; attempt++) {
      if (this.#closed) throw new Error('the etcd config source was closed before its configuration loaded');
      try {
        return await this.#loadOnce(reason);
      } catch (err) {
        if (this.#closed as boolean) continue; // closed during the await (invisible to TypeScript's narrowing)
        const delayMs = this.#backoff.next();
        const failedHost = this.#memberHost();
        this.#switchMember();
        this.#log.warn(
          { reason, attempt, host: failedHost, next: this.#memberHost(), prefix: this.#dir, error: describe(err), retryInMs: delayMs },
          'cannot read the configuration from etcd, retrying',
        );
        await delay(delayMs, this.#lifetime.signal);
      }
    }
  }

  #openWatch(): void {
    this.#dropWatch(); // at most one watch at a time, whichever path asked for a new one
    if (this.#closed) return;
    const from = (this.#applied + 1n).toString();
    // watcher() rather than create(): create() resolves a tick after `connected`, and listeners attached then could
    // miss events etcd sends right behind the created response. watcher() attaches synchronously.
    const watcher = this.#client.watch().prefix(this.#dir).startRevision(from).watcher();
    this.#watcher = watcher;
    const connectTimer = this.#after(this.#options.timeoutMs, () => {
      this.#onWatchLost(watcher, new Error(`watch not established within ${this.#options.timeoutMs} ms`));
    });
    watcher.on('connected', (res: IWatchResponse) => {
      this.#cancelTimer(connectTimer);
      if (watcher !== this.#watcher) return;
      if (this.#checkSameHistory(res.header)) {
        // Only a watch that stays up resets the backoff: one that connects and drops again at once keeps backing off.
        this.#after(STABLE_WATCH_MS, () => {
          if (watcher === this.#watcher && this.#health.connected) this.#backoff.reset();
        });
        this.#setConnected(true);
        this.#log.info({ fromRevision: from, host: this.#memberHost() }, 'watching etcd');
      }
    });
    watcher.on('data', (res: IWatchResponse) => {
      if (watcher === this.#watcher) this.#onWatchResponse(res);
    });
    watcher.on('disconnected', (err: Error) => {
      this.#cancelTimer(connectTimer);
      this.#onWatchLost(watcher, err);
    });
    // etcd cancels a watch whose start revision was compacted (a response with canceled and compact_revision set);
    // etcd3 reports any server-side cancel as `error` and drops the compact_revision, so every cancel resyncs.
    watcher.on('error', (err: Error) => {
      this.#cancelTimer(connectTimer);
      if (watcher !== this.#watcher) return;
      this.#watcher = undefined; // etcd already cancelled it: sending our own cancel would wait for no reply
      const fields = { error: describe(err), resumeRevision: from };
      this.#log.warn(fields, 'etcd cancelled the watch (compacted?), resyncing');
      this.#resync('watch cancelled');
    });
  }

  #onWatchResponse(res: IWatchResponse): void {
    if (!this.#checkSameHistory(res.header)) return;
    const keepRaw = this.#options.snapshotCache !== undefined;
    for (const event of res.events) {
      if (event.type === 'Put') this.#store.applyPut(event.kv);
      else this.#store.applyDelete(event.kv);
      this.#applied = BigInt(event.kv.mod_revision);
      if (keepRaw) {
        if (event.type === 'Put') this.#raw.set(event.kv.key.toString(), event.kv);
        else this.#raw.delete(event.kv.key.toString());
      }
    }
    // An empty response is a progress notification: every event up to header.revision has been sent.
    const progress = BigInt(res.header.revision);
    if (res.events.length === 0 && progress > this.#applied) this.#applied = progress;
    this.#scheduleFlush();
  }

  /**
   * A header from another cluster, or a revision below what was already applied, means etcd lost its data (a
   * restart on an empty data dir, a restored backup): APISIX's "received smaller revision ... etcd may be
   * restarted. resyncing". Returns false after starting the resync.
   */
  #checkSameHistory(header: IResponseHeader): boolean {
    const revision = BigInt(header.revision);
    if (revision >= this.#applied && header.cluster_id === this.#clusterId) return true;
    this.#log.warn(
      {
        revision: header.revision,
        applied: this.#applied.toString(),
        clusterId: header.cluster_id,
        expectedClusterId: this.#clusterId,
      },
      'etcd revision went backwards or its cluster changed, etcd may have been restarted; resyncing',
    );
    this.#resync('etcd history changed');
    return false;
  }

  #onWatchLost(watcher: Watcher, err: Error): void {
    if (watcher !== this.#watcher || this.#closed) return;
    this.#dropWatch();
    const delayMs = this.#backoff.next();
    const failedHost = this.#memberHost();
    this.#switchMember();
    this.#log.warn(
      { error: describe(err), host: failedHost, next: this.#memberHost(), resumeRevision: (this.#applied + 1n).toString(), retryInMs: delayMs },
      'etcd watch disconnected, resuming',
    );
    this.#reconnect = this.#after(delayMs, () => {
      this.#reconnect = undefined;
      this.#openWatch();
    });
  }

  /** Full re-read after a compaction or an etcd restart, then a new watch from the new revision + 1. */
  #resync(reason: string): void {
    this.#dropWatch();
    if (this.#reconnect !== undefined) {
      this.#cancelTimer(this.#reconnect); // the resync opens the next watch itself
      this.#reconnect = undefined;
    }
    if (this.#resyncing || this.#closed) return;
    this.#resyncing = true;
    this.#loadUntilDone(reason).then(
      (state) => {
        this.#resyncing = false;
        this.#emit(state);
        this.#openWatch();
      },
      () => undefined, // only rejects once closed
    );
  }

  /** Every path that loses or replaces the watch comes through here, so the health follows each of them. */
  #dropWatch(): void {
    this.#setConnected(false);
    const watcher = this.#watcher;
    this.#watcher = undefined;
    watcher?.cancel().catch((err: unknown) => {
      this.#log.debug({ error: describe(err) }, 'cancelling an etcd watch failed');
    });
  }

  /** Events of one watch response, or of several arriving in the same tick, become one state and one onChange. */
  #scheduleFlush(): void {
    if (this.#flush !== undefined || !this.#store.dirty) return;
    this.#flush = setImmediate(() => {
      this.#flush = undefined;
      if (this.#resyncing || this.#closed) return; // the resync's full state supersedes these events
      const state = this.#store.commit(this.#applied.toString());
      if (state !== undefined) this.#emit(state);
      this.#scheduleCacheWrite();
    });
  }

  /** At most one write per CACHE_WRITE_DELAY_MS, of the raw key-values the store is complete up to. */
  #scheduleCacheWrite(): void {
    const file = this.#options.snapshotCache;
    if (file === undefined || this.#cacheTimer !== undefined || this.#closed) return;
    this.#cacheTimer = this.#after(CACHE_WRITE_DELAY_MS, () => {
      this.#cacheTimer = undefined;
      const snapshot = { revision: this.#applied.toString(), clusterId: this.#clusterId, kvs: [...this.#raw.values()] };
      this.#cacheWrite = this.#cacheWrite
        .then(() => writeSnapshotCache(file, this.#prefix, snapshot))
        .then(
          () => this.#log.debug({ file, revision: snapshot.revision }, 'config snapshot cache written'),
          (err: unknown) => this.#log.warn({ file, error: describe(err) }, 'cannot write the config snapshot cache'),
        );
    });
  }

  #setConnected(connected: boolean): void {
    if (this.#health.connected !== connected) this.#health = { connected, since: Date.now() };
  }

  #emit(state: ConfigState): void {
    if (this.#closed) return;
    this.#log.info(summary(state), 'configuration changed');
    try {
      this.#options.onChange(state);
    } catch (err) {
      this.#log.error({ error: describe(err) }, 'onChange listener threw; the watch goes on');
    }
  }

  /** `delayMs` may come from config (etcd.timeout): clamped like every such timer (timers.ts). */
  #after(delayMs: number, run: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!this.#closed) run();
    }, clampDelay(delayMs));
    this.#timers.add(timer);
    return timer;
  }

  #cancelTimer(timer: NodeJS.Timeout): void {
    clearTimeout(timer);
    this.#timers.delete(timer);
  }
}

function clientOptions(options: EtcdConfigSourceOptions, host: string): IOptions {
  const { timeoutMs } = options;
  const result: IOptions = {
    hosts: [host],
    grpcOptions: { ...ETCD_CHANNEL_OPTIONS, 'grpc.max_receive_message_length': UNLIMITED_MESSAGE_LENGTH },
    // Unary calls get a deadline so an unreachable or blackholed host fails (and is logged) instead of hanging;
    // the watch stream is long-lived and must not get one. Each client talks to one member and is replaced after a
    // failure (#switchMember), so etcd3's per-host circuit breaker never gets to delay a retry.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    faultHandling: { watchBackoff: constantBackoff(ETCD3_WATCH_RETRY_MS) },
  };
  if (options.username !== undefined && options.password !== undefined) {
    result.auth = { username: options.username, password: options.password };
  }
  const tls = readEtcdTls(options.tls);
  if (tls !== undefined) {
    result.credentials = tls.credentials;
    result.grpcOptions = { ...result.grpcOptions, ...tls.grpcOptions };
  }
  return result;
}
