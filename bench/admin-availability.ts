/**
 * Admin write availability with one of three etcd members frozen (issue #11, case 10; goal: every PUT answered 2xx
 * within 2 s after etcd elects a leader). Starts a real 3-member etcd cluster (test/helpers/etcd-cluster.ts) and, per
 * scenario, a fresh control plane as its own process whose `deployment.etcd.host` lists the victim first (so its
 * first call goes to the member that will hang, the worst case). After WARMUP PUTs the victim gets SIGSTOP (ports
 * open, no answers); then PUTS sequential PUTs of one route, each timed. The victim is resumed (SIGCONT) and the
 * cluster must be healthy again before the next scenario.
 *
 * Per scenario: non-2xx count, per-PUT latency p50/p99/max, time from the freeze to the first 2xx, and for the
 * leader, when a new leader was seen (polled every 50 ms) and the slowest PUT sent after that. A last row sends
 * CONCURRENT PUTs of one key at once with no member frozen (the 1,000 × 503 of the issue) and counts the answers.
 *
 *   node bench/admin-availability.ts [--puts 50] [--warmup 5] [--concurrent 1000]
 *
 * Loopback only, bounded (each PUT 30 s at most, every count capped), everything stopped in `finally`.
 */
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEtcdCluster, type EtcdCluster, type EtcdMember } from '../test/helpers/etcd-cluster.ts';
import { spawnControlPlane, type ControlPlaneProcess } from './lib/processes.ts';
import { fmt, markdownTable, summarize } from './lib/stats.ts';

const MAX_PUTS = 10_000;
const PUT_LIMIT_MS = 30_000;
const LEADER_POLL_MS = 50;
const ELECTION_LIMIT_MS = 20_000;
const ROUTE_ID = 'availability';

const { values } = parseArgs({
  options: {
    puts: { type: 'string', default: '50' },
    warmup: { type: 'string', default: '5' },
    concurrent: { type: 'string', default: '1000' },
  },
});
const puts = boundedInt(values.puts, '--puts', 1);
const warmup = boundedInt(values.warmup, '--warmup', 0);
const concurrent = boundedInt(values.concurrent, '--concurrent', 0);

interface Answer {
  status: number;
  ms: number;
  sentAt: number;
  body: string;
}

async function put(control: ControlPlaneProcess, desc: string): Promise<Answer> {
  const sentAt = performance.now();
  try {
    const res = await fetch(`${control.adminUrl}/routes/${ROUTE_ID}`, {
      method: 'PUT',
      headers: { 'X-API-KEY': control.adminKey, 'content-type': 'application/json' },
      body: JSON.stringify({ uri: '/bench.Availability/*', desc, upstream: { type: 'roundrobin', nodes: { '127.0.0.1:50051': 1 } } }),
      signal: AbortSignal.timeout(PUT_LIMIT_MS),
    });
    const body = await res.text();
    return { status: res.status, ms: performance.now() - sentAt, sentAt, body };
  } catch (err) {
    return { status: 0, ms: performance.now() - sentAt, sentAt, body: err instanceof Error ? err.message : String(err) };
  }
}

const ok = (a: Answer): boolean => a.status >= 200 && a.status < 300;

async function leaderOf(cluster: EtcdCluster): Promise<EtcdMember> {
  const deadline = Date.now() + ELECTION_LIMIT_MS;
  while (Date.now() < deadline) {
    for (const member of cluster.members) if ((await member.isLeader()) === true) return member;
    await sleep(LEADER_POLL_MS);
  }
  throw new Error('no etcd leader');
}

/** Polls the members other than `victim` until one is leader; the time it was first seen, or undefined. */
async function watchElection(cluster: EtcdCluster, victim: EtcdMember, stop: AbortSignal): Promise<number | undefined> {
  const deadline = Date.now() + ELECTION_LIMIT_MS;
  while (!stop.aborted && Date.now() < deadline) {
    for (const member of cluster.members) {
      if (member !== victim && (await member.isLeader()) === true) return performance.now();
    }
    await sleep(LEADER_POLL_MS);
  }
  return undefined;
}

async function scenario(cluster: EtcdCluster, victim: EtcdMember, wasLeader: boolean): Promise<string[]> {
  const hosts = [victim.endpoint, ...cluster.endpoints.filter((e) => e !== victim.endpoint)];
  const control = await spawnControlPlane(hosts.join(','));
  try {
    for (let i = 0; i < warmup; i++) await put(control, `warm-up ${i}`);
    const stop = new AbortController();
    victim.pause();
    const frozenAt = performance.now();
    const election = wasLeader ? watchElection(cluster, victim, stop.signal) : Promise.resolve(undefined);
    const answers: Answer[] = [];
    try {
      for (let i = 0; i < puts; i++) answers.push(await put(control, `write ${i}`));
    } finally {
      victim.resume();
      stop.abort();
    }
    const electedAt = await election;
    await cluster.waitHealthy();
    const first = answers.find(ok);
    const failures = answers.filter((a) => !ok(a));
    for (const f of failures.slice(0, 5)) process.stderr.write(`  ${victim.name}: ${f.status} after ${f.ms.toFixed(0)} ms: ${f.body}\n`);
    const s = summarize(answers.map((a) => a.ms));
    const afterElection = electedAt === undefined ? [] : answers.filter((a) => a.sentAt >= electedAt).map((a) => a.ms);
    return [
      `${wasLeader ? 'leader' : 'follower'} frozen (${victim.name}, listed first)`,
      String(answers.length),
      String(failures.length),
      fmt(s.p50, 1),
      fmt(s.p99, 1),
      fmt(s.max, 1),
      first === undefined ? 'none' : fmt(first.sentAt + first.ms - frozenAt, 0),
      electedAt === undefined ? '–' : fmt(electedAt - frozenAt, 0),
      afterElection.length === 0 ? '–' : fmt(Math.max(...afterElection), 1),
    ];
  } finally {
    await control.stop();
  }
}

async function contention(cluster: EtcdCluster): Promise<string> {
  const control = await spawnControlPlane(cluster.endpoints.join(','));
  try {
    const started = performance.now();
    const answers = await Promise.all(Array.from({ length: concurrent }, (_, i) => put(control, `concurrent ${i}`)));
    const elapsed = performance.now() - started;
    const counts = new Map<number, number>();
    for (const a of answers) counts.set(a.status, (counts.get(a.status) ?? 0) + 1);
    const s = summarize(answers.map((a) => a.ms));
    const statuses = [...counts].sort(([a], [b]) => a - b).map(([status, n]) => `${n} × ${status}`).join(', ');
    return `${concurrent} concurrent PUTs of one key, no member frozen: ${statuses}; all answered in ${fmt(elapsed, 0)} ms ` +
      `(per PUT p50 ${fmt(s.p50, 0)} ms, max ${fmt(s.max, 0)} ms)`;
  } finally {
    await control.stop();
  }
}

const cluster = await startEtcdCluster();
let failed = false;
try {
  process.stderr.write(`3-member etcd cluster up; ${warmup} warm-up + ${puts} sequential PUTs per scenario\n`);
  const rows: string[][] = [];
  const leader = await leaderOf(cluster);
  rows.push(await scenario(cluster, leader, true));
  const current = await leaderOf(cluster);
  const follower = cluster.members.find((m) => m !== current);
  if (follower === undefined) throw new Error('no follower');
  rows.push(await scenario(cluster, follower, false));
  console.log(
    markdownTable(
      ['scenario', 'PUTs', 'non-2xx', 'p50 ms', 'p99 ms', 'max ms', 'freeze → first 2xx ms', 'freeze → new leader ms', 'max ms of PUTs sent after the election'],
      rows,
    ),
  );
  if (concurrent > 0) console.log(`\n${await contention(cluster)}`);
} catch (err) {
  failed = true;
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
} finally {
  for (const member of cluster.members) member.resume();
  await cluster.close();
}
process.exitCode = failed ? 1 : 0;

function boundedInt(text: string, name: string, min: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > MAX_PUTS) throw new Error(`${name}: expected an integer from ${min} to ${MAX_PUTS}`);
  return value;
}
