/**
 * What the admin API needs from a store, as an interface: the admin handlers depend on this shape, not on etcd3,
 * so etcd stays behind control-plane/store/etcd-store.ts (the one module of the control plane that imports it).
 *
 * Values are the JSON documents the admin API accepted, exactly as stored under `<prefix>/<type>/<id>`; the
 * revisions are etcd's `create_revision` and `mod_revision`, which the v3 admin responses expose as
 * `createdIndex`/`modifiedIndex`.
 *
 * Every write is one etcd transaction guarded by what it was derived from: the key's own revision, plus the
 * preconditions the caller returns (a referenced object unchanged, no referrer added since a scan). A write whose
 * guards fail is rebuilt from a fresh read, so concurrent writers never lose an update or break a reference.
 */
import type { ResourceType } from '../../shared/etcd-keys.ts';

export interface StoredItem {
  value: unknown;
  createRevision: number;
  modRevision: number;
}

export interface ListedItem extends StoredItem {
  id: string;
}

export interface Listing {
  items: ListedItem[];
  /** The etcd revision the listing was read at (the range response's header revision). */
  revision: number;
}

/** A condition etcd checks atomically with the write it guards. */
export type Precondition =
  /** The object is still at the revision it was read at (`modRevision: 0`: it is still absent). */
  | { kind: 'item'; type: ResourceType; id: string; modRevision: number }
  /** No object of `type` was created or changed after `revision` (deletions do not matter). */
  | { kind: 'unchanged-since'; type: ResourceType; revision: number };

export interface WritePlan {
  value: unknown;
  preconditions?: readonly Precondition[];
}

export interface PutResult {
  /** True when the key did not exist before this write (the admin API answers 201, else 200). */
  created: boolean;
  /** The value written, as returned by `build`. */
  value: unknown;
}

/**
 * Builds the value to write from the one currently stored (undefined when the key is absent or its value is not
 * JSON); it may return a promise and may read the store. It runs again when a guard fails, so it must not have
 * side effects; anything it throws aborts the write and is rethrown to the caller unchanged.
 */
export type BuildValue = (existing: StoredItem | undefined) => WritePlan | Promise<WritePlan>;

/** Runs before a delete, again on every retry; throws to refuse it, or returns what must hold when it commits. */
export type CheckDelete = () => readonly Precondition[] | Promise<readonly Precondition[]>;

export interface ResourceStore {
  /** The etcd key prefix, e.g. `/apisix`: the admin API echoes full keys such as `/apisix/routes/1`. */
  readonly prefix: string;
  get(type: ResourceType, id: string): Promise<StoredItem | undefined>;
  /** Every object of one type, in key order, without APISIX's `init_dir` placeholder or non-JSON values. */
  list(type: ResourceType): Promise<Listing>;
  /** Read-modify-write in one transaction guarded by the key's revision and the plan's preconditions. */
  put(type: ResourceType, id: string, build: BuildValue): Promise<PutResult>;
  /** False when there was nothing to delete. */
  delete(type: ResourceType, id: string, check?: CheckDelete): Promise<boolean>;
  /**
   * A new object id, unique across the cluster: APISIX writes `<prefix>/gen_id` and formats the revision of that
   * write as 20 zero-padded digits (APISIX's `etcd.push`).
   */
  nextId(): Promise<string>;
  /** Writes APISIX's `<prefix>/<type>/` = `init_dir` placeholders that are missing. */
  ensureDirs(): Promise<void>;
  /** Idempotent; later calls fail with StoreUnavailable. */
  close(): Promise<void>;
}
