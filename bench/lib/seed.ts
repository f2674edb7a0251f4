/**
 * Bulk configuration written straight into etcd, shaped as the admin API stores it (`id` inside the value), in
 * transactions of at most ETCD_MAX_TXN_OPS puts (etcd's default --max-txn-ops). Routes alternate between an inline
 * upstream and an `upstream_id` reference to one of a few shared upstream objects, as real configurations mix both.
 */
import { Etcd3, type IRequestOp } from 'etcd3';

/** etcd refuses transactions with more operations than this by default. */
const ETCD_MAX_TXN_OPS = 128;
/** Transactions in flight at once while seeding. */
const SEED_CONCURRENCY = 4;

export interface SeedOptions {
  routes: number;
  /** Shared upstream objects the referencing routes spread over. */
  upstreams: number;
  /** The node every upstream points at. */
  node: string;
  prefix?: string;
}

export function seededRouteValue(i: number, options: SeedOptions): Record<string, unknown> {
  const id = String(i);
  const uri = `/svc${i}.S/M`;
  if (i % 2 === 1 && options.upstreams > 0) return { uri, upstream_id: `u${i % options.upstreams}`, id };
  return { uri, upstream: { type: 'roundrobin', scheme: 'grpc', nodes: { [options.node]: 1 } }, id };
}

/** Writes the upstreams, then the routes; returns the number of keys written. */
export async function seedEtcd(endpoint: string, options: SeedOptions): Promise<number> {
  const prefix = options.prefix ?? '/apisix';
  const client = new Etcd3({ hosts: endpoint });
  const put = (key: string, value: unknown): IRequestOp => ({
    request_put: { key: Buffer.from(key), value: Buffer.from(JSON.stringify(value)) },
  });
  try {
    const upstreams: IRequestOp[] = [];
    for (let u = 0; u < options.upstreams; u++) {
      upstreams.push(put(`${prefix}/upstreams/u${u}`, { type: 'roundrobin', scheme: 'grpc', nodes: { [options.node]: 1 }, id: `u${u}` }));
    }
    const routes: IRequestOp[] = [];
    for (let i = 0; i < options.routes; i++) routes.push(put(`${prefix}/routes/${i}`, seededRouteValue(i, options)));
    await writeBatches(client, upstreams);
    await writeBatches(client, routes);
    return upstreams.length + routes.length;
  } finally {
    client.close();
  }
}

async function writeBatches(client: Etcd3, ops: readonly IRequestOp[]): Promise<void> {
  const batches: IRequestOp[][] = [];
  for (let i = 0; i < ops.length; i += ETCD_MAX_TXN_OPS) batches.push(ops.slice(i, i + ETCD_MAX_TXN_OPS));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < batches.length) {
      const batch = batches[next++];
      if (batch !== undefined) await client.kv.txn({ compare: [], success: batch, failure: [] });
    }
  };
  await Promise.all(Array.from({ length: SEED_CONCURRENCY }, worker));
}
