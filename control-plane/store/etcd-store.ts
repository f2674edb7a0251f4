/**
 * The control plane's etcd store: the only module of the control plane that imports etcd3. It reads and writes
 * APISIX's layout (`<prefix>/<type>/<id>` = JSON text, `<prefix>/<type>/` = the `init_dir` placeholder,
 * apisix-compat §3.1) and turns every etcd failure into StoreUnavailable, which the admin API answers with 503.
 *
 * Writes are compare-and-swap transactions on the key's revision, as APISIX's `atomic_set`, so two admins writing
 * the same key cannot silently lose an update that `build` derived from (e.g. `create_time`, or the fields a PATCH
 * kept). The caller's preconditions join the same transaction: `item` compares one key's mod_revision, and
 * `unchanged-since` compares the greatest mod_revision of a whole directory (etcd's range compare, 3.3+), which is
 * how a delete proves that no referrer appeared after it scanned for them.
 */
import { CompareResult, CompareTarget, Etcd3, type ICompare, type IKeyValue, type IOptions, type IRequestOp } from 'etcd3';
import { GatewayError, StoreConflict, StoreUnavailable, describe } from '../../shared/errors.ts';
import { RESOURCE_TYPES, normalizePrefix, parseKey, resourceDir, resourceKey, type ResourceType } from '../../shared/etcd-keys.ts';
import type { EtcdTlsConfig } from '../../shared/config.ts';
import { ETCD_CHANNEL_OPTIONS, readEtcdTls } from '../../shared/etcd-tls.ts';
import type { Logger } from '../../shared/logger.ts';
import type { BuildValue, CheckDelete, ListedItem, Listing, Precondition, PutResult, ResourceStore, StoredItem } from './resource-store.ts';

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
 * 30 s default. etcd3 1.1.2 declares `dialTimeout` but never reads it, so the bound is a gRPC deadline on every
 * unary call plus the same bound on the whole operation (etcd3 retries recoverable errors, which would multiply
 * the per-call deadline).
 */
const MAX_CALL_TIMEOUT_MS = 5_000;

/**
 * Compare-and-swap attempts before a write gives up with StoreConflict; each one re-reads the key. APISIX gives up
 * at the first conflict (503 `value changed before overwritten`); retrying makes that rare under real contention.
 */
const PUT_ATTEMPTS = 8;

/** The key APISIX's `etcd.push` writes to draw a new id from the cluster revision. */
const GEN_ID_KEY = 'gen_id';
/** APISIX formats generated ids as `%020d`. */
const GENERATED_ID_DIGITS = 20;

export function createEtcdStore(options: EtcdStoreOptions): ResourceStore {
  const prefix = normalizePrefix(options.prefix);
  const log = options.log.child({ module: 'etcd-store' });
  const callTimeoutMs = Math.max(1, Math.min(options.timeoutMs, MAX_CALL_TIMEOUT_MS));
  const client = new Etcd3(clientOptions(options, callTimeoutMs));
  let closed = false;

  /** Runs one etcd operation under the deadline; any failure of etcd or of the client becomes StoreUnavailable. */
  async function run<T>(op: string, call: () => Promise<T>): Promise<T> {
    if (closed) throw new StoreUnavailable(new Error('the store is closed'));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`etcd did not answer within ${callTimeoutMs} ms`)), callTimeoutMs);
      timer.unref();
    });
    try {
      return await Promise.race([call(), deadline]);
    } catch (err) {
      if (err instanceof GatewayError) throw err;
      const error = new StoreUnavailable(new Error(`${options.hosts.join(', ')}: ${explain(err)}`, { cause: err }));
      log.warn({ op, hosts: options.hosts, err: error.message }, 'etcd operation failed');
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  async function readKv(key: string): Promise<IKeyValue | undefined> {
    const res = await run('range', () => client.get(key).exec());
    return res.kvs[0];
  }

  function decode(kv: IKeyValue): StoredItem | undefined {
    let value: unknown;
    try {
      value = JSON.parse(kv.value.toString('utf8'));
    } catch {
      log.warn({ key: kv.key.toString('utf8'), revision: kv.mod_revision }, 'value is not JSON, ignored');
      return undefined;
    }
    return { value, createRevision: Number(kv.create_revision), modRevision: Number(kv.mod_revision) };
  }

  /** One transaction: `op` if every comparison holds. False when one did not (a concurrent change). */
  async function commit(compare: ICompare[], op: IRequestOp): Promise<boolean> {
    const res = await run('txn', () => client.kv.txn({ compare, success: [op], failure: [] }));
    return res.succeeded;
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
      const kv = await readKv(resourceKey(prefix, type, id));
      return kv === undefined ? undefined : decode(kv);
    },

    async list(type: ResourceType): Promise<Listing> {
      const res = await run('range', () => client.getAll().prefix(resourceDir(prefix, type)).exec());
      const items: ListedItem[] = [];
      for (const kv of res.kvs) {
        // parseKey rejects the `<prefix>/<type>/` placeholder and nested keys; decode rejects non-JSON values.
        const parsed = parseKey(prefix, kv.key.toString('utf8'));
        if (parsed === undefined || parsed.type !== type) continue;
        const item = decode(kv);
        if (item !== undefined) items.push({ id: parsed.id, ...item });
      }
      return { items, revision: Number(res.header.revision) };
    },

    async put(type: ResourceType, id: string, build: BuildValue): Promise<PutResult> {
      const key = resourceKey(prefix, type, id);
      for (let attempt = 1; attempt <= PUT_ATTEMPTS; attempt++) {
        const current = await readKv(key);
        // build runs outside `run`: what it throws (a validation error, say) reaches the caller unchanged.
        const plan = await build(current === undefined ? undefined : decode(current));
        const text = JSON.stringify(plan.value);
        if (typeof text !== 'string') throw new TypeError(`cannot store ${String(plan.value)} at ${key}: not JSON`);
        // create_revision == 0 means "the key does not exist": the write must not overwrite a concurrent create.
        const self = current === undefined ? absent(key) : unchanged(key, current.mod_revision);
        const put: IRequestOp = { request_put: { key: Buffer.from(key), value: Buffer.from(text) } };
        if (await commit([self, ...(plan.preconditions ?? []).map(toCompare)], put)) {
          return { created: current === undefined, value: plan.value };
        }
        log.debug({ key, attempt }, 'key or precondition changed during write, retrying');
      }
      throw new StoreConflict(key);
    },

    async delete(type: ResourceType, id: string, check?: CheckDelete): Promise<boolean> {
      const key = resourceKey(prefix, type, id);
      for (let attempt = 1; attempt <= PUT_ATTEMPTS; attempt++) {
        const current = await readKv(key);
        if (current === undefined) return false;
        const preconditions = check === undefined ? [] : await check();
        const del: IRequestOp = { request_delete_range: { key: Buffer.from(key) } };
        if (await commit([unchanged(key, current.mod_revision), ...preconditions.map(toCompare)], del)) return true;
        log.debug({ key, attempt }, 'key or precondition changed during delete, retrying');
      }
      throw new StoreConflict(key);
    },

    async nextId(): Promise<string> {
      const res = await run('put', () => client.put(`${prefix}/${GEN_ID_KEY}`).value('1').exec());
      return String(res.header.revision).padStart(GENERATED_ID_DIGITS, '0');
    },

    async ensureDirs(): Promise<void> {
      for (const type of RESOURCE_TYPES) {
        const dir = resourceDir(prefix, type);
        const res = await run('txn', () =>
          client.if(dir, 'Create', '==', 0).then(client.put(dir).value(INIT_DIR_VALUE)).commit(),
        );
        if (res.succeeded) log.info({ key: dir }, 'created etcd directory placeholder');
      }
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      client.close();
    },
  };
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

/** etcd3's errors in words an operator can act on. */
function explain(err: unknown): string {
  // etcd3 stops calling a host for a few seconds after consecutive failures (a cockatiel circuit breaker); its
  // error says only "circuit breaker is open", which hides that the host itself is the problem.
  if (typeof err === 'object' && err !== null && 'isBrokenCircuitError' in err) {
    return 'not reachable (recent calls failed; the next attempt is in a few seconds)';
  }
  return describe(err);
}

function clientOptions(options: EtcdStoreOptions, callTimeoutMs: number): IOptions {
  const deadline = (): { deadline: number } => ({ deadline: Date.now() + callTimeoutMs });
  const result: IOptions = {
    hosts: options.hosts,
    dialTimeout: callTimeoutMs, // unread by etcd3 1.1.2 (see MAX_CALL_TIMEOUT_MS), set for a version that reads it
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
