/**
 * Standalone mode: the data plane reads its configuration from one YAML file instead of etcd, as APISIX does with
 * `deployment.role_data_plane.config_provider: yaml` and conf/apisix.yaml (docs/apisix-compatibility.md,
 * "Standalone file"). The file holds lists under `routes`, `upstreams`, `services` and `ssls`, each item shaped like the admin
 * API's (and etcd's) value; an item without `id` is `arr_<1-based index>`; `${{VAR}}` / `${{VAR:=default}}` are
 * replaced from the environment; and the file must end with a `#END` line, so that a file caught half-written is
 * never applied (APISIX: `missing valid end flag in file <path>`).
 *
 * The file is polled, not watched: fs.watch misses atomic renames and editors' save strategies on some platforms,
 * and APISIX itself re-reads the file once a second when its mtime changes. A version is re-read only when its
 * stat fingerprint (mtime, ctime, size, inode) changes, and applied only when its text differs from the last one
 * applied, so `touch` rebuilds nothing.
 *
 * Items go through the same ConfigStore as etcd values, as if they were keys `/apisix/<type>/<id>`: the same
 * validation, the same decryption of private keys (a plain PEM, starting with `---`, is taken as is), and the same
 * last-good-value rule, so an invalid item is skipped with a log line naming it while its previous good value stays.
 * A reload is applied like a batch of etcd events (a put per changed item, a delete per vanished one), so unchanged
 * items keep their ConfigItem and mod_revision and the snapshot build reuses their routes and TLS contexts. The
 * revision counts the loads that changed the configuration: "1", "2", ...
 * A file that cannot be used at all (unreadable, not YAML, no `#END`) changes nothing: the last good state stays in
 * service and health() is not connected (the data plane's `config_stale`) until a good version is read.
 */
import { readFile, stat } from 'node:fs/promises';
import type { Env } from '../../shared/config.ts';
import type { Keyring } from '../../shared/crypto.ts';
import { describe } from '../../shared/errors.ts';
import { resourceKey } from '../../shared/etcd-keys.ts';
import type { Logger } from '../../shared/logger.ts';
import { clampDelay } from '../timers.ts';
import { ConfigStore, summary, type ConfigState, type RawKeyValue } from './config-state.ts';
import type { ConfigSource, WatchHealth } from './source.ts';
import { KEY_PREFIX, parseStandalone } from './standalone-file.ts';

export { END_FLAG, parseStandalone, type StandaloneParse } from './standalone-file.ts';

export interface YamlConfigSourceOptions {
  file: string;
  keyring?: Keyring;
  log: Logger;
  onChange: (state: ConfigState) => void;
  /** How often the file's mtime is checked; APISIX: every second. */
  pollMs?: number;
  /** Values for `${{VAR}}` (the config module owns process.env: GatewayConfig's `dataPlane.standaloneEnv`). */
  env: Env;
}

/** APISIX re-reads conf/apisix.yaml once a second when its mtime changed. */
export const DEFAULT_POLL_MS = 1_000;
export function createYamlConfigSource(options: YamlConfigSourceOptions): ConfigSource {
  return new YamlSource(options);
}

class YamlSource implements ConfigSource {
  readonly #options: YamlConfigSourceOptions;
  readonly #log: Logger;
  readonly #store: ConfigStore;
  readonly #pollMs: number;
  readonly #env: Env;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #started: Promise<ConfigState> | undefined;
  #settleStart: { resolve: (state: ConfigState) => void; reject: (err: Error) => void } | undefined;
  /** Stat fingerprint of the version last read, good or bad: it is not read again until the file changes. */
  #seen: string | undefined;
  /** Text of the version last applied. */
  #appliedText: string | undefined;
  #revision = 0;
  /** Per key: the item's JSON as last put into the store (valid or not), to put only what changed. */
  #items = new Map<string, string>();
  /** The problem logged last, so a file missing for an hour is logged once, not at every poll. */
  #problem: string | undefined;
  #health: WatchHealth = { connected: false, since: Date.now() };

  constructor(options: YamlConfigSourceOptions) {
    this.#options = options;
    this.#log = options.log.child({ module: 'yaml-source', file: options.file });
    this.#store = new ConfigStore(KEY_PREFIX, this.#log, options.keyring);
    this.#pollMs = options.pollMs ?? DEFAULT_POLL_MS;
    this.#env = options.env;
  }

  start(): Promise<ConfigState> {
    if (this.#started === undefined) {
      if (this.#closed) return Promise.reject(new Error('the standalone config source is closed'));
      this.#started = new Promise((resolve, reject) => {
        this.#settleStart = { resolve, reject };
      });
      void this.#tick();
    }
    return this.#started;
  }

  current(): ConfigState | undefined {
    return this.#store.current();
  }

  health(): WatchHealth {
    return this.#health;
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#setConnected(false);
    this.#settleStart?.reject(new Error(`the standalone config source was closed before ${this.#options.file} was read`));
    this.#settleStart = undefined;
    return Promise.resolve();
  }

  /** One check, then the next one pollMs later: checks never overlap, however slow the disk. */
  async #tick(): Promise<void> {
    this.#timer = undefined;
    try {
      await this.#check();
    } catch (err) {
      this.#log.error({ error: describe(err) }, 'checking the standalone config file failed');
    }
    if (!this.#closed) this.#timer = setTimeout(() => void this.#tick(), clampDelay(this.#pollMs)); // from config: timers.ts
  }

  async #check(): Promise<void> {
    const { file } = this.#options;
    let fingerprint: string;
    let text: string;
    try {
      // Nanoseconds: two writes within one millisecond must still look different.
      const info = await stat(file, { bigint: true });
      if (!info.isFile()) throw new Error('not a regular file');
      fingerprint = `${info.mtimeNs}:${info.ctimeNs}:${info.size}:${info.ino}`;
      if (this.#closed || fingerprint === this.#seen) return;
      text = await readFile(file, 'utf8');
    } catch (err) {
      if (this.#closed) return;
      this.#seen = undefined; // whatever comes back at this path is read again
      this.#fail(`cannot read ${file}: ${describe(err)}`, undefined);
      return;
    }
    if (this.#closed as boolean) return; // closed during readFile (invisible to TypeScript's narrowing)
    this.#seen = fingerprint;
    this.#load(text, fingerprint);
  }

  #load(text: string, fingerprint: string): void {
    if (text === this.#appliedText) {
      this.#recovered();
      return;
    }
    const parsed = parseStandalone(text, this.#env, this.#options.file);
    if (!parsed.ok) {
      this.#fail(parsed.reason, fingerprint);
      return;
    }
    if (parsed.ignored.length > 0) this.#log.info({ keys: parsed.ignored }, 'APISIX resources this gateway does not use are ignored');
    if (parsed.unknown.length > 0) this.#log.warn({ keys: parsed.unknown }, 'unknown top-level keys in the standalone config file are ignored');
    for (const problem of parsed.problems) this.#log.warn({ problem }, 'skipped an item of the standalone config file');

    // The first load replaces everything; later ones put only the items whose text changed and delete the ones
    // that are gone, so unchanged items keep their ConfigItem (and mod_revision) by identity and the snapshot build
    // reuses what they resolved to. Either way an invalid item is skipped and its last good value stays.
    const first = this.#store.current() === undefined;
    const revision = String(this.#revision + 1);
    const items = new Map<string, string>();
    const puts: RawKeyValue[] = [];
    for (const { type, id, json } of parsed.items) {
      const key = resourceKey(KEY_PREFIX, type, id);
      items.set(key, json);
      if (first || this.#items.get(key) !== json) puts.push({ key: Buffer.from(key), value: Buffer.from(json), mod_revision: revision });
    }
    let state: ConfigState | undefined;
    if (first) {
      state = this.#store.replaceAll(puts, revision);
    } else {
      for (const kv of puts) this.#store.applyPut(kv);
      for (const key of this.#items.keys()) {
        if (!items.has(key)) this.#store.applyDelete({ key: Buffer.from(key), value: Buffer.alloc(0), mod_revision: revision });
      }
      state = this.#store.commit(revision);
    }
    this.#items = items;
    this.#appliedText = text;
    this.#problem = undefined;
    this.#setConnected(true);
    if (state === undefined) {
      // Comments, formatting, or only invalid items changed: nothing to rebuild, and no new revision.
      this.#log.info({ revision: this.#store.current()?.revision }, 'the standalone config file changed; the configuration did not');
      return;
    }
    this.#revision += 1;
    this.#log.info(summary(state), first ? 'configuration loaded from the standalone file' : 'configuration changed');
    if (first) {
      this.#settleStart?.resolve(state);
      this.#settleStart = undefined;
      return;
    }
    try {
      this.#options.onChange(state);
    } catch (err) {
      this.#log.error({ error: describe(err) }, 'onChange listener threw; polling goes on');
    }
  }

  /** The file is back to the version in service (restored after a bad edit, or only touched). */
  #recovered(): void {
    const revision = this.#store.current()?.revision;
    if (this.#health.connected) this.#log.debug({ revision }, 'the standalone config file was rewritten unchanged');
    else this.#log.info({ revision }, 'the standalone config file is valid again');
    this.#problem = undefined;
    this.#setConnected(true);
  }

  /** Logs each distinct problem once (per file version); the state in service, if any, stays. */
  #fail(reason: string, fingerprint: string | undefined): void {
    this.#setConnected(false);
    const key = `${fingerprint ?? ''}|${reason}`;
    if (key === this.#problem) return;
    this.#problem = key;
    const current = this.#store.current();
    if (current === undefined) {
      this.#log.warn({ reason, pollMs: this.#pollMs }, 'the standalone config file is not usable yet; waiting for a valid one');
    } else {
      this.#log.error({ reason, revision: current.revision }, 'cannot apply the standalone config file; keeping the last good configuration');
    }
  }

  #setConnected(connected: boolean): void {
    if (this.#health.connected !== connected) this.#health = { connected, since: Date.now() };
  }
}
