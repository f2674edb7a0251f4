/**
 * Config propagation (issue #5's proof): how long a change made through the admin API takes to be routed by every
 * data-plane replica. Starts a local etcd, the control plane and REPLICAS data planes as their own processes (one
 * worker each, status port off, LOG_LEVEL=warn) and a raw HTTP/2 gRPC upstream, then makes CHANGES changes, each a
 * new route `/bench.Svc/M<id>` PUT with the admin key, and times from just before the PUT to the first call routed
 * on each replica (see bench/lib/propagation-run.ts). Prints a markdown table and a one-line summary; the goal is
 * p99 < 50 ms to routed everywhere. It exits non-zero on errors only, never on a missed goal.
 *
 *   node bench/propagation.ts [--changes 200] [--replicas 3] [--workers 1] [--warmup 10] [--gap-ms 20] [--routes 0]
 *                                          [--poll-gap-ms 0]
 *
 * `--workers W` runs each replica with W worker processes (the primary follows etcd and relays each change to its
 * workers) and polls each replica over W connections opened one after the other, which the primary's round-robin
 * hands to W different workers: a change counts as routed on a replica once every one of its workers routes it.
 *
 * `--routes N` first writes N routes straight into etcd (bench/lib/seed.ts), to measure propagation at scale.
 * `--poll-gap-ms` pauses between polls (0: back to back). Row (a') repeats the PUTs with nobody polling: on a small
 * machine the pollers compete for CPU with etcd and the control plane, and the difference shows by how much. Row
 * (d) is what follows the admin API's answer (watch delivery, rebuild, the next poll) per change.
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { startEtcd } from '../test/helpers/etcd.ts';
import { startOkUpstream } from './lib/grpc.ts';
import { spawnControlPlane, spawnDataPlane, type BenchProcess, type DataPlaneProcess } from './lib/processes.ts';
import { measurePropagation, measurePutOnly } from './lib/propagation-run.ts';
import { seedEtcd } from './lib/seed.ts';
import { fmt, markdownTable, summarize, type Summary } from './lib/stats.ts';

const GOAL_P99_MS = 50;

const { values } = parseArgs({
  options: {
    changes: { type: 'string', default: '200' },
    replicas: { type: 'string', default: '3' },
    workers: { type: 'string', default: '1' },
    warmup: { type: 'string', default: '10' },
    'gap-ms': { type: 'string', default: '20' },
    routes: { type: 'string', default: '0' },
    'poll-gap-ms': { type: 'string', default: '0' },
  },
});
const changes = positiveInt(values.changes, '--changes');
const replicaCount = positiveInt(values.replicas, '--replicas');
const workerCount = positiveInt(values.workers, '--workers');
const warmup = nonNegativeInt(values.warmup, '--warmup');
const gapMs = nonNegativeInt(values['gap-ms'], '--gap-ms');
const seedRoutes = nonNegativeInt(values.routes, '--routes');
const pollGapMs = nonNegativeInt(values['poll-gap-ms'], '--poll-gap-ms');

const etcd = await startEtcd();
const upstream = await startOkUpstream();
const processes: BenchProcess[] = [];
let failed = false;
try {
  if (seedRoutes > 0) await seedEtcd(etcd.endpoint, { routes: seedRoutes, upstreams: 100, node: upstream.address });
  const control = await spawnControlPlane(etcd.endpoint);
  processes.push(control);
  const replicas: DataPlaneProcess[] = await Promise.all(
    Array.from({ length: replicaCount }, async () => {
      // No per-connection request cap: each poller keeps its one connection, and so its worker, for the whole run.
      const replica = await spawnDataPlane(etcd.endpoint, { env: { GATEWAY_WORKER_PROCESSES: String(workerCount), GATEWAY_KEEPALIVE_REQUESTS: '0' } });
      processes.push(replica);
      return replica;
    }),
  );
  process.stderr.write(`etcd, control plane, ${replicaCount} replica(s) of ${workerCount} worker(s) up; ${warmup} warm-up + ${changes} changes\n`);
  const result = await measurePropagation({
    adminUrl: control.adminUrl,
    adminKey: control.adminKey,
    // One poller per worker: W connections to a replica, made one after the other (measurePropagation opens them in order).
    replicas: replicas.flatMap((r) => Array.from({ length: workerCount }, () => r.h2cAddress)),
    upstream: upstream.address,
    changes,
    warmup,
    gapMs,
    idPrefix: 'bench-',
    pollGapMs,
    limitMs: 10_000,
    onProgress: (done) => {
      if (done % 50 === 0) process.stderr.write(`  ${done}/${changes}\n`);
    },
  });
  const putOnly = await measurePutOnly({
    adminUrl: control.adminUrl,
    adminKey: control.adminKey,
    upstream: upstream.address,
    changes,
    warmup,
    gapMs,
    idPrefix: 'put-only-',
  });
  for (const replica of replicas) {
    if (replica.exited) throw new Error(`a replica exited during the run:\n${replica.output()}`);
  }

  /** Replica r's time per change: its slowest worker's. */
  const replicaTimes = (r: number): number[] =>
    result.all.map((_, change) => Math.max(...Array.from({ length: workerCount }, (_, w) => result.perReplica[r * workerCount + w]?.[change] ?? Number.NaN)));
  const row = (what: string, s: Summary): string[] => [what, fmt(s.p50), fmt(s.p90), fmt(s.p99), fmt(s.max), fmt(s.mean)];
  const all = summarize(result.all);
  const rows = [
    row('(a) admin PUT round trip', summarize(result.put)),
    row("(a') admin PUT round trip, nobody polling", summarize(putOnly)),
    ...replicas.map((_, r) => row(`(b) PUT → routed on replica ${r + 1}${workerCount > 1 ? ` (all ${workerCount} workers)` : ''}`, summarize(replicaTimes(r)))),
    row(`(c) PUT → routed on all ${replicaCount}`, all),
    row('(d) PUT answered → routed on all (c − a per change)', summarize(result.all.map((ms, i) => ms - (result.put[i] ?? 0)))),
  ];
  console.log(
    `\nConfig propagation: ${changes} changes (new route per change), ${replicaCount} data-plane replicas of ${workerCount} worker process(es)` +
      (seedRoutes > 0 ? `, ${seedRoutes} routes seeded` : '') +
      `, node ${process.version}, ${availableParallelism()} cores\n`,
  );
  console.log(markdownTable(['ms', 'p50', 'p90', 'p99', 'max', 'mean'], rows));
  console.log(`\npolls: ${result.polls} calls (${fmt(result.polls / changes / replicaCount / workerCount, 1)} per change and poller)`);
  const verdict = all.p99 < GOAL_P99_MS ? 'meets' : 'MISSES';
  console.log(
    `\nsummary: PUT → routed on all ${replicaCount} replicas p50 ${fmt(all.p50)} ms, p99 ${fmt(all.p99)} ms, max ${fmt(all.max)} ms over ${changes} changes; ${verdict} the goal p99 < ${GOAL_P99_MS} ms`,
  );
} catch (err) {
  failed = true;
  console.error(err instanceof Error ? err.stack ?? err.message : err);
} finally {
  await Promise.all(processes.map((p) => p.stop()));
  await upstream.close();
  await etcd.close();
}
process.exitCode = failed ? 1 : 0;

function positiveInt(raw: string | undefined, name: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${String(raw)}`);
  return n;
}

function nonNegativeInt(raw: string | undefined, name: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${String(raw)}`);
  return n;
}
