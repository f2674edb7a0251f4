/**
 * The data plane's view of the configuration in etcd, without any I/O: it decodes etcd key-values into validated
 * items and turns a full range read or a stream of watch events into immutable `ConfigState`s.
 *
 * It follows APISIX's `config_etcd.lua`: `value.id` is forced to the key's suffix, an invalid
 * value is skipped and "invalid data should only cancel this config item update", so the last good value of that key
 * stays; a delete removes the key. States handed out are never mutated: changes go to a copy-on-write draft that
 * `commit()` freezes into a new state, so in-flight streams keep the snapshot they pinned.
 *
 * The copy is per type: a change to one route copies the routes map only, and the new state shares the other maps
 * (and every unchanged item) with the previous one by identity. Snapshot builds rely on that identity to reuse what
 * an unchanged item resolved to (snapshots.ts).
 *
 * Private keys are stored encrypted by the admin API (or by APISIX) with the keyring; they are decrypted here,
 * before validation, so the rest of the data plane only ever sees PEM text. A key no keyring entry decrypts makes
 * the value invalid like any other.
 */
import { decryptSecrets, type Keyring } from '../../shared/crypto.ts';
import { describe } from '../../shared/errors.ts';
import { parseKey, type ResourceType } from '../../shared/etcd-keys.ts';
import type { Logger } from '../../shared/logger.ts';
import { validateResource, type ResourceConfs } from '../../shared/validate.ts';

export interface ConfigItem<T> {
  readonly id: string;
  readonly value: T;
  /** etcd's mod_revision of the value in service (APISIX's `modifiedIndex`). */
  readonly modRevision: string;
}

export type ConfigMaps = {
  readonly [K in ResourceType]: ReadonlyMap<string, ConfigItem<ResourceConfs[K]>>;
};

export interface ConfigState extends ConfigMaps {
  /** The etcd revision this state is complete up to. */
  readonly revision: string;
}

/** The raw key-value shape of etcd3's range and watch responses that this module reads. */
export interface RawKeyValue {
  key: Buffer;
  value: Buffer;
  mod_revision: string;
}

type ItemMap<K extends ResourceType> = Map<string, ConfigItem<ResourceConfs[K]>>;
type DraftMaps = { [K in ResourceType]: ItemMap<K> };
/** The maps changed since the last commit, each a private copy; the other types are still the committed maps. */
type PartialDraft = { [K in ResourceType]?: ItemMap<K> };

type Decoded =
  | { kind: 'ignored' }
  | { kind: 'invalid'; type: ResourceType; id: string; error: string }
  | { kind: 'item'; type: ResourceType; item: ConfigItem<ResourceConfs[ResourceType]> };

export class ConfigStore {
  readonly #prefix: string;
  readonly #log: Logger;
  readonly #keyring: Keyring;
  #state: ConfigState | undefined;
  #draft: PartialDraft | undefined;

  constructor(prefix: string, log: Logger, keyring: Keyring = []) {
    this.#prefix = prefix;
    this.#log = log;
    this.#keyring = keyring;
  }

  current(): ConfigState | undefined {
    return this.#state;
  }

  /** True when watch events changed something that has not been committed yet. */
  get dirty(): boolean {
    return this.#draft !== undefined;
  }

  applyPut(kv: RawKeyValue): void {
    const decoded = this.#decode(kv);
    if (decoded.kind === 'ignored') return;
    if (decoded.kind === 'invalid') {
      this.#warnInvalid(kv, decoded.error, this.#latest(decoded.type).has(decoded.id));
      return;
    }
    setItem(this.#editable(decoded.type), decoded.item);
  }

  applyDelete(kv: RawKeyValue): void {
    const parsed = parseKey(this.#prefix, kv.key.toString());
    if (parsed === undefined || !this.#latest(parsed.type).has(parsed.id)) return;
    this.#editable(parsed.type).delete(parsed.id);
  }

  /** Freezes the draft into a new state at `revision`; undefined when nothing changed since the last commit. */
  commit(revision: string): ConfigState | undefined {
    const draft = this.#draft;
    if (draft === undefined) return undefined;
    this.#draft = undefined;
    const base: ConfigMaps = this.#state ?? emptyDraft();
    this.#state = freezeState(
      {
        routes: draft.routes ?? base.routes,
        upstreams: draft.upstreams ?? base.upstreams,
        services: draft.services ?? base.services,
        ssls: draft.ssls ?? base.ssls,
        consumers: draft.consumers ?? base.consumers,
        consumer_groups: draft.consumer_groups ?? base.consumer_groups,
        global_rules: draft.global_rules ?? base.global_rules,
        plugin_configs: draft.plugin_configs ?? base.plugin_configs,
        plugin_metadata: draft.plugin_metadata ?? base.plugin_metadata,
        protos: draft.protos ?? base.protos,
      },
      revision,
    );
    return this.#state;
  }

  /**
   * Replaces everything with the result of a full range read (bootstrap, or resync after a compaction or an etcd
   * restart). Keys that vanished are gone; a key whose value is now invalid keeps its previous good value, as
   * APISIX's `need_reload` path does.
   */
  replaceAll(kvs: readonly RawKeyValue[], revision: string): ConfigState {
    const next = emptyDraft();
    for (const kv of kvs) {
      const decoded = this.#decode(kv);
      if (decoded.kind === 'item') {
        setItem(next[decoded.type], decoded.item);
      } else if (decoded.kind === 'invalid') {
        const previous = this.#latest(decoded.type).get(decoded.id);
        this.#warnInvalid(kv, decoded.error, previous !== undefined);
        if (previous !== undefined) setItem(next[decoded.type], previous);
      }
    }
    this.#draft = undefined;
    this.#state = freezeState(next, revision);
    return this.#state;
  }

  #decode(kv: RawKeyValue): Decoded {
    const parsed = parseKey(this.#prefix, kv.key.toString());
    if (parsed === undefined) return { kind: 'ignored' }; // placeholders, other dirs, gen_id, plugins
    const { type, id } = parsed;
    let json: unknown;
    try {
      json = JSON.parse(kv.value.toString('utf8'));
    } catch (err) {
      return { kind: 'invalid', type, id, error: `invalid JSON: ${describe(err)}` };
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      return { kind: 'invalid', type, id, error: 'the value is not a JSON object' };
    }
    // APISIX forces `value.id` to the key suffix, whatever the stored document says (config_etcd.lua).
    let result: ReturnType<typeof validateResource>;
    try {
      result = validateResource(type, decryptSecrets(type, { ...json, id }, this.#keyring));
    } catch (err) {
      // An undecryptable key, or a validator bug, must not take the watch down: the value is invalid like any other.
      return { kind: 'invalid', type, id, error: describe(err) };
    }
    if (!result.ok) return { kind: 'invalid', type, id, error: result.error };
    return { kind: 'item', type, item: Object.freeze({ id, value: result.value, modRevision: kv.mod_revision }) };
  }

  #warnInvalid(kv: RawKeyValue, error: string, keptPrevious: boolean): void {
    this.#log.warn(
      { key: kv.key.toString(), modRevision: kv.mod_revision, error, keptPrevious },
      'skipped an invalid configuration value from etcd',
    );
  }

  /** The newest maps, committed or not: what "the last good value" of a key refers to. */
  #latest<K extends ResourceType>(type: K): ReadonlyMap<string, ConfigItem<ResourceConfs[K]>> {
    const draft: ItemMap<K> | undefined = this.#draft?.[type];
    if (draft !== undefined) return draft;
    const committed: ConfigMaps | undefined = this.#state;
    return committed === undefined ? new Map() : committed[type];
  }

  /**
   * Copy-on-write per type: the first change of a type after a commit copies that type's map, so handed-out
   * states stay untouched and the next state shares the maps of the other types.
   */
  #editable<K extends ResourceType>(type: K): ItemMap<K> {
    const draft: PartialDraft = (this.#draft ??= {});
    const existing: ItemMap<K> | undefined = draft[type];
    if (existing !== undefined) return existing;
    const committed: ConfigMaps | undefined = this.#state;
    const copy: ItemMap<K> = new Map(committed?.[type]);
    Object.assign(draft, { [type]: copy }); // `draft[type] = copy` is beyond TypeScript for a generic K
    return copy;
  }
}

/** The fields logged for a state: its revision and how many items of each type it holds. */
export function summary(state: ConfigState): { revision: string; routes: number; upstreams: number; services: number; ssls: number } {
  return {
    revision: state.revision,
    routes: state.routes.size,
    upstreams: state.upstreams.size,
    services: state.services.size,
    ssls: state.ssls.size,
  };
}

function setItem<T>(map: Map<string, ConfigItem<T>>, item: ConfigItem<T>): void {
  map.set(item.id, item);
}

// Written out per type on purpose: adding a type to RESOURCE_TYPES makes these literals fail to compile until the
// new type gets its map.
function emptyDraft(): DraftMaps {
  return { routes: new Map(), upstreams: new Map(), services: new Map(), ssls: new Map(), consumers: new Map(), consumer_groups: new Map(), global_rules: new Map(), plugin_configs: new Map(), plugin_metadata: new Map(), protos: new Map() };
}

function freezeState(maps: ConfigMaps, revision: string): ConfigState {
  const state: ConfigState = { revision, routes: maps.routes, upstreams: maps.upstreams, services: maps.services, ssls: maps.ssls, consumers: maps.consumers, consumer_groups: maps.consumer_groups, global_rules: maps.global_rules, plugin_configs: maps.plugin_configs, plugin_metadata: maps.plugin_metadata, protos: maps.protos };
  return Object.freeze(state);
}
