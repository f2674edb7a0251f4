/**
 * What the admin API needs from a store, as an interface: the admin handlers depend on this shape, not on etcd3,
 * so etcd stays behind control-plane/store/etcd-store.ts (the one module of the control plane that imports it).
 *
 * Values are the JSON documents the admin API accepted, exactly as stored under `<prefix>/<type>/<id>`; the
 * revisions are etcd's `create_revision` and `mod_revision`, which the v3 admin responses expose as
 * `createdIndex`/`modifiedIndex` (apisix-compat §2.3).
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

export interface PutResult {
  /** True when the key did not exist before this write (the admin API answers 201, else 200). */
  created: boolean;
  /** The value written, as returned by `build`. */
  value: unknown;
}

/**
 * Builds the value to write from the one currently stored (undefined when the key is absent or its value is not
 * JSON); it may return a promise. It runs again when another writer changes the key in between, so it must not
 * have side effects; anything it throws aborts the write and is rethrown to the caller unchanged.
 */
export type BuildValue = (existing: StoredItem | undefined) => unknown;

export interface ResourceStore {
  /** The etcd key prefix, e.g. `/apisix`: the admin API echoes full keys such as `/apisix/routes/1`. */
  readonly prefix: string;
  get(type: ResourceType, id: string): Promise<StoredItem | undefined>;
  /** Every object of one type, in key order, without APISIX's `init_dir` placeholder or non-JSON values. */
  list(type: ResourceType): Promise<ListedItem[]>;
  /** Read-modify-write guarded by an etcd transaction on the key's revision; retried on conflict. */
  put(type: ResourceType, id: string, build: BuildValue): Promise<PutResult>;
  /** False when there was nothing to delete. */
  delete(type: ResourceType, id: string): Promise<boolean>;
  /** Writes APISIX's `<prefix>/<type>/` = `init_dir` placeholders that are missing. */
  ensureDirs(): Promise<void>;
  /** Idempotent; later calls fail with StoreUnavailable. */
  close(): Promise<void>;
}
