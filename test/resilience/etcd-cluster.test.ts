/**
 * The gateway against a real 3-member etcd cluster that loses one member while unary calls flow (docs/architecture.md:
 * "etcd is the distributed engine: a 3-member cluster in production"). The control plane (buildApp on a real port)
 * and an in-process data plane are both configured with all three client URLs, as `deployment.etcd.host` lists them.
 *
 * Each phase kills (SIGKILL) the member the data plane's watch stream is on, found through etcd's own
 * `etcd_debugging_mvcc_watcher_total` gauge: etcd3 picks a random host per call and per watch stream, so "the first
 * host in the list" need not be the one in use, and killing a member nobody watches would prove nothing about the
 * watch. With calls flowing the whole time, the phase checks that:
 *
 * - the admin API keeps answering PUT and GET (two of three members keep quorum; etcd3 retries another host): not
 *   one failure when a follower dies, and no more than 503s during the election when the leader dies,
 * - a route changed through the admin API after the kill reaches the data plane (its watch moved to a surviving
 *   member): new calls are served by the new node and /readyz reports `config_stale: false` again,
 * - no call fails.
 *
 * Phase (b) restarts the first victim on its data dir and then kills the member holding the watch by then.
 * Every wait is bounded; timings are printed as diagnostics, never asserted.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status as GrpcCode, type Client } from '@grpc/grpc-js';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { buildApp } from '../../control-plane/app.ts';
import { createEtcdStore } from '../../control-plane/store/etcd-store.ts';
import type { ResourceStore } from '../../control-plane/store/resource-store.ts';
import { startDataPlane, type DataPlane } from '../../data-plane/data-plane.ts';
import { parseConfig } from '../../shared/config.ts';
import { seedRoute } from '../e2e/gateway-fixture.ts';
import { makeCert } from '../helpers/certs.ts';
import { startEtcdCluster, type EtcdCluster, type EtcdMember } from '../helpers/etcd-cluster.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';

const ADMIN_KEY = 'etcd-cluster-admin-key-7c1e';
const ROUTE_ID = 'cluster-1';
/** Set-up waits: the first route reaching the data plane, the watch showing up on a member. */
const SETUP_LIMIT_MS = 20_000;
/** The changed route must reach the data plane within this after it was written. */
const CATCH_UP_LIMIT_MS = 30_000;
/** /readyz must report the watch live again (config_stale false) within this after the kill. */
const WATCH_LIVE_LIMIT_MS = 30_000;
/** Admin requests made after a kill, each a PUT of a probe upstream followed by a GET of it. */
const ADMIN_ROUNDS = 5;
/** One admin request; the store answers 503 within its own 5 s bound, so this only catches a hang. */
const ADMIN_REQUEST_LIMIT_MS = 15_000;
/** How long a 503 (no leader yet) is retried after the leader was killed. */
const ADMIN_RETRY_LIMIT_MS = 20_000;
const ADMIN_RETRY_PAUSE_MS = 200;
/** Calls that must be served by the new node once the route changed, so that the change is not a single fluke. */
const CALLS_ON_NEW_NODE = 20;
/** Bounds of the background call loop. */
const MAX_CALLS = 50_000;
const CALL_LOOP_LIMIT_MS = 120_000;
const CALL_PAUSE_MS = 5;
const CALL_DEADLINE_MS = 2_000;
const LOG_TAIL_LINES = 60;

describe('a 3-member etcd cluster loses a member while calls flow', { timeout: 240_000 }, () => {
  let cluster: EtcdCluster | undefined;
  let store: ResourceStore | undefined;
  let app: FastifyInstance | undefined;
  let dataPlane: DataPlane | undefined;
  let client: Client | undefined;
  const nodes: GreeterNode[] = [];
  const logs = logCapture();
  let adminUrl = '';
  let statusUrl = '';
  /** The member killed in phase (a), restarted in phase (b). */
  let firstVictim: EtcdMember | undefined;

  before(async () => {
    cluster = await startEtcdCluster();
    const log = logs.logger;
    const config = parseConfig(
      `
apisix:
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { listen: [{ ip: 127.0.0.1, port: 0 }] }
  status: { ip: 127.0.0.1, port: 0 }
nginx_config: { worker_processes: 1 }
deployment:
  admin:
    admin_listen: { ip: 127.0.0.1, port: 0 }
    admin_key: [{ name: admin, key: ${ADMIN_KEY}, role: admin }]
  etcd: { host: ["http://127.0.0.1:1"], prefix: /apisix, timeout: 5 }
`,
      // All three members, in member order, the way an operator lists them.
      { GATEWAY_ETCD_HOSTS: cluster.endpoints.join(',') },
    );
    assert.deepEqual(config.etcd.hosts, cluster.endpoints);
    store = createEtcdStore({ ...config.etcd, log });
    app = buildApp({ store, log, config });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const adminAddress = app.server.address();
    assert.ok(adminAddress !== null && typeof adminAddress === 'object');
    adminUrl = `http://127.0.0.1:${adminAddress.port}/apisix/admin`;
    dataPlane = await startDataPlane({ config, log, defaultCert: await makeCert({ sans: ['localhost'] }) });
    const status = dataPlane.statusAddress;
    assert.ok(status !== undefined, 'the status server is off');
    statusUrl = `http://127.0.0.1:${status.port}`;
    const h2c = dataPlane.addresses.find((a) => a.kind === 'h2c');
    assert.ok(h2c !== undefined, 'no h2c listener');
    for (const id of ['node-a', 'node-b', 'node-c']) nodes.push(await startGreeterNode({ id }));
    client = greeterClient(`127.0.0.1:${h2c.port}`);
  });

  after(async () => {
    client?.close();
    await dataPlane?.close();
    await app?.close();
    await store?.close();
    for (const node of nodes) await node.close();
    await cluster?.close();
  });

  /** PUT/GET through the admin API with the key; a request that hangs fails after ADMIN_REQUEST_LIMIT_MS. */
  async function admin(method: 'PUT' | 'GET', path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    const res = await fetch(`${adminUrl}${path}`, {
      method,
      headers: { 'X-API-KEY': ADMIN_KEY, 'content-type': 'application/json' },
      signal: AbortSignal.timeout(ADMIN_REQUEST_LIMIT_MS),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
  }

  async function readyz(): Promise<{ status: number; configStale: unknown }> {
    const res = await fetch(`${statusUrl}/readyz`, { signal: AbortSignal.timeout(2_000) });
    const body = (await res.json()) as { config_stale?: unknown };
    return { status: res.status, configStale: body.config_stale };
  }

  async function diagnostics(): Promise<string> {
    return `cluster:\n${(await cluster?.describe()) ?? '(none)'}\nlast log lines:\n${logs.tail(LOG_TAIL_LINES)}`;
  }

  /** The running member with the most watches open: the data plane's (the control plane does not watch). */
  async function watchHolder(exclude?: EtcdMember): Promise<EtcdMember | undefined> {
    assert.ok(cluster !== undefined);
    let best: { member: EtcdMember; watchers: number } | undefined;
    for (const member of cluster.members) {
      if (!member.running || member === exclude) continue;
      const watchers = (await member.watchers()) ?? 0;
      if (watchers > 0 && (best === undefined || watchers > best.watchers)) best = { member, watchers };
    }
    return best?.member;
  }

  /**
   * One phase: kill `victim` with calls flowing, then check admin writes and reads, move route ROUTE_ID from `from`
   * to `to` and check that calls reach `to`, that the watch is live again, and that no call failed.
   */
  async function loseMember(t: TestContext, victim: EtcdMember, from: GreeterNode, to: GreeterNode): Promise<void> {
    assert.ok(client !== undefined);
    const grpc = client;
    const wasLeader = await victim.isLeader();
    const loop = startCallLoop(grpc);
    try {
      await runPhase(t, loop, victim, wasLeader, from, to);
    } finally {
      await loop.stop(); // idempotent: an assertion inside must not leave calls running
    }
  }

  async function runPhase(
    t: TestContext,
    loop: CallLoop,
    victim: EtcdMember,
    wasLeader: boolean | undefined,
    from: GreeterNode,
    to: GreeterNode,
  ): Promise<void> {
    await loop.waitServedBy(from.id, 1, SETUP_LIMIT_MS, 'calls before the kill');

    const killedAt = Date.now();
    await victim.kill();

    // The admin API keeps writing and reading. Killing a follower must not cost a single request. Killing the leader
    // leaves the cluster without one for an election (~1-2 s, and a proposal caught in flight waits out etcd's 7 s
    // request timeout, longer than the store's 5 s bound): a 503 then is the documented answer, so only a 503 is
    // retried, and only within ADMIN_RETRY_LIMIT_MS; every attempt is reported.
    const adminOps: string[] = [];
    const adminFailures: string[] = [];
    let retried = 0;
    const adminUntilDone = async (
      method: 'PUT' | 'GET',
      path: string,
      body: unknown,
      accept: (res: { status: number; body: unknown }) => boolean,
    ): Promise<{ status: number; body: unknown } | undefined> => {
      const deadline = Date.now() + ADMIN_RETRY_LIMIT_MS;
      for (let attempt = 1; ; attempt++) {
        const at = Date.now() - killedAt;
        let res: { status: number; body: unknown } | undefined;
        let problem: string;
        try {
          res = await admin(method, path, body);
          adminOps.push(`${at} ms ${method} ${path} ${res.status}`);
          if (accept(res)) return res;
          problem = `${res.status} ${JSON.stringify(res.body)}`;
        } catch (err) {
          adminOps.push(`${at} ms ${method} ${path} threw`);
          problem = err instanceof Error ? err.message : String(err);
        }
        const retryable = res === undefined || res.status === 503;
        if (!retryable || Date.now() > deadline) {
          adminFailures.push(`${at} ms ${method} ${path} (attempt ${attempt}): ${problem}`);
          return undefined;
        }
        retried++;
        await sleep(ADMIN_RETRY_PAUSE_MS);
      }
    };
    for (let round = 0; round < ADMIN_ROUNDS; round++) {
      const desc = `after killing ${victim.name}, round ${round}`;
      const probe = { type: 'roundrobin', nodes: { [from.address]: 1 }, desc };
      await adminUntilDone('PUT', '/upstreams/cluster-probe', probe, (r) => r.status === 200 || r.status === 201);
      await adminUntilDone('GET', '/upstreams/cluster-probe', undefined, (r) => {
        return r.status === 200 && (r.body as { value?: { desc?: unknown } } | undefined)?.value?.desc === desc;
      });
    }

    // A route change made after the kill: written through the admin API, it reaches the data plane only through
    // its watch (the data plane reads etcd nowhere else once started), so calls served by `to` prove the watch
    // resumed on a surviving member.
    const put = await adminUntilDone('PUT', `/routes/${ROUTE_ID}`, seedRoute({ [to.address]: 1 }), (r) => r.status === 200 || r.status === 201);
    const changedAt = Date.now();
    let caughtUp: string | undefined;
    try {
      await loop.waitServedBy(to.id, CALLS_ON_NEW_NODE, CATCH_UP_LIMIT_MS, 'calls after the route change');
      caughtUp = `${Date.now() - changedAt} ms after the change`;
    } catch (err) {
      caughtUp = undefined;
      t.diagnostic(err instanceof Error ? err.message : String(err));
    }
    let watchLive: string | undefined;
    const liveDeadline = killedAt + WATCH_LIVE_LIMIT_MS;
    let lastReady = '';
    while (Date.now() < liveDeadline) {
      const r = await readyz();
      lastReady = JSON.stringify(r);
      if (r.status === 200 && r.configStale === false) {
        watchLive = `${Date.now() - killedAt} ms after the kill`;
        break;
      }
      await sleep(100);
    }
    const report = await loop.stop();
    const holderAfter = await watchHolder();
    const diag = await diagnostics();

    t.diagnostic(
      `${victim.name} killed: ${JSON.stringify({
        victimWasLeader: wasLeader,
        calls: report.ok + report.failures.length,
        failed: report.failures.length,
        servedBy: report.servedBy,
        adminOps,
        adminRetries: retried,
        newNodeServing: caughtUp ?? 'never',
        watchLiveSeen: watchLive ?? 'never',
        watchNowOn: holderAfter?.name ?? 'no member',
        watchTrail: logs.watchTrail(killedAt),
      })}`,
    );

    assert.ok(report.ok > 0, 'no call succeeded during the phase');
    assert.deepEqual(report.failures.slice(0, 10), [], `${report.failures.length} of ${report.ok + report.failures.length} calls failed\n${diag}`);
    assert.deepEqual(adminFailures, [], `admin requests failed after killing ${victim.name}: ${adminOps.join('; ')}\n${diag}`);
    assert.ok(put !== undefined, `the route change was not accepted\n${diag}`);
    if (wasLeader === false) {
      assert.equal(retried, 0, `killing a follower (${victim.name}) made admin requests answer 503: ${adminOps.join('; ')}\n${diag}`);
    }
    assert.ok(
      caughtUp !== undefined,
      `WATCH DID NOT FAIL OVER: the route changed after ${victim.name} was killed did not reach the data plane within ` +
        `${CATCH_UP_LIMIT_MS} ms (calls still served by ${String(report.lastServedBy)}); the etcd watch did not resume on a ` +
        `surviving member\n${diag}`,
    );
    assert.ok(
      watchLive !== undefined,
      `WATCH DID NOT FAIL OVER: /readyz still reports config_stale ${WATCH_LIVE_LIMIT_MS} ms after ${victim.name} was killed ` +
        `(last: ${lastReady})\n${diag}`,
    );
    assert.ok(holderAfter !== undefined && holderAfter !== victim, `no surviving member holds a watch\n${diag}`);
  }

  test('(a) the member holding the watch is killed: admin writes, route changes and calls go on', { timeout: 110_000 }, async (t) => {
    assert.ok(cluster !== undefined && client !== undefined);
    const [a, b] = nodes;
    assert.ok(a !== undefined && b !== undefined);
    const put = await admin('PUT', `/routes/${ROUTE_ID}`, seedRoute({ [a.address]: 1 }));
    assert.ok(put.status === 200 || put.status === 201, `route PUT failed: ${put.status} ${JSON.stringify(put.body)}`);
    const first = await waitForCall(client, a.id);
    assert.equal(first.servedBy, a.id, `the first route did not reach the data plane: ${JSON.stringify(first)}\n${await diagnostics()}`);

    const holder = await waitForWatchHolder();
    const hostsHead = cluster.members[0];
    t.diagnostic(`data plane watch on ${holder?.name ?? 'unknown'}; first host in the list is ${String(hostsHead?.name)}`);
    // Fall back to the first host in the list (the member clients that do not shuffle would use) if none is found.
    const victim = holder ?? hostsHead;
    assert.ok(victim !== undefined);
    firstVictim = victim;
    await loseMember(t, victim, a, b);
  });

  test('(b) it comes back and another member is killed: the same holds', { timeout: 110_000 }, async (t) => {
    assert.ok(cluster !== undefined && firstVictim !== undefined);
    const [, b, c] = nodes;
    assert.ok(b !== undefined && c !== undefined);
    await firstVictim.start();
    await cluster.waitHealthy();
    const holder = await watchHolder(firstVictim);
    const other = cluster.members.find((m) => m !== firstVictim && m.running);
    const victim = holder ?? other;
    assert.ok(victim !== undefined, `no other running member\n${await diagnostics()}`);
    t.diagnostic(`${firstVictim.name} back; data plane watch on ${holder?.name ?? 'unknown'}; killing ${victim.name}`);
    await loseMember(t, victim, b, c);
  });

  test('(c) the member holding the watch hangs (SIGSTOP): keepalive pings notice and the watch moves on', { timeout: 110_000 }, async (t) => {
    assert.ok(cluster !== undefined && client !== undefined && firstVictim !== undefined);
    const [a, , c] = nodes;
    assert.ok(a !== undefined && c !== undefined);
    for (const member of cluster.members) if (!member.running) await member.start();
    await cluster.waitHealthy();
    // The member the data plane says it watches (its 'watching etcd' log line names the host).
    const watched = logs.lastWatchedHost();
    const holder = cluster.members.find((m) => m.endpoint === watched);
    assert.ok(holder !== undefined, `the data plane logged no watch on a member (last: ${String(watched)})\n${await diagnostics()}`);
    const loop = startCallLoop(client);
    try {
      await loop.waitServedBy(c.id, 1, SETUP_LIMIT_MS, 'calls before the hang');
      const pausedAt = Date.now();
      holder.pause();
      // The admin store may have picked the hung member for a call: it answers 503 within its 5 s bound; retry.
      let put: { status: number; body: unknown } | undefined;
      const attempts: string[] = [];
      while (Date.now() - pausedAt < ADMIN_RETRY_LIMIT_MS * 2) {
        try {
          put = await admin('PUT', `/routes/${ROUTE_ID}`, seedRoute({ [a.address]: 1 }));
          attempts.push(`${Date.now() - pausedAt} ms: ${put.status}`);
          if (put.status === 200 || put.status === 201) break;
        } catch (err) {
          attempts.push(`${Date.now() - pausedAt} ms: ${err instanceof Error ? err.message : String(err)}`);
        }
        await sleep(ADMIN_RETRY_PAUSE_MS);
      }
      assert.ok(put !== undefined && (put.status === 200 || put.status === 201), `the route change was not accepted: ${attempts.join('; ')}`);
      // Keepalive: a ping every 10 s unanswered for 5 s closes the channel; then the watch resumes elsewhere.
      try {
        await loop.waitServedBy(a.id, CALLS_ON_NEW_NODE, 45_000, 'calls after the route change with the watch holder hung');
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        assert.fail(`${why}\nhung: ${holder.name}; admin attempts: ${attempts.join('; ')}\ntrail: ${JSON.stringify(logs.watchTrail(pausedAt))}\n${await diagnostics()}`);
      }
      const caughtUpMs = Date.now() - pausedAt;
      const report = await loop.stop();
      t.diagnostic(`${holder.name} hung; admin attempts ${attempts.join('; ')}; change served ${caughtUpMs} ms after the hang; trail ${JSON.stringify(logs.watchTrail(pausedAt))}`);
      assert.deepEqual(report.failures.slice(0, 10), [], `${report.failures.length} calls failed`);
    } finally {
      holder.resume();
      await loop.stop();
    }
  });

  /** Calls until one is served by `id` (the route reached the data plane), bounded. */
  async function waitForCall(grpc: Client, id: string): Promise<{ servedBy: string | undefined; status: number }> {
    const deadline = Date.now() + SETUP_LIMIT_MS;
    let last = { servedBy: undefined as string | undefined, status: -1 };
    while (Date.now() < deadline) {
      const r = await sayHello(grpc, 'setup', undefined, { deadline: Date.now() + CALL_DEADLINE_MS });
      last = { servedBy: r.servedBy, status: r.status.code };
      if (r.status.code === GrpcCode.OK && r.servedBy === id) return last;
      await sleep(50);
    }
    return last;
  }

  async function waitForWatchHolder(): Promise<EtcdMember | undefined> {
    const deadline = Date.now() + SETUP_LIMIT_MS;
    while (Date.now() < deadline) {
      const holder = await watchHolder();
      if (holder !== undefined) return holder;
      await sleep(100);
    }
    return undefined;
  }
});

interface LoopReport {
  ok: number;
  failures: string[];
  servedBy: Record<string, number>;
  lastServedBy: string | undefined;
}

interface CallLoop {
  /** Resolves once `count` more calls (counted from now) were served by `id`; throws after `limitMs`. */
  waitServedBy(id: string, count: number, limitMs: number, what: string): Promise<void>;
  stop(): Promise<LoopReport>;
}

/** Sequential unary SayHello calls through the gateway until stop() (or its own bounds), each checked. */
function startCallLoop(client: Client): CallLoop {
  let running = true as boolean; // cleared by stop(), while the loop awaits
  let ok = 0;
  const failures: string[] = [];
  const servedBy = new Map<string, number>();
  let lastServedBy: string | undefined;
  const started = Date.now();
  const done = (async () => {
    for (let i = 0; running && i < MAX_CALLS && Date.now() - started < CALL_LOOP_LIMIT_MS; i++) {
      const r = await sayHello(client, `call ${i}`, undefined, { deadline: Date.now() + CALL_DEADLINE_MS });
      if (r.status.code === GrpcCode.OK && r.message === `Hello call ${i}`) {
        ok++;
        lastServedBy = r.servedBy;
        servedBy.set(String(r.servedBy), (servedBy.get(String(r.servedBy)) ?? 0) + 1);
      } else {
        failures.push(`call ${i} at ${Date.now() - started} ms: status ${r.status.code} ${r.status.details}, message ${String(r.message)}`);
      }
      await sleep(CALL_PAUSE_MS);
    }
  })();
  return {
    async waitServedBy(id, count, limitMs, what) {
      const base = servedBy.get(id) ?? 0;
      const deadline = Date.now() + limitMs;
      while ((servedBy.get(id) ?? 0) - base < count) {
        if (!running || Date.now() > deadline) {
          throw new Error(`${what}: ${(servedBy.get(id) ?? 0) - base} of ${count} calls served by ${id} within ${limitMs} ms (last: ${String(lastServedBy)})`);
        }
        await sleep(20);
      }
    },
    async stop() {
      running = false;
      await done;
      return { ok, failures, servedBy: Object.fromEntries(servedBy), lastServedBy };
    },
  };
}

/** A pino logger at info level whose lines are kept in memory, for failure messages and the watch's trail. */
function logCapture(): { logger: Logger; tail(lines: number): string; watchTrail(since: number): string[]; lastWatchedHost(): string | undefined } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString().split('\n').filter((l) => l !== ''));
      if (lines.length > 1_000) lines.splice(0, lines.length - 1_000);
      callback();
    },
  });
  return {
    logger: pino({ level: 'info' }, sink),
    tail: (n) => lines.slice(-n).join('\n'),
    lastWatchedHost() {
      for (let i = lines.length - 1; i >= 0; i--) {
        const line = lines[i] ?? '';
        if (!line.includes('"watching etcd"')) continue;
        return (JSON.parse(line) as { host?: string }).host;
      }
      return undefined;
    },
    /** What the data plane's etcd source logged since `since`, as `+<ms> <msg> [error]`. */
    watchTrail(since) {
      const trail: string[] = [];
      for (const line of lines) {
        let entry: { time?: number; module?: string; msg?: string; error?: string };
        try {
          entry = JSON.parse(line) as typeof entry;
        } catch {
          continue;
        }
        if (entry.module !== 'etcd-source' || entry.time === undefined || entry.time < since) continue;
        trail.push(`+${entry.time - since} ${entry.msg ?? ''}${entry.error === undefined ? '' : ` (${entry.error})`}`);
      }
      return trail;
    },
  };
}
