/**
 * Redis for the plugins' shared policies (limit-count `policy: redis` / `redis-cluster`): one client per server (or
 * cluster) and credentials in a process, shared by every route that names them, opened when a snapshot first needs
 * it and closed once no snapshot in service does (retain). ioredis is loaded on first use, so a gateway that never
 * names Redis never loads it.
 *
 * Every operation settles within the policy's `redis_timeout` and never rejects: it resolves to the result or to an
 * Error, and the plugin then follows `allow_degradation`. The bound is one timer per operation, ours (ioredis's
 * commandTimeout would be a second one, and does not cover a cluster's queue before it is ready). A store that was
 * connected and lost its connection answers at once with an Error until it is back (ioredis reconnects in the
 * background), so an outage costs calls no wait; a store still making its first connection queues the operation,
 * within the same bound.
 */
import { createRequire } from 'node:module';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { describe } from '../../shared/errors.ts';
import { parseRedisNode } from '../../shared/limit-key.ts';
import type { Logger } from '../../shared/logger.ts';
import type { LimitCountConf } from '../../shared/schema/plugin-policies.ts';

const DEFAULT_PORT = 6379;
const DEFAULT_TIMEOUT_MS = 1000;
/** Reconnection back-off: 50 ms more per attempt, at most 2 s between attempts. */
const RETRY_STEP_MS = 50;
const RETRY_MAX_MS = 2000;
/** Operations one store lets wait for Redis at once: beyond, calls are answered as if Redis were down. */
const MAX_WAITING = 10_000;

/**
 * The fixed window, atomically: the first call of a window sets the key's count to 1 with the window as its expiry;
 * later calls increment it. Returns the calls counted in the window (this one included) and its milliseconds left.
 * Counting calls rather than what is left means a changed `count` applies to the window under way.
 */
const COUNT_LUA = `
local ttl = redis.call('pttl', KEYS[1])
if ttl < 0 then
  redis.call('set', KEYS[1], 1, 'PX', ARGV[1])
  return {1, tonumber(ARGV[1])}
end
return {redis.call('incr', KEYS[1]), ttl}`;

type Client = (Redis | Cluster) & {
  gatewayCount(key: string, windowMs: number): Promise<[number, number]>;
};

export type RedisPolicyConf = Pick<
  LimitCountConf,
  | 'policy'
  | 'redis_host'
  | 'redis_port'
  | 'redis_username'
  | 'redis_password'
  | 'redis_database'
  | 'redis_ssl'
  | 'redis_ssl_verify'
  | 'redis_timeout'
  | 'redis_cluster_nodes'
  | 'redis_cluster_name'
  | 'redis_cluster_ssl'
  | 'redis_cluster_ssl_verify'
>;

export class RedisStore {
  /** The connection's identity (servers, credentials, database, TLS, timeout). */
  readonly id: string;
  /** What logs name: the server or the cluster, never the password. */
  readonly label: string;
  readonly timeoutMs: number;
  private readonly client: Client;
  private everReady = false;
  private down = false;
  /** close() was called: the connection's end is ours, not an outage. */
  private closed = false;
  /** Operations sent and not answered yet (bounded by MAX_WAITING). */
  private waiting = 0;
  private readonly log: Logger;

  constructor(id: string, conf: RedisPolicyConf, log: Logger) {
    this.id = id;
    this.timeoutMs = conf.redis_timeout ?? DEFAULT_TIMEOUT_MS;
    const ioredis = loadIoredis();
    const retryStrategy = (times: number): number => Math.min(times * RETRY_STEP_MS, RETRY_MAX_MS);
    let client: Redis | Cluster;
    if (conf.policy === 'redis-cluster') {
      const nodes = (conf.redis_cluster_nodes ?? []).map((node) => {
        const parsed = parseRedisNode(node);
        if (parsed === undefined) throw new Error(`redis_cluster_nodes: "${node}" is not host:port`);
        return parsed;
      });
      this.label = `redis-cluster ${conf.redis_cluster_name ?? ''} (${(conf.redis_cluster_nodes ?? []).join(', ')})`;
      client = new ioredis.Cluster(nodes, {
        clusterRetryStrategy: retryStrategy,
        enableOfflineQueue: true,
        enableAutoPipelining: true,
        slotsRefreshTimeout: this.timeoutMs,
        redisOptions: {
          ...credentials(conf),
          connectTimeout: this.timeoutMs,
          ...(conf.redis_cluster_ssl === true ? { tls: { rejectUnauthorized: conf.redis_cluster_ssl_verify === true } } : {}),
        },
      });
    } else {
      const host = conf.redis_host ?? '127.0.0.1';
      const port = conf.redis_port ?? DEFAULT_PORT;
      this.label = `redis ${host}:${String(port)}/${String(conf.redis_database ?? 0)}`;
      client = new ioredis.Redis({
        host,
        port,
        db: conf.redis_database ?? 0,
        ...credentials(conf),
        connectTimeout: this.timeoutMs,
        maxRetriesPerRequest: 0,
        enableOfflineQueue: true,
        enableAutoPipelining: true,
        retryStrategy,
        ...(conf.redis_ssl === true ? { tls: { rejectUnauthorized: conf.redis_ssl_verify === true } } : {}),
      });
    }
    client.defineCommand('gatewayCount', { numberOfKeys: 1, lua: COUNT_LUA });
    this.client = client as Client;
    this.log = log.child({ module: 'redis', store: this.label });
    // Without an 'error' listener a refused connection would be an uncaught exception.
    client.on('error', (err: Error) => this.lost(err));
    client.on('ready', () => {
      this.everReady = true;
      if (this.down) this.log.info('Redis reachable again');
      this.down = false;
    });
    client.on('end', () => this.lost(new Error('connection closed')));
  }

  /** Whether operations are answered now (false while a store that was connected is reconnecting). */
  get connected(): boolean {
    return this.client.status === 'ready';
  }

  /**
   * One call in the fixed window `key` of `windowMs`: [calls counted in the window, this one included; milliseconds
   * until it ends], or the Error that kept Redis from answering in time.
   */
  count(key: string, windowMs: number): Promise<[number, number] | Error> {
    if (this.everReady && this.client.status !== 'ready') return Promise.resolve(new Error(`${this.label} is unreachable`));
    if (this.waiting >= MAX_WAITING) return Promise.resolve(new Error(`${this.label}: ${String(MAX_WAITING)} operations already wait for it`));
    this.waiting++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        resolve(new Error(`${this.label} did not answer within ${String(this.timeoutMs)} ms`));
        this.stalled();
      }, this.timeoutMs);
      this.client.gatewayCount(key, windowMs).then(
        (result) => {
          this.waiting--;
          clearTimeout(timer);
          resolve(result);
        },
        (err: unknown) => {
          this.waiting--;
          clearTimeout(timer);
          resolve(err instanceof Error ? err : new Error(describe(err)));
        },
      );
    });
  }

  /**
   * An operation timed out: Redis is taken as down (a server that accepts and never answers, or one slower than
   * the policy allows). The connection is dropped, which fails what waits on it (so nothing piles up behind a
   * frozen server), and made again in the background; calls fail at once until it is ready.
   */
  private stalled(): void {
    if (this.client.status !== 'ready' || !this.everReady) return; // already down, or still making its first connection
    this.lost(new Error(`no answer within ${String(this.timeoutMs)} ms`));
    this.client.disconnect(true);
  }

  close(): void {
    this.closed = true;
    this.client.disconnect();
  }

  private lost(err: Error): void {
    if (this.down || this.closed) return; // once per outage, not once per reconnection attempt, nor for our close
    this.down = true;
    this.log.warn({ err: err.message }, 'Redis unreachable: limit-count follows allow_degradation until it is back');
  }
}

/** The process's Redis stores, by connection identity. */
export class RedisStores {
  private readonly stores = new Map<string, RedisStore>();
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log;
  }

  get size(): number {
    return this.stores.size;
  }

  /** The store for `conf`'s connection, opened now if no route uses it yet. */
  get(conf: RedisPolicyConf): RedisStore {
    const id = JSON.stringify([
      conf.policy,
      conf.redis_host,
      conf.redis_port ?? DEFAULT_PORT,
      conf.redis_database ?? 0,
      conf.redis_username,
      conf.redis_password,
      conf.redis_ssl,
      conf.redis_ssl_verify,
      conf.redis_timeout ?? DEFAULT_TIMEOUT_MS,
      conf.redis_cluster_nodes,
      conf.redis_cluster_name,
      conf.redis_cluster_ssl,
      conf.redis_cluster_ssl_verify,
    ]);
    let store = this.stores.get(id);
    if (store === undefined) {
      store = new RedisStore(id, conf, this.log);
      this.stores.set(id, store);
    }
    return store;
  }

  /** Closes the stores not in `inUse` (after a snapshot swap: those only replaced routes used). */
  retain(inUse: ReadonlySet<RedisStore>): void {
    for (const [id, store] of this.stores) {
      if (inUse.has(store)) continue;
      this.stores.delete(id);
      store.close();
    }
  }

  close(): void {
    for (const store of this.stores.values()) store.close();
    this.stores.clear();
  }
}

function credentials(conf: RedisPolicyConf): Pick<RedisOptions, 'username' | 'password'> {
  return {
    ...(conf.redis_username === undefined ? {} : { username: conf.redis_username }),
    ...(conf.redis_password === undefined ? {} : { password: conf.redis_password }),
  };
}

type IoredisModule = typeof import('ioredis');
let ioredisModule: IoredisModule | undefined;

/** ioredis (CommonJS) on first use: a worker without Redis policies never loads it. */
function loadIoredis(): IoredisModule {
  ioredisModule ??= createRequire(import.meta.url)('ioredis') as IoredisModule;
  return ioredisModule;
}
