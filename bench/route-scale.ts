/**
 * Route scale (issue #5's proof): what 10,000 routes cost a data plane.
 *
 *   (a) start: ROUTES routes (and 100 shared upstreams; odd routes name one by `upstream_id`, even ones carry
 *       theirs inline) are written straight into etcd as the admin API stores them; then a data plane process is
 *       started and timed until it answers gRPC, against the same etcd with an empty prefix as the baseline. An
 *       in-process breakdown times the range read, the decode + validation (ConfigStore.replaceAll) and the first
 *       buildSnapshot.
 *   (b) one change at ROUTES routes: in-process, the data plane's own steps for one watch event (decode + validate,
 *       commit, buildSnapshot) for three kinds of change; then an in-process data plane against etcd, from an etcd
 *       put to Snapshots.onSwap; then end to end through processes, admin PUT → routed (bench/lib/propagation-run.ts).
 *   (c) Router.match per call at 10 and ROUTES routes, exact (`/svc<i>.S/M`) and prefix (`/svc<i>.S/*`) uris:
 *       ns/op of a tight loop over 1024 request paths after a warm-up, the median of several rounds.
 *
 *   node bench/route-scale.ts [--routes 10000] [--changes 200] [--e2e-changes 100] [--rounds 5]
 *                                          [--only a,b,c]
 *
 * Prints markdown tables (medians, and p99 where it is a distribution). Goals: one change rebuilt in < 20 ms at
 * 10,000 routes. Exits non-zero on errors only.
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { ConfigStore, type RawKeyValue } from '../data-plane/config/config-state.ts';
import { buildSnapshot, type Snapshot } from '../data-plane/config/snapshots.ts';
import { startDataPlane } from '../data-plane/data-plane.ts';
import { Router, type RouteEntry } from '../data-plane/routing/router.ts';
import { parseConfig } from '../shared/config.ts';
import { silentLogger } from '../shared/logger.ts';
import type { RouteConf } from '../shared/schema/route.ts';
import { makeCert } from '../test/helpers/certs.ts';
import { startEtcd, type EtcdProcess } from '../test/helpers/etcd.ts';
import { startOkUpstream, type OkUpstream } from './lib/grpc.ts';
import { spawnControlPlane, spawnDataPlane, type BenchProcess } from './lib/processes.ts';
import { measurePropagation } from './lib/propagation-run.ts';
import { seedEtcd, seededRouteValue, type SeedOptions } from './lib/seed.ts';
import { fmt, markdownTable, median, summarize } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    routes: { type: 'string', default: '10000' },
    changes: { type: 'string', default: '200' },
    'e2e-changes': { type: 'string', default: '100' },
    rounds: { type: 'string', default: '5' },
    only: { type: 'string' },
  },
});
const ROUTES = positiveInt(values.routes, '--routes');
const CHANGES = positiveInt(values.changes, '--changes');
const E2E_CHANGES = positiveInt(values['e2e-changes'], '--e2e-changes');
const ROUNDS = positiveInt(values.rounds, '--rounds');
/** `--only a,b,c` runs some parts. */
const PARTS = new Set((values.only ?? 'a,b,c').split(','));
const SHARED_UPSTREAMS = 100;
/** Changes this far apart are isolated for the data plane's rebuild throttle (data-plane.ts). */
const ISOLATED_CHANGE_GAP_MS = 50;
const log = silentLogger();

console.log(`Route scale: ${ROUTES} routes, node ${process.version}, ${availableParallelism()} cores\n`);
let failed = false;
try {
  if (PARTS.has('c')) matchCost();
  if (PARTS.has('b')) rebuildInProcess();
  if (PARTS.has('a') || PARTS.has('b')) await withEtcd();
} catch (err) {
  failed = true;
  console.error(err instanceof Error ? err.stack ?? err.message : err);
}
process.exitCode = failed ? 1 : 0;

// ---------------------------------------------------------------------------------------------------------------
// (c) Router.match

function matchCost(): void {
  const rows: string[][] = [];
  for (const kind of ['exact', 'prefix'] as const) {
    for (const n of [10, ROUTES]) {
      const router = new Router(routeEntries(n, kind));
      const hits: { path: string; method: string; authority: string | undefined }[] = [];
      for (let k = 0; k < 1024; k++) {
        const i = (k * 7919) % n;
        hits.push({ path: kind === 'exact' ? `/svc${i}.S/M` : `/svc${i}.S/Method${k}`, method: 'POST', authority: '127.0.0.1:9081' });
      }
      const misses = hits.map((r, k) => ({ ...r, path: `/nomatch${k}.S/M` }));
      const hit = nsPerMatch(router, hits, true);
      const miss = nsPerMatch(router, misses, false);
      rows.push([kind, String(n), fmt(hit, 0), fmt(miss, 0)]);
    }
  }
  console.log('### (c) Router.match per call\n');
  console.log(markdownTable(['uris', 'routes', 'hit ns/op', 'miss ns/op'], rows));
  console.log(`\nmedian of ${ROUNDS} rounds of ≥ 50 ms each after a warm-up; miss = no route (answered UNIMPLEMENTED)\n`);
}

function routeEntries(n: number, kind: 'exact' | 'prefix'): RouteEntry<number>[] {
  const entries: RouteEntry<number>[] = [];
  for (let i = 0; i < n; i++) {
    const route: RouteConf = { uri: kind === 'exact' ? `/svc${i}.S/M` : `/svc${i}.S/*`, upstream: { nodes: { '127.0.0.1:1': 1 } } };
    entries.push({ id: String(i), route, target: i });
  }
  return entries;
}

function nsPerMatch(router: Router<number>, requests: readonly { path: string; method: string; authority: string | undefined }[], expectHit: boolean): number {
  const mask = requests.length - 1; // a power of two
  let sink = 0;
  const run = (iterations: number): number => {
    const started = process.hrtime.bigint();
    for (let k = 0; k < iterations; k++) {
      const request = requests[k & mask];
      if (request === undefined) continue;
      const entry = router.match(request);
      sink += entry === undefined ? 1 : entry.target;
    }
    return Number(process.hrtime.bigint() - started) / iterations;
  };
  // Warm-up, then size the rounds to about 50 ms each.
  let iterations = 10_000;
  while (run(iterations) * iterations < 50e6 && iterations < 1e8) iterations *= 2;
  const samples: number[] = [];
  for (let r = 0; r < ROUNDS; r++) samples.push(run(iterations));
  const found = router.match(requests[0] ?? { path: '', method: 'POST', authority: undefined }) !== undefined;
  if (found !== expectHit) throw new Error(`router ${expectHit ? 'missed' : 'matched'} ${requests[0]?.path ?? ''}`);
  if (sink === -1) console.log(sink); // keeps the loop's result alive
  return median(samples);
}

// ---------------------------------------------------------------------------------------------------------------
// (b) one change, in-process: decode + validate, commit, buildSnapshot

function rebuildInProcess(): void {
  const seed: SeedOptions = { routes: ROUTES, upstreams: SHARED_UPSTREAMS, node: '127.0.0.1:1' };
  let revision = 1;
  const kv = (key: string, value: unknown): RawKeyValue => ({
    key: Buffer.from(key),
    value: Buffer.from(JSON.stringify(value)),
    mod_revision: String(revision++),
  });
  const kvs: RawKeyValue[] = [];
  for (let u = 0; u < SHARED_UPSTREAMS; u++) kvs.push(kv(`/apisix/upstreams/u${u}`, sharedUpstream(u, seed.node, 1)));
  for (let i = 0; i < ROUTES; i++) kvs.push(kv(`/apisix/routes/${i}`, seededRouteValue(i, seed)));

  const startup = { decode: [] as number[], build: [] as number[] };
  let store = new ConfigStore('/apisix', log);
  let snapshot: Snapshot | undefined;
  for (let r = 0; r < ROUNDS; r++) {
    store = new ConfigStore('/apisix', log);
    const t0 = performance.now();
    const state = store.replaceAll(kvs, String(revision));
    const t1 = performance.now();
    snapshot = buildSnapshot(state, undefined, log);
    const t2 = performance.now();
    startup.decode.push(t1 - t0);
    startup.build.push(t2 - t1);
  }
  if (snapshot === undefined) throw new Error('no snapshot');

  type Kind = 'add a route' | "change a route's inline upstream" | 'change a shared upstream (50 routes)';
  const kinds: Kind[] = ['add a route', "change a route's inline upstream", 'change a shared upstream (50 routes)'];
  const samples = new Map<Kind, { apply: number[]; commit: number[]; build: number[]; total: number[] }>();
  for (const kind of kinds) samples.set(kind, { apply: [], commit: [], build: [], total: [] });
  const warmup = 20;
  for (let c = 0; c < CHANGES + warmup; c++) {
    for (const kind of kinds) {
      let change: RawKeyValue;
      if (kind === 'add a route') {
        change = kv(`/apisix/routes/new-${c}`, { uri: `/added${c}.S/M`, upstream: { nodes: { [seed.node]: 1 } } });
      } else if (kind === "change a route's inline upstream") {
        const i = ((c * 7919) % (ROUTES / 2)) * 2; // even routes carry theirs inline
        change = kv(`/apisix/routes/${i}`, { uri: `/svc${i}.S/M`, upstream: { type: 'roundrobin', scheme: 'grpc', nodes: { [seed.node]: 2 + c } } });
      } else {
        const u = c % SHARED_UPSTREAMS;
        change = kv(`/apisix/upstreams/u${u}`, sharedUpstream(u, seed.node, 2 + c));
      }
      const t0 = performance.now();
      store.applyPut(change);
      const t1 = performance.now();
      const state = store.commit(change.mod_revision);
      const t2 = performance.now();
      if (state === undefined) throw new Error('a change did not change the state');
      snapshot = buildSnapshot(state, snapshot, log);
      const t3 = performance.now();
      if (c >= warmup) {
        const s = samples.get(kind);
        s?.apply.push(t1 - t0);
        s?.commit.push(t2 - t1);
        s?.build.push(t3 - t2);
        s?.total.push(t3 - t0);
      }
    }
  }
  console.log(`### (a, b) in-process: first load and one change at ${ROUTES} routes\n`);
  const rows: string[][] = [
    ['first load: decode + validate (replaceAll)', fmt(median(startup.decode)), '', '', ''],
    ['first load: buildSnapshot', fmt(median(startup.build)), '', '', ''],
  ];
  for (const [kind, s] of samples) {
    const total = summarize(s.total);
    rows.push([`change: ${kind}`, fmt(median(s.apply), 3), fmt(median(s.commit), 3), fmt(median(s.build), 3), `${fmt(total.p50)} / ${fmt(total.p99)}`]);
  }
  console.log(markdownTable(['ms (median)', 'applyPut', 'commit', 'buildSnapshot', 'total p50 / p99'], rows));
  console.log(
    `\nfirst load: median of ${ROUNDS} rounds; changes: ${CHANGES} of each kind after ${warmup} warm-up. applyPut is the ` +
      "watch event's decode + validation and the copy-on-write of the changed type's map; commit freezes the state.\n",
  );
}

function sharedUpstream(u: number, node: string, weight: number): Record<string, unknown> {
  return { type: 'roundrobin', scheme: 'grpc', nodes: { [node]: weight }, id: `u${u}` };
}

// ---------------------------------------------------------------------------------------------------------------
// (a) start, (b) watch → swap and PUT → routed, against a real etcd

async function withEtcd(): Promise<void> {
  const etcd = await startEtcd();
  const upstream = await startOkUpstream();
  try {
    const seedStarted = performance.now();
    await seedEtcd(etcd.endpoint, { routes: ROUTES, upstreams: SHARED_UPSTREAMS, node: upstream.address });
    console.log(`(seeded ${ROUTES} routes and ${SHARED_UPSTREAMS} upstreams into etcd in ${fmt(performance.now() - seedStarted, 0)} ms)\n`);
    if (PARTS.has('a')) await startupTimes(etcd);
    if (PARTS.has('b')) {
      await watchToSwap(etcd, upstream);
      await endToEnd(etcd, upstream);
    }
  } finally {
    await upstream.close();
    await etcd.close();
  }
}

async function startupTimes(etcd: EtcdProcess): Promise<void> {
  const spawnMs = { empty: [] as number[], full: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const which of ['empty', 'full'] as const) {
      const started = performance.now();
      const plane = await spawnDataPlane(etcd.endpoint, which === 'empty' ? { env: { GATEWAY_ETCD_PREFIX: '/empty' } } : {});
      spawnMs[which].push(performance.now() - started);
      await plane.stop();
    }
  }
  const range: number[] = [];
  const decode: number[] = [];
  const build: number[] = [];
  const client = new Etcd3({ hosts: etcd.endpoint, grpcOptions: { 'grpc.max_receive_message_length': -1 } });
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const t0 = performance.now();
      const res = await client.getAll().prefix('/apisix/').exec();
      const t1 = performance.now();
      const state = new ConfigStore('/apisix', log).replaceAll(res.kvs, res.header.revision);
      const t2 = performance.now();
      buildSnapshot(state, undefined, log);
      const t3 = performance.now();
      range.push(t1 - t0);
      decode.push(t2 - t1);
      build.push(t3 - t2);
    }
  } finally {
    client.close();
  }
  const empty = median(spawnMs.empty);
  const full = median(spawnMs.full);
  console.log(`### (a) start with ${ROUTES} routes in etcd\n`);
  console.log(
    markdownTable(
      ['ms (median)', 'value'],
      [
        ['data plane process: spawn → serving, empty prefix', fmt(empty, 0)],
        [`data plane process: spawn → serving, ${ROUTES} routes`, fmt(full, 0)],
        [`difference: the cost of ${ROUTES} routes at start`, fmt(full - empty, 0)],
        ['in-process: range read of the prefix (etcd3 getAll)', fmt(median(range), 1)],
        ['in-process: decode + validate (ConfigStore.replaceAll)', fmt(median(decode), 1)],
        ['in-process: first buildSnapshot', fmt(median(build), 1)],
      ],
    ),
  );
  console.log(`\nmedian of ${ROUNDS} rounds; the process times include node's start-up and the listeners\n`);
}

async function watchToSwap(etcd: EtcdProcess, upstream: OkUpstream): Promise<void> {
  const config = parseConfig(`
apisix:
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { enable: false }
deployment:
  etcd: { host: ["${etcd.endpoint}"], prefix: /apisix, timeout: 5 }
`);
  const plane = await startDataPlane({ config, log, defaultCert: await makeCert({ sans: ['localhost'] }) });
  const client = new Etcd3({ hosts: etcd.endpoint });
  // A watch of our own on the same prefix, in the same process: its event arrives when the data plane's does (same
  // etcd, same event loop), which splits "put → swapped" into etcd + watch delivery and the data plane's own part.
  const watcher = await client.watch().prefix('/apisix/routes/w').create();
  const putMs: number[] = [];
  const eventMs: number[] = [];
  const swapMs: number[] = [];
  const eventToSwapMs: number[] = [];
  try {
    let swapped: (() => void) | undefined;
    let seen: (() => void) | undefined;
    plane.snapshots.onSwap(() => swapped?.());
    watcher.on('put', () => seen?.());
    const warmup = 10;
    for (let c = 0; c < Math.min(CHANGES, 100) + warmup; c++) {
      const onSwap = new Promise<number>((resolve) => {
        swapped = () => resolve(performance.now());
      });
      const onEvent = new Promise<number>((resolve) => {
        seen = () => resolve(performance.now());
      });
      const value = JSON.stringify({ uri: `/watch${c}.S/M`, upstream: { nodes: { [upstream.address]: 1 } }, id: `w${c}` });
      const t0 = performance.now();
      const put = client.put(`/apisix/routes/w${c}`).value(value).exec().then(() => performance.now());
      const [putDone, eventAt, swapAt] = await Promise.all([put, onEvent, onSwap]);
      if (c >= warmup) {
        putMs.push(putDone - t0);
        eventMs.push(eventAt - t0);
        swapMs.push(swapAt - t0);
        eventToSwapMs.push(swapAt - eventAt);
      }
      // Isolated changes: more than the data plane's rebuild throttle interval apart, so none waits for it.
      await sleep(ISOLATED_CHANGE_GAP_MS);
    }
  } finally {
    await watcher.cancel();
    client.close();
    await plane.close();
  }
  const row = (what: string, samples: number[]): string[] => {
    const s = summarize(samples);
    return [what, fmt(s.p50), fmt(s.p90), fmt(s.p99), fmt(s.max)];
  };
  console.log(`### (b) in-process data plane at ${ROUTES} routes: etcd put → Snapshots.onSwap\n`);
  console.log(
    markdownTable(
      ['ms', 'p50', 'p90', 'p99', 'max'],
      [
        row('etcd put round trip', putMs),
        row('etcd put sent → watch event (a watcher of our own)', eventMs),
        row('watch event → new snapshot swapped in', eventToSwapMs),
        row('etcd put sent → new snapshot swapped in', swapMs),
      ],
    ),
  );
  console.log(`\n${putMs.length} changes (a new route each) after 10 warm-up, ${ISOLATED_CHANGE_GAP_MS} ms apart\n`);
}

async function endToEnd(etcd: EtcdProcess, upstream: OkUpstream): Promise<void> {
  const processes: BenchProcess[] = [];
  try {
    const control = await spawnControlPlane(etcd.endpoint);
    processes.push(control);
    const replica = await spawnDataPlane(etcd.endpoint);
    processes.push(replica);
    const result = await measurePropagation({
      adminUrl: control.adminUrl,
      adminKey: control.adminKey,
      replicas: [replica.h2cAddress],
      upstream: upstream.address,
      changes: E2E_CHANGES,
      warmup: 10,
      gapMs: 20,
      pollGapMs: 0,
      idPrefix: 'e2e-',
      limitMs: 10_000,
    });
    const put = summarize(result.put);
    const routed = summarize(result.all);
    console.log(`### (b) end to end at ${ROUTES} routes: admin PUT → routed (1 data plane process)\n`);
    console.log(
      markdownTable(
        ['ms', 'p50', 'p90', 'p99', 'max'],
        [
          ['admin PUT round trip', fmt(put.p50), fmt(put.p90), fmt(put.p99), fmt(put.max)],
          ['PUT sent → first routed call', fmt(routed.p50), fmt(routed.p90), fmt(routed.p99), fmt(routed.max)],
        ],
      ),
    );
    console.log(`\n${E2E_CHANGES} changes (a new route each) after 10 warm-up, back-to-back polling\n`);
  } finally {
    await Promise.all(processes.map((p) => p.stop()));
  }
}

function positiveInt(raw: string | undefined, name: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${String(raw)}`);
  return n;
}
