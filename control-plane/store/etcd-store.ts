/**
 * The control plane's etcd store: the only module of the control plane that imports etcd3. It reads and writes
 * APISIX's layout (`<prefix>/<type>/<id>` = JSON text, `<prefix>/<type>/` = the `init_dir` placeholder)
 * and turns every etcd failure into StoreUnavailable, which the admin API answers with 503.
 *
 * Writes are compare-and-swap transactions on the key's revision, as APISIX's `atomic_set`, so two admins writing
 * the same key cannot silently lose an update that `build` derived from (e.g. `create_time`, or the fields a PATCH
 * kept). The caller's preconditions join the same transaction: `item` compares one key's mod_revision, and
 * `unchanged-since` compares the greatest mod_revision of a whole directory (etcd's range compare, 3.3+), which is
 * how a delete proves that no referrer appeared after it scanned for them.
 *
 * A lost compare is a conflict, never an outage: writes to one key from this process queue in a lane
 * (write-lanes.ts) and a failed transaction returns the key's fresh value, on which the write is rebuilt (PUT: last
 * writer wins, as APISIX; PATCH: re-merged); only when that keeps failing does the write give up with StoreConflict
 * (409). Each call runs on one member at a time with a short attempt deadline and moves on from a member that
 * hangs (member-pool.ts). This folder is the only part of the control plane that imports etcd3.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CompareResult, CompareTarget, type Etcd3, type ICompare, type IOptions, type IRequestOp, type IResponseOp, type ITxnResponse } from 'etcd3';
import { GatewayError, StoreConflict, StoreUnavailable, describe } from '../../shared/errors.ts';
import { RESOURCE_TYPES, normalizePrefix, parseKey, resourceDir, resourceKey, type ResourceType } from '../../shared/etcd-keys.ts';
import type { EtcdTlsConfig } from '../../shared/config.ts';
import { ETCD_CHANNEL_OPTIONS, readEtcdTls } from '../../shared/etcd-tls.ts';
import type { Logger } from '../../shared/logger.ts';
import { ATTEMPT_TIMEOUT_MS, MemberPool } from './member-pool.ts';
import type { BuildValue, CheckDelete, ListedItem, Listing, Precondition, PutResult, ResourceStore, StoredItem } from './resource-store.ts';
import { WriteLanes, type KnownValue } from './write-lanes.ts';

export interface EtcdStoreOptions {
  hosts: string[];
  prefix: string;
  /** APISIX's `deployment.etcd.timeout`, in ms; capped by MAX_CALL_TIMEOUT_MS (see there). */
  timeoutMs: number;
  username?: string | undefined;
  password?: string | undefined;
  /** CA, client certificate and key files for `https://` etcd hosts; read (or ConfigError) when the store is made. */
  tls?: EtcdTlsConfig | undefined;
  log: Logger;
}

/** The placeholder value APISIX's CLI writes at `<prefix>/<dir>/` (apisix/cli/etcd.lua `prepare_dirs_via_http`). */
export const INIT_DIR_VALUE = 'init_dir';

/**
 * The admin API is interactive: an unreachable etcd must give the caller a 503 within seconds, not after APISIX's
 * 30 s default. etcd3 1.1.2 declares `dialTimeout` but never reads it, so the bound is the pool's on the whole
 * operation, over every member it tries, each attempt with its own short gRPC deadline (member-pool.ts).
 */
const MAX_CALL_TIMEOUT_MS = 5_000;

/**
 * Compare-and-swap attempts before a write gives up with StoreConflict (409); each one rebuilds the value on the
 * fresh one. APISIX gives up at the first conflict (503 `value changed before overwritten`); with the lanes, a
 * conflict needs another writer outside this process, so a few attempts make giving up rare.
 */
const PUT_ATTEMPTS = 8;
/** Upper bound of the random pause before a retry after a conflict, times the attempt: writers fall out of step. */
const CONFLICT_JITTER_MS = 10;

/** The key APISIX's `etcd.push` writes to draw a new id from the cluster revision. */
const GEN_ID_KEY = 'gen_id';
/** APISIX formats generated ids as `%020d`. */
const GENERATED_ID_DIGITS = 20;

export function createEtcdStore(options: EtcdStoreOptions): ResourceStore {
  const prefix = normalizePrefix(options.prefix);
  const log = options.log.child({ module: 'etcd-store' });
  const callTimeoutMs = Math.max(1, Math.min(options.timeoutMs, MAX_CALL_TIMEOUT_MS));
  const pool = new MemberPool({ hosts: options.hosts, callTimeoutMs, clientOptions: clientOptions(options), log });
  const lanes = new WriteLanes((err) => err instanceof StoreUnavailable);
  let closed = false;

  /**
   * Runs one etcd operation on the members (bounded by callTimeoutMs); any failure of etcd or of the client
   * becomes StoreUnavailable. `call` gets the attempt number: above 1, an earlier attempt may have been applied.
   */
  async function run<T>(op: string, call: (client: Etcd3, attempt: number) => Promise<T>): Promise<T> {
    if (closed) throw new StoreUnavailable(new Error('the store is closed'));
    try {
      return await pool.run(call);
    } catch (err) {
      if (err instanceof GatewayError) throw err;
      // The pool's error names each member tried and why it failed; a fatal etcd error comes as etcd said it.
      const error = new StoreUnavailable(new Error(describe(err), { cause: err }));
      log.warn({ op, hosts: options.hosts, err: error.message }, 'etcd operation failed');
      throw error;
    }
  }

  async function readKv(key: string): Promise<KnownValue | null> {
    const res = await run('range', (client) => client.get(key).exec());
    return known(res.kvs[0]);
  }

  function decode(key: string, kv: KnownValue): StoredItem | undefined {
    let value: unknown;
    try {
      value = JSON.parse(kv.value.toString('utf8'));
    } catch {
      log.warn({ key, revision: kv.modRevision }, 'value is not JSON, ignored');
      return undefined;
    }
    return { value, createRevision: Number(kv.createRevision), modRevision: Number(kv.modRevision) };
  }

  /**
   * One transaction: `op` if every comparison holds, else a read of the key (so a retry needs no read of its own).
   * `ambiguous` says an earlier attempt timed out or broke off on some member and may have been applied.
   */
  async function commit(key: string, compare: ICompare[], op: IRequestOp): Promise<Commit> {
    let ambiguous = false;
    const failure: IRequestOp = { request_range: { key: Buffer.from(key) } };
    const res = await run('txn', (client, attempt) => {
      ambiguous = attempt > 1;
      return client.kv.txn({ compare, success: [op], failure: [failure] });
    });
    // etcd3 types every field of an op response as present; it is a oneof, so only the failure's range is there.
    const read: Partial<IResponseOp> | undefined = res.responses[0];
    return { res, ambiguous, fresh: res.succeeded ? undefined : known(read?.response_range?.kvs[0]) };
  }

  function toCompare(precondition: Precondition): ICompare {
    if (precondition.kind === 'item') {
      const key = resourceKey(prefix, precondition.type, precondition.id);
      return precondition.modRevision === 0 ? absent(key) : unchanged(key, precondition.modRevision);
    }
    // Every key of the directory (placeholder included) has mod_revision <= revision: nothing created or changed.
    const dir = resourceDir(prefix, precondition.type);
    return {
      key: Buffer.from(dir),
      range_end: prefixEnd(dir),
      target: CompareTarget.Mod,
      result: CompareResult.Less,
      mod_revision: precondition.revision + 1,
    };
  }

  return {
    prefix,

    async get(type: ResourceType, id: string): Promise<StoredItem | undefined> {
      const key = resourceKey(prefix, type, id);
      const kv = await readKv(key);
      return kv === null ? undefined : decode(key, kv);
    },

    async list(type: ResourceType): Promise<Listing> {
      const res = await run('range', (client) => client.getAll().prefix(resourceDir(prefix, type)).exec());
      const items: ListedItem[] = [];
      for (const kv of res.kvs) {
        // parseKey rejects the `<prefix>/<type>/` placeholder and nested keys; decode rejects non-JSON values.
        const parsed = parseKey(prefix, kv.key.toString('utf8'));
        if (parsed === undefined || parsed.type !== type) continue;
        const item = decode(kv.key.toString('utf8'), toKnown(kv));
        if (item !== undefined) items.push({ id: parsed.id, ...item });
      }
      return { items, revision: Number(res.header.revision) };
    },

    put(type: ResourceType, id: string, build: BuildValue): Promise<PutResult> {
      const key = resourceKey(prefix, type, id);
      return lanes.run(key, async (lane) => {
        let current = lane.known === undefined ? await readKv(key) : lane.known;
        for (let attempt = 1; attempt <= PUT_ATTEMPTS; attempt++) {
          // build runs outside `run`: what it throws (a validation error, say) reaches the caller unchanged.
          const plan = await build(current === null ? undefined : decode(key, current));
          const text = JSON.stringify(plan.value);
          if (typeof text !== 'string') throw new TypeError(`cannot store ${String(plan.value)} at ${key}: not JSON`);
          // create_revision == 0 means "the key does not exist": the write must not overwrite a concurrent create.
          const self = current === null ? absent(key) : unchanged(key, current.modRevision);
          const put: IRequestOp = { request_put: { key: Buffer.from(key), value: Buffer.from(text) } };
          const done = await commit(key, [self, ...(plan.preconditions ?? []).map(toCompare)], put);
          if (done.res.succeeded) {
            const revision = done.res.header.revision;
            lane.known = { value: Buffer.from(text), createRevision: current?.createRevision ?? revision, modRevision: revision };
            return { created: current === null, value: plan.value };
          }
          // An earlier attempt that timed out may have been applied: then our value is what the key holds now.
          if (done.ambiguous && done.fresh !== null && done.fresh !== undefined && done.fresh.value.toString('utf8') === text) {
            lane.known = done.fresh;
            return { created: current === null, value: plan.value };
          }
          current = done.fresh ?? null;
          log.debug({ key, attempt }, 'key or precondition changed during write, retrying');
          await sleep(Math.random() * CONFLICT_JITTER_MS * attempt);
        }
        throw new StoreConflict(key);
      });
    },

    delete(type: ResourceType, id: string, check?: CheckDelete): Promise<boolean> {
      const key = resourceKey(prefix, type, id);
      return lanes.run(key, async (lane) => {
        let current = lane.known === undefined ? await readKv(key) : lane.known;
        if (current === null) return false;
        for (let attempt = 1; attempt <= PUT_ATTEMPTS; attempt++) {
          const preconditions = check === undefined ? [] : await check();
          const del: IRequestOp = { request_delete_range: { key: Buffer.from(key) } };
          const done = await commit(key, [unchanged(key, current.modRevision), ...preconditions.map(toCompare)], del);
          if (done.res.succeeded) {
            lane.known = null;
            return true;
          }
          // Gone after an attempt that may have been applied: that attempt deleted it (else another writer did: 404).
          if (done.fresh === null || done.fresh === undefined) return done.ambiguous;
          current = done.fresh;
          log.debug({ key, attempt }, 'key or precondition changed during delete, retrying');
          await sleep(Math.random() * CONFLICT_JITTER_MS * attempt);
        }
        throw new StoreConflict(key);
      });
    },

    async nextId(): Promise<string> {
      const res = await run('put', (client) => client.put(`${prefix}/${GEN_ID_KEY}`).value('1').exec());
      return res.header.revision.padStart(GENERATED_ID_DIGITS, '0');
    },

    async ensureDirs(): Promise<void> {
      for (const type of RESOURCE_TYPES) {
        const dir = resourceDir(prefix, type);
        const res = await run('txn', (client) =>
          client.if(dir, 'Create', '==', 0).then(client.put(dir).value(INIT_DIR_VALUE)).commit(),
        );
        if (res.succeeded) log.info({ key: dir }, 'created etcd directory placeholder');
      }
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      pool.close();
    },
  };
}

interface Commit {
  res: ITxnResponse;
  /** An earlier attempt of this transaction may have been applied (it timed out or broke off on some member). */
  ambiguous: boolean;
  /** After a failed compare: the key as it is now (null: absent). */
  fresh: KnownValue | null | undefined;
}

function toKnown(kv: { value: Buffer; create_revision: string; mod_revision: string }): KnownValue {
  return { value: kv.value, createRevision: kv.create_revision, modRevision: kv.mod_revision };
}

function known(kv: { value: Buffer; create_revision: string; mod_revision: string } | undefined): KnownValue | null {
  return kv === undefined ? null : toKnown(kv);
}

function absent(key: string): ICompare {
  return { key: Buffer.from(key), target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 };
}

function unchanged(key: string, modRevision: string | number): ICompare {
  return { key: Buffer.from(key), target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: modRevision };
}

/** The range end covering every key that starts with `dir` (its last byte plus one, as etcd's prefix ranges). */
function prefixEnd(dir: string): Buffer {
  const end = Buffer.from(dir);
  const last = end.length - 1;
  end[last] = (end[last] ?? 0) + 1;
  return end;
}

function clientOptions(options: EtcdStoreOptions): IOptions {
  // Each attempt on a member gets its own gRPC deadline (member-pool.ts); the call's bound is the pool's.
  const deadline = (): { deadline: number } => ({ deadline: Date.now() + ATTEMPT_TIMEOUT_MS });
  const result: IOptions = {
    hosts: options.hosts, // each member's client replaces this with its one host
    // Watch streams are long-lived by design; only unary calls get a deadline (the control plane opens none).
    defaultCallOptions: (context) => (context.isStream ? {} : deadline()),
    grpcOptions: { ...ETCD_CHANNEL_OPTIONS },
  };
  if (options.username !== undefined && options.password !== undefined) {
    result.auth = { username: options.username, password: options.password, callOptions: deadline };
  }
  const tls = readEtcdTls(options.tls);
  if (tls !== undefined) {
    result.credentials = tls.credentials;
    result.grpcOptions = { ...result.grpcOptions, ...tls.grpcOptions };
  }
  return result;
}
