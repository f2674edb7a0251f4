/**
 * `npm run local-cluster` end to end: the script runs as a child process on free ports with `--replicas 3` and a
 * temporary data folder. Once it prints `ready`, a route PUT through its admin API must route a real grpc-js
 * SayHello through each replica's h2c port to a greeter upstream; limit-count with `policy: redis` against a real
 * redis-server must admit exactly its quota of 100 calls in total whichever replica serves them, and with Redis
 * stopped mid-test follow `allow_degradation`; after one etcd member is killed (the one most watches are on) the
 * admin API must still write and every replica must pick up a changed route; SIGTERM must stop every child, leaving
 * no process and no port behind. A run without the etcd binary must say how to install it.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status as GrpcCode, type Client } from '@grpc/grpc-js';
import { REPO_ROOT } from '../../shared/config.ts';
import { seedRoute } from '../e2e/gateway-fixture.ts';
import { etcdWatchers } from '../helpers/etcd-cluster.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { freePort } from '../helpers/ports.ts';
import { redisCli, startRedis, type RedisProcess } from '../helpers/redis.ts';

const REPLICAS = 3;
/** etcd, the control plane and three replicas. */
const READY_LIMIT_MS = 90_000;
/** A route written through the admin API reaching a replica. */
const ROUTE_LIMIT_MS = 30_000;
/** Replicas drain for up to 10 s; the script SIGKILLs what is left after its own bounds. */
const EXIT_LIMIT_MS = 45_000;
const CALL_DEADLINE_MS = 2_000;
const OUTPUT_TAIL_CHARS = 12_000;

interface Ports {
  etcdClient: number[];
  etcdPeer: number[];
  admin: number;
  h2c: number;
  tls: number;
  status: number;
}

describe('npm run local-cluster', { timeout: 240_000 }, () => {
  let script: ChildProcess | undefined;
  let output = '';
  let exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  let dataDir: string | undefined;
  let ports: Ports | undefined;
  const pids = new Map<string, number>();
  let adminKey = '';
  const nodes: GreeterNode[] = [];
  const clients: Client[] = [];
  let redis: RedisProcess | undefined;

  before(async () => {
    redis = await startRedis();
    ports = await choosePorts();
    dataDir = await mkdtemp(join(tmpdir(), 'gw-local-cluster-'));
    const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn' };
    delete env['NODE_TEST_CONTEXT']; // the runner marks its own children; the script is not one
    const proc = spawn(
      process.execPath,
      [
        'scripts/local-cluster.ts',
        '--replicas', String(REPLICAS),
        '--data-dir', dataDir,
        '--etcd-client-ports', ports.etcdClient.join(','),
        '--etcd-peer-ports', ports.etcdPeer.join(','),
        '--admin-port', String(ports.admin),
        '--h2c-port', String(ports.h2c),
        '--tls-port', String(ports.tls),
        '--status-port', String(ports.status),
      ],
      { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    script = proc;
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
      for (const m of output.matchAll(/^\[local-cluster\] (\S+)\s.*\bpid (\d+)/gm)) {
        if (m[1] !== undefined && m[2] !== undefined) pids.set(m[1], Number(m[2]));
      }
      adminKey = /X-API-KEY: (\S+?)\)/.exec(output)?.[1] ?? adminKey;
    };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    exit = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    let exited = false as boolean; // set by the exit promise, while the loop below awaits
    void exit.then(() => (exited = true));

    const deadline = Date.now() + READY_LIMIT_MS;
    while (!/^\[local-cluster\] ready\b/m.test(output)) {
      if (exited) throw new Error(`the script exited before it was ready:\n${output}`);
      if (Date.now() > deadline) throw new Error(`the script was not ready within ${READY_LIMIT_MS} ms:\n${output}`);
      await sleep(100);
    }
    for (const id of ['node-a', 'node-b']) nodes.push(await startGreeterNode({ id }));
    for (let i = 0; i < REPLICAS; i++) clients.push(greeterClient(`127.0.0.1:${ports.h2c + i}`));
  });

  after(async () => {
    for (const client of clients) client.close();
    for (const node of nodes) await node.close();
    // Whatever a failed test left running: the script first (it stops its children), then any child by pid.
    if (script !== undefined && running(script)) {
      script.kill('SIGTERM');
      await Promise.race([exit, sleep(EXIT_LIMIT_MS, undefined, { ref: false })]);
      if (running(script)) script.kill('SIGKILL');
    }
    for (const pid of pids.values()) {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
    await redis?.close();
  });

  async function admin(method: 'PUT' | 'GET' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    assert.ok(ports !== undefined);
    const res = await fetch(`http://127.0.0.1:${ports.admin}/apisix/admin${path}`, {
      method,
      headers: { 'X-API-KEY': adminKey },
      signal: AbortSignal.timeout(15_000),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
  }

  /** Calls through replica `i` until one is served by `id`; returns the last outcome seen. */
  async function routedTo(i: number, id: string): Promise<string> {
    const client = clients[i];
    assert.ok(client !== undefined);
    const deadline = Date.now() + ROUTE_LIMIT_MS;
    let last = 'no call';
    while (Date.now() < deadline) {
      const r = await sayHello(client, `replica ${i}`, undefined, { deadline: Date.now() + CALL_DEADLINE_MS });
      last = r.status.code === GrpcCode.OK ? `served by ${String(r.servedBy)}: ${String(r.message)}` : `status ${r.status.code} ${r.status.details}`;
      if (r.status.code === GrpcCode.OK && r.servedBy === id && r.message === `Hello replica ${i}`) return last;
      await sleep(100);
    }
    return last;
  }

  test('it prints every address and pid, and a route PUT through its admin API routes SayHello through each replica', async () => {
    const [a] = nodes;
    assert.ok(a !== undefined);
    for (const name of ['etcd-1', 'etcd-2', 'etcd-3', 'admin', ...Array.from({ length: REPLICAS }, (_, i) => `replica-${i}`)]) {
      assert.ok(pids.has(name), `no pid printed for ${name}:\n${output}`);
    }
    assert.notEqual(adminKey, '', `no admin key printed:\n${output}`);
    const put = await admin('PUT', '/routes/1', seedRoute({ [a.address]: 1 }));
    assert.ok(put.status === 200 || put.status === 201, `route PUT failed: ${put.status} ${JSON.stringify(put.body)}`);
    for (let i = 0; i < REPLICAS; i++) {
      assert.equal(await routedTo(i, a.id), `served by ${a.id}: Hello replica ${i}`, `replica ${i} did not route to ${a.id}\n${output}`);
    }
  });

  test('limit-count with policy redis: a quota of 100 admits exactly 100 calls over 3 replicas; Redis stopped follows allow_degradation', async () => {
    const [a] = nodes;
    assert.ok(a !== undefined && redis !== undefined);
    const redisPort = redis.port;
    const limit = (extra: Record<string, unknown>): unknown => ({
      ...(seedRoute({ [a.address]: 1 }) as Record<string, unknown>),
      plugins: { 'limit-count': { count: 100, time_window: 300, key_type: 'constant', key: 'all', policy: 'redis', redis_host: '127.0.0.1', redis_port: redisPort, redis_timeout: 500, ...extra } },
    });
    const put = await admin('PUT', '/routes/1', limit({}));
    assert.ok(put.status === 200 || put.status === 201, `route PUT failed: ${put.status} ${JSON.stringify(put.body)}`);
    // Every replica has the limited route once a call through it carries the quota headers (those calls count too).
    let counted = 0;
    for (let i = 0; i < REPLICAS; i++) {
      const deadline = Date.now() + ROUTE_LIMIT_MS;
      for (;;) {
        const r = await sayHello(clients[i] as Client, 'probe', undefined, { deadline: Date.now() + CALL_DEADLINE_MS });
        if (r.headers?.get('x-ratelimit-limit')[0] === '100') {
          counted++;
          break;
        }
        assert.ok(Date.now() < deadline, `replica ${i} never applied the limit: ${r.status.code} ${r.status.details}\n${output}`);
        await sleep(100);
      }
    }
    const perReplica = Array.from({ length: REPLICAS }, () => ({ ok: 0, exhausted: 0 }));
    for (let n = 0; n < 150; n++) {
      const i = n % REPLICAS;
      const r = await sayHello(clients[i] as Client, `q${n}`, undefined, { deadline: Date.now() + CALL_DEADLINE_MS });
      const tally = perReplica[i] as { ok: number; exhausted: number };
      if (r.status.code === GrpcCode.OK) tally.ok++;
      else {
        assert.equal(r.status.code, GrpcCode.RESOURCE_EXHAUSTED, `${r.status.code} ${r.status.details}`);
        tally.exhausted++;
      }
    }
    const ok = perReplica.reduce((sum, t) => sum + t.ok, 0);
    assert.equal(counted + ok, 100, `exactly the quota passed in total: ${JSON.stringify(perReplica)} after ${counted} probes`);
    assert.ok(perReplica.every((t) => t.ok > 0), `every replica served some of the quota: ${JSON.stringify(perReplica)}`);
    assert.equal(redisCli(redis.port, 'get', 'limit-count:routes/1:all').trim(), String(150 + counted));

    await redis.stop();
    try {
      for (let i = 0; i < REPLICAS; i++) {
        const r = await sayHello(clients[i] as Client, 'down', undefined, { deadline: Date.now() + CALL_DEADLINE_MS });
        assert.equal(r.status.code, GrpcCode.UNAVAILABLE, `replica ${i}: fail closed (${r.status.details})`);
        assert.match(r.status.details, /^rate limit store unavailable/);
      }
      const open = await admin('PUT', '/routes/1', limit({ allow_degradation: true }));
      assert.equal(open.status, 200);
      for (let i = 0; i < REPLICAS; i++) {
        const deadline = Date.now() + ROUTE_LIMIT_MS;
        let r = await sayHello(clients[i] as Client, 'open', undefined, { deadline: Date.now() + CALL_DEADLINE_MS });
        while (r.status.code !== GrpcCode.OK && Date.now() < deadline) {
          await sleep(100);
          r = await sayHello(clients[i] as Client, 'open', undefined, { deadline: Date.now() + CALL_DEADLINE_MS });
        }
        assert.equal(r.status.code, GrpcCode.OK, `replica ${i}: fail open (${r.status.details})`);
        assert.equal(r.message, 'Hello open');
      }
    } finally {
      await redis.start();
    }
    assert.equal((await admin('PUT', '/routes/1', seedRoute({ [a.address]: 1 }))).status, 200);
  });

  test('with one etcd member killed, the admin API still writes and every replica follows a changed route', async (t) => {
    assert.ok(ports !== undefined);
    const [, b] = nodes;
    assert.ok(b !== undefined);
    // The member most watches are on (each replica holds one), so that at least one replica must resume elsewhere.
    const watchers = await Promise.all(ports.etcdClient.map((port) => etcdWatchers(`http://127.0.0.1:${port}`)));
    const index = watchers.reduce<number>((best, n, i) => ((n ?? 0) > (watchers[best] ?? 0) ? i : best), 0);
    const victim = `etcd-${index + 1}`;
    const pid = pids.get(victim);
    assert.ok(pid !== undefined);
    t.diagnostic(`watches per member: ${JSON.stringify(watchers)}; killing ${victim} (pid ${pid})`);
    process.kill(pid, 'SIGKILL');
    const deadline = Date.now() + 10_000;
    while (!output.includes(`${victim} exited`) && Date.now() < deadline) await sleep(50);
    assert.match(output, new RegExp(`${victim} exited \\(signal SIGKILL\\); 2 of 3 etcd members running; the cluster keeps quorum`));

    const put = await admin('PUT', '/routes/1', seedRoute({ [b.address]: 1 }));
    assert.ok(put.status === 200 || put.status === 201, `route PUT after the kill failed: ${put.status} ${JSON.stringify(put.body)}\n${output}`);
    const got = await admin('GET', '/routes/1');
    assert.equal(got.status, 200, `route GET after the kill failed: ${JSON.stringify(got.body)}`);
    assert.deepEqual((got.body as { value?: { upstream?: { nodes?: unknown } } }).value?.upstream?.nodes, { [b.address]: 1 });
    for (let i = 0; i < REPLICAS; i++) {
      assert.equal(
        await routedTo(i, b.id),
        `served by ${b.id}: Hello replica ${i}`,
        `replica ${i} did not follow the route change after ${victim} was killed\n${output}`,
      );
    }
    assert.equal(script?.exitCode, null, 'the script exited after an etcd member died');
  });

  test('SIGTERM stops every child: no process and no port is left', async () => {
    assert.ok(script !== undefined && exit !== undefined && ports !== undefined);
    script.kill('SIGTERM');
    // An unref'd timer: the bound must not keep the test process alive once the script has exited.
    const result = await Promise.race([exit, sleep(EXIT_LIMIT_MS, undefined, { ref: false }).then(() => undefined)]);
    assert.ok(result !== undefined, `the script did not exit within ${EXIT_LIMIT_MS} ms of SIGTERM:\n${output}`);
    assert.deepEqual(result, { code: 0, signal: null }, output);
    assert.match(output, /^\[local-cluster\] stopped$/m);
    const { h2c, tls, status } = ports;
    const left = [...pids].filter(([, pid]) => alive(pid)).map(([name, pid]) => `${name} (pid ${pid})`);
    assert.deepEqual(left, [], 'children still running after the script exited');
    const all = [
      ...ports.etcdClient,
      ...ports.etcdPeer,
      ports.admin,
      ...Array.from({ length: REPLICAS }, (_, i) => [h2c + i, tls + i, status + i]).flat(),
    ];
    const busy: number[] = [];
    for (const port of all) if (!(await canListen(port))) busy.push(port);
    assert.deepEqual(busy, [], 'ports still in use after the script exited');
  });
});

test('npm run local-cluster without an etcd binary says how to install it and exits 1', async () => {
  const bin = mkdtempSync(join(tmpdir(), 'gw-noetcd-'));
  try {
    symlinkSync(process.execPath, join(bin, 'node'));
    const result = spawnSync(process.execPath, ['scripts/local-cluster.ts'], {
      cwd: REPO_ROOT,
      env: { PATH: bin },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(result.status, 1, result.stdout + result.stderr);
    assert.match(result.stdout, /etcd binary is not installed.*apt-get install etcd-server/);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});

/** The child has not exited yet. */
function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Binding the wildcard address fails if anything listens on the port on any address (Linux). */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '0.0.0.0', () => server.close(() => resolve(true)));
  });
}

/** Free ports for everything the script listens on; each replica base needs REPLICAS consecutive free ports. */
async function choosePorts(): Promise<Ports> {
  const taken = new Set<number>();
  const single = async (): Promise<number> => {
    for (;;) {
      const port = await freePort();
      if (!taken.has(port) && (await canListen(port))) {
        taken.add(port);
        return port;
      }
    }
  };
  const run = async (): Promise<number> => {
    for (let attempt = 0; attempt < 100; attempt++) {
      const base = await freePort();
      const range = Array.from({ length: REPLICAS }, (_, i) => base + i);
      if (range.some((p) => taken.has(p) || p > 65_535)) continue;
      const free = await Promise.all(range.map((p) => canListen(p)));
      if (free.every(Boolean)) {
        for (const p of range) taken.add(p);
        return base;
      }
    }
    throw new Error(`no ${REPLICAS} consecutive free ports found`);
  };
  return {
    etcdClient: [await single(), await single(), await single()],
    etcdPeer: [await single(), await single(), await single()],
    admin: await single(),
    h2c: await run(),
    tls: await run(),
    status: await run(),
  };
}
