/**
 * Config propagation, measured from the outside (issue #5): for each change, a new route `/bench.Svc/M<i>` is PUT
 * through the admin API as curl would send it, and every replica is polled with back-to-back gRPC calls to that
 * path over one persistent HTTP/2 session until a call is routed (the upstream's grpc-status 0 instead of the
 * gateway's UNIMPLEMENTED). Each time is from just before the PUT is sent to the arrival of the first routed
 * answer, so it includes the admin API, the etcd write, the watch, the rebuild and up to one poll round trip.
 *
 * The polls run only while a change is in flight, so the replicas are idle between changes.
 */
import { Agent, request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { GrpcStatus } from '../../shared/grpc-status.ts';
import { openProbe, type GrpcProbe } from './grpc.ts';

export interface PropagationOptions {
  adminUrl: string;
  adminKey: string;
  /** h2c addresses of the replicas to poll. */
  replicas: readonly string[];
  /** The node every new route points at (answers grpc-status 0). */
  upstream: string;
  changes: number;
  /** Changes made first and not counted (JIT, sessions, etcd's first writes). */
  warmup: number;
  /** Pause between changes, so one change's tail does not overlap the next. */
  gapMs: number;
  /** Route ids are `<idPrefix><i>`; a fresh prefix per run keeps runs apart. */
  idPrefix: string;
  /** Pause after each unrouted poll; 0 = back-to-back calls. */
  pollGapMs: number;
  /** A change not routed everywhere within this long is an error. */
  limitMs: number;
  onProgress?: (done: number) => void;
}

export interface PropagationResult {
  /** PUT round trip per change, ms. */
  put: number[];
  /** [replica][change]: PUT sent → first routed answer from that replica, ms. */
  perReplica: number[][];
  /** Per change: PUT sent → routed on every replica (the slowest replica), ms. */
  all: number[];
  /** Calls sent by the pollers, all changes together. */
  polls: number;
}

export async function measurePropagation(options: PropagationOptions): Promise<PropagationResult> {
  const probes: GrpcProbe[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (const address of options.replicas) probes.push(await openProbe(address));
    const result: PropagationResult = { put: [], perReplica: options.replicas.map(() => []), all: [], polls: 0 };
    const total = options.warmup + options.changes;
    for (let i = 0; i < total; i++) {
      const id = `${options.idPrefix}${i}`;
      const path = `/bench.Svc/M${id}`;
      const body = JSON.stringify({
        uri: path,
        upstream: { type: 'roundrobin', scheme: 'grpc', nodes: { [options.upstream]: 1 } },
      });
      const polls = { count: 0 };
      const started = performance.now();
      const put = adminPut(agent, `${options.adminUrl}/routes/${id}`, options.adminKey, body).then((status) => {
        if (status !== 200 && status !== 201) throw new Error(`PUT route ${id} answered ${status}`);
        return performance.now() - started;
      });
      const routed = probes.map((probe) => pollUntilRouted(probe, path, started, options, polls));
      const [putMs, ...replicaMs] = await Promise.all([put, ...routed]);
      if (i >= options.warmup) {
        result.put.push(putMs);
        replicaMs.forEach((ms, r) => result.perReplica[r]?.push(ms));
        result.all.push(Math.max(...replicaMs));
        result.polls += polls.count;
        options.onProgress?.(i - options.warmup + 1);
      }
      if (options.gapMs > 0) await sleep(options.gapMs);
    }
    return result;
  } finally {
    for (const probe of probes) probe.close();
    agent.destroy();
  }
}

/**
 * The same PUTs with nobody polling: the admin API and etcd alone, to tell how much of (a) the pollers' load on a
 * small machine adds.
 */
export async function measurePutOnly(options: Omit<PropagationOptions, 'replicas' | 'limitMs' | 'onProgress' | 'pollGapMs'>): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const samples: number[] = [];
    for (let i = 0; i < options.warmup + options.changes; i++) {
      const id = `${options.idPrefix}${i}`;
      const body = JSON.stringify({
        uri: `/bench.Svc/M${id}`,
        upstream: { type: 'roundrobin', scheme: 'grpc', nodes: { [options.upstream]: 1 } },
      });
      const started = performance.now();
      const status = await adminPut(agent, `${options.adminUrl}/routes/${id}`, options.adminKey, body);
      if (status !== 200 && status !== 201) throw new Error(`PUT route ${id} answered ${status}`);
      if (i >= options.warmup) samples.push(performance.now() - started);
      await sleep(Math.max(options.gapMs, PUT_ONLY_SETTLE_MS));
    }
    return samples;
  } finally {
    agent.destroy();
  }
}

/** Lets the replicas finish applying one PUT before the next, as they would have while being polled. */
const PUT_ONLY_SETTLE_MS = 30;

async function pollUntilRouted(
  probe: GrpcProbe,
  path: string,
  started: number,
  options: Pick<PropagationOptions, 'limitMs' | 'pollGapMs'>,
  polls: { count: number },
): Promise<number> {
  for (;;) {
    const status = await probe.call(path);
    polls.count++;
    const elapsed = performance.now() - started;
    if (status === GrpcStatus.OK) return elapsed;
    if (status !== GrpcStatus.UNIMPLEMENTED) throw new Error(`a call to ${path} answered grpc-status ${status}`);
    if (elapsed > options.limitMs) throw new Error(`${path} was not routed within ${options.limitMs} ms`);
    if (options.pollGapMs > 0) await sleep(options.pollGapMs);
  }
}

/** PUT with a JSON body, the content type curl sends for `-d`, and the admin key; resolves with the HTTP status. */
export function adminPut(agent: Agent, url: string, key: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'PUT',
      agent,
      headers: {
        'X-API-KEY': key,
        'content-type': 'application/x-www-form-urlencoded',
        'content-length': Buffer.byteLength(body),
      },
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
