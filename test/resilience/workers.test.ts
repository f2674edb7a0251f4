/**
 * Issue #5: data-plane worker processes and replicas, as operators run them (`node data-plane/main.ts`
 * in child processes against a real etcd, real @grpc/grpc-js clients, a real greeter upstream).
 *
 * 1. Two workers serve one port: connections are spread over both, the replica holds one etcd watch (the primary's,
 *    counted by etcd itself) and relays each change to both workers, so a route change reaches every connection; the
 *    status port lists both workers.
 * 2. A worker killed with SIGKILL while calls flow: only calls in flight on its connections may fail (at most one
 *    per client, each client making one call at a time), the primary starts a replacement, which gets the current
 *    configuration at once, the other worker keeps its pid, every client is served again, and there is still one
 *    watch.
 * 3. SIGTERM to the primary during a server stream: the stream completes, the primary exits 0, no worker is left.
 * 4. A rolling restart of three replicas (SIGTERM, wait for the exit, start again on the same ports, wait for
 *    /readyz) under a steady unary load from a round-robin client over the three: not one call fails.
 *
 * Every wait is bounded; timings are printed as diagnostics only.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Metadata, status as GrpcCode, type Client } from '@grpc/grpc-js';
import { dataPlaneNodeFlags } from '../../data-plane/node-flags.ts';
import { SERVER_STREAM_REPLIES } from '../../examples/greeter-service.ts';
import { putEtcdJson, spawnChildGateway, type ChildGateway } from '../flow/child-gateway.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { waitUntil } from '../helpers/fake-upstream.ts';
import { DELAY_HEADER, greeterClient, sayHello, sayHelloServerStream, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { freePort } from '../helpers/ports.ts';

const READY_LIMIT_MS = 30_000;
const CALL_DEADLINE_MS = 5_000;
const CLIENTS = 8;

interface WorkerInfo {
  id: number;
  pid: number;
  status: string;
  revision: string | null;
  config_stale: boolean;
}
interface StatusBody {
  status: string;
  revision: string | null;
  workers?: WorkerInfo[];
}

async function readStatus(address: string, path = '/readyz'): Promise<{ code: number; body: StatusBody } | undefined> {
  try {
    const res = await fetch(`http://${address}${path}`);
    return { code: res.status, body: (await res.json()) as StatusBody };
  } catch {
    return undefined;
  }
}

async function waitForStatus(gw: ChildGateway, ok: (body: StatusBody) => boolean, what: string, limitMs = READY_LIMIT_MS): Promise<StatusBody> {
  let last: StatusBody | undefined;
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    const status = await readStatus(gw.statusAddress);
    if (status !== undefined) {
      last = status.body;
      if (status.code === 200 && ok(status.body)) return status.body;
    }
    await sleep(100);
  }
  throw new Error(`${what} within ${limitMs} ms; last status ${JSON.stringify(last)}\n${gw.output()}`);
}

/** etcd's own count of the watchers it serves (a gauge of its /metrics). */
async function etcdWatchers(endpoint: string): Promise<number> {
  const text = await (await fetch(`${endpoint}/metrics`)).text();
  const line = /^etcd_debugging_mvcc_watcher_total (\d+)$/m.exec(text);
  assert.ok(line !== null, 'etcd exports etcd_debugging_mvcc_watcher_total');
  return Number(line[1]);
}

const allServing = (n: number) => (body: StatusBody) => (body.workers ?? []).filter((w) => w.status === 'ok').length === n;

/** Clients that each get their own connection (no subchannel sharing among them). */
function ownClients(address: string, n: number, extra: Record<string, unknown> = {}): Client[] {
  return Array.from({ length: n }, () => greeterClient(address, { channelOptions: { 'grpc.use_local_subchannel_pool': 1, ...extra } }));
}

const deadline = () => ({ deadline: Date.now() + CALL_DEADLINE_MS });

interface Load {
  stop(): Promise<{ ok: number; failed: string[] }>;
}

/** Each client makes one unary call at a time, back to back with a short pause, until stopped. */
function startLoad(clients: readonly Client[], pauseMs = 5): Load {
  let running = true;
  let ok = 0;
  const failed: string[] = [];
  const loops = clients.map(async (client, i) => {
    while (running) {
      const r = await sayHello(client, `load-${i}`, undefined, deadline());
      if (r.status.code === GrpcCode.OK) ok++;
      else failed.push(`client ${i}: ${r.status.code} ${r.status.details}`);
      await sleep(pauseMs);
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return { ok, failed };
    },
  };
}

describe('data-plane worker processes', { timeout: 180_000 }, () => {
  let etcd: EtcdProcess | undefined;
  let nodeA: GreeterNode | undefined;
  let nodeB: GreeterNode | undefined;
  let gateway: ChildGateway | undefined;
  const clients: Client[] = [];

  before(async () => {
    etcd = await startEtcd();
    nodeA = await startGreeterNode({ id: 'A' });
    nodeB = await startGreeterNode({ id: 'B' });
    await putEtcdJson(etcd.endpoint, '/apisix/routes/1', { uri: '/helloworld.Greeter/*', upstream: { scheme: 'grpc', nodes: { [nodeA.address]: 1 } } });
    gateway = await spawnChildGateway(etcd.endpoint, { workers: 2, env: { GATEWAY_SHUTDOWN_TIMEOUT: '10' } });
    await waitForStatus(gateway, allServing(2), 'two workers serving');
  });

  after(async () => {
    for (const client of clients) client.close();
    await gateway?.stop();
    await nodeA?.close();
    await nodeB?.close();
    await etcd?.close();
  });

  test('two workers share the port; the replica holds one etcd watch and both follow it', async (t) => {
    assert.ok(gateway !== undefined && etcd !== undefined && nodeB !== undefined && nodeA !== undefined);
    const gw = gateway;
    const own = ownClients(gw.h2cAddress, CLIENTS);
    clients.push(...own);
    const first = await Promise.all(own.map((c, i) => sayHello(c, `w${i}`, undefined, deadline())));
    assert.deepEqual(first.map((r) => r.servedBy), own.map(() => 'A'), JSON.stringify(first.map((r) => r.status)));

    await putEtcdJson(etcd.endpoint, '/apisix/routes/1', { uri: '/helloworld.Greeter/*', upstream: { scheme: 'grpc', nodes: { [nodeB.address]: 1 } } });
    // Every connection, whichever worker holds it, moves to B: the primary relayed the change to each worker.
    const deadlineAt = Date.now() + READY_LIMIT_MS;
    let servedBy: (string | undefined)[] = [];
    while (Date.now() < deadlineAt) {
      servedBy = (await Promise.all(own.map((c, i) => sayHello(c, `w${i}`, undefined, deadline())))).map((r) => r.servedBy);
      if (servedBy.every((s) => s === 'B')) break;
      await sleep(50);
    }
    assert.deepEqual(servedBy, own.map(() => 'B'));
    const status = await waitForStatus(gw, (b) => new Set((b.workers ?? []).map((w) => w.revision)).size === 1, 'both workers on one revision');
    assert.equal(status.workers?.length, 2);
    assert.deepEqual(new Set(status.workers.map((w) => w.id)), new Set([0, 1]));
    assert.equal(new Set(status.workers.map((w) => w.pid)).size, 2, 'two distinct worker processes');
    assert.ok(!status.workers.some((w) => w.pid === gw.pid), 'the primary proxies nothing itself');
    assert.equal(await etcdWatchers(etcd.endpoint), 1, 'one etcd watcher for the replica, not one per worker');
    // Each worker runs with the data plane's V8 flags (data-plane/node-flags.ts), though the primary was started without.
    for (const w of status.workers ?? []) {
      const argv = readFileSync(`/proc/${w.pid}/cmdline`, 'utf8').split('\0');
      for (const flag of dataPlaneNodeFlags()) assert.ok(argv.includes(flag), `worker ${w.pid} runs without ${flag}: ${argv.join(' ')}`);
    }
    t.diagnostic(`status: ${JSON.stringify(status)}`);
  });

  test('a killed worker is replaced and its peer keeps serving', async (t) => {
    assert.ok(gateway !== undefined);
    const gw = gateway;
    const before = await waitForStatus(gw, allServing(2), 'two workers serving');
    const victim = before.workers?.find((w) => w.id === 0);
    const peer = before.workers?.find((w) => w.id === 1);
    assert.ok(victim !== undefined && peer !== undefined);
    const own = ownClients(gw.h2cAddress, CLIENTS);
    clients.push(...own);
    await Promise.all(own.map((c) => sayHello(c, 'warm', undefined, deadline()))); // connections spread over both
    const load = startLoad(own);
    await sleep(500);
    process.kill(victim.pid, 'SIGKILL');
    const replaced = await waitForStatus(
      gw,
      (b) => allServing(2)(b) && b.workers?.find((w) => w.id === 0)?.pid !== victim.pid,
      'a replacement worker serving',
    );
    await sleep(1_000); // calls go on through the replacement and the peer
    const result = await load.stop();
    t.diagnostic(`killed ${victim.pid}; ${result.ok} calls ok, ${result.failed.length} failed: ${JSON.stringify(result.failed)}; status ${JSON.stringify(replaced)}`);
    assert.equal(replaced.workers?.find((w) => w.id === 1)?.pid, peer.pid, 'the peer worker was not restarted');
    assert.ok(result.failed.length <= CLIENTS, `at most the calls in flight on the killed worker may fail: ${result.failed.length}`);
    assert.ok(result.ok > CLIENTS * 10, `calls kept flowing: ${result.ok}`);
    // Every client is served again afterwards.
    // The replacement started from the current configuration (route 1 on B since the first test), not the first.
    const afterwards = await Promise.all(own.map((c) => sayHello(c, 'after', undefined, deadline())));
    assert.deepEqual(afterwards.map((r) => [r.status.code, r.servedBy]), own.map(() => [0, 'B']));
    assert.ok(etcd !== undefined);
    assert.equal(await etcdWatchers(etcd.endpoint), 1, 'still one etcd watcher');
  });

  test('SIGTERM to the primary: a server stream in flight completes, then every process exits', async (t) => {
    assert.ok(gateway !== undefined);
    const gw = gateway;
    const status = await waitForStatus(gw, allServing(2), 'two workers serving');
    const workerPids = (status.workers ?? []).map((w) => w.pid);
    const [client] = ownClients(gw.h2cAddress, 1);
    assert.ok(client !== undefined);
    clients.push(client);
    // The greeter's server stream, held 4 s by its delay header before its 5 replies: in flight at the SIGTERM.
    const metadata = new Metadata();
    metadata.set(DELAY_HEADER, '4000');
    const stream = sayHelloServerStream(client, 'drain', metadata, { deadline: Date.now() + 30_000 });
    await sleep(1_500);
    process.kill(gw.pid, 'SIGTERM');
    const outcome = await stream;
    t.diagnostic(`stream: ${outcome.messages.length} messages, status ${outcome.status.code} ${outcome.status.details}`);
    assert.equal(outcome.status.code, 0, outcome.status.details);
    assert.equal(outcome.messages.length, SERVER_STREAM_REPLIES);
    await waitUntil(() => gw.exited, 20_000, () => `the primary did not exit\n${gw.output()}`);
    assert.match(gw.output(), /\[gateway exited: code 0, signal null\]/);
    for (const pid of workerPids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `worker ${pid} is gone`);
  });
});

describe('rolling restart of three replicas under load', { timeout: 240_000 }, () => {
  let etcd: EtcdProcess | undefined;
  let node: GreeterNode | undefined;
  const replicas: (ChildGateway | undefined)[] = [];
  const clients: Client[] = [];

  before(async () => {
    etcd = await startEtcd();
    node = await startGreeterNode({ id: 'N' });
    await putEtcdJson(etcd.endpoint, '/apisix/routes/1', { uri: '/helloworld.Greeter/*', upstream: { scheme: 'grpc', nodes: { [node.address]: 1 } } });
    for (let i = 0; i < 3; i++) {
      const ports = { h2c: await freePort(), tls: await freePort(), status: await freePort() };
      const replica = await spawnChildGateway(etcd.endpoint, { ports, env: { GATEWAY_SHUTDOWN_TIMEOUT: '10' } });
      replicas.push(replica);
    }
    for (const replica of replicas) if (replica !== undefined) await waitForStatus(replica, () => true, 'replica ready');
  });

  after(async () => {
    for (const client of clients) client.close();
    for (const replica of replicas) await replica?.stop();
    await node?.close();
    await etcd?.close();
  });

  test('SIGTERM and restart each replica in turn: no unary call fails', async (t) => {
    assert.ok(etcd !== undefined);
    const targets = replicas.map((r) => r?.h2cAddress).join(',');
    const roundRobin = { 'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }) };
    const own = ownClients(`ipv4:${targets}`, 4, roundRobin);
    clients.push(...own);
    await Promise.all(own.map((c) => sayHello(c, 'warm', undefined, deadline())));
    const load = startLoad(own, 2);
    const log: string[] = [];
    for (let i = 0; i < replicas.length; i++) {
      const old = replicas[i];
      assert.ok(old !== undefined);
      await sleep(500);
      const portOf = (address: string): number => Number(address.split(':')[1]);
      const ports = { h2c: portOf(old.h2cAddress), tls: portOf(old.tlsAddress), status: portOf(old.statusAddress) };
      const stoppedAt = Date.now();
      await old.stop();
      log.push(`replica ${i} exited after ${Date.now() - stoppedAt} ms: ${String(/\[gateway exited[^\]]*\]/.exec(old.output())?.[0])}`);
      const fresh = await spawnChildGateway(etcd.endpoint, { ports, env: { GATEWAY_SHUTDOWN_TIMEOUT: '10' } });
      replicas[i] = fresh;
      await waitForStatus(fresh, () => true, `replica ${i} ready again`);
      log.push(`replica ${i} ready after ${Date.now() - stoppedAt} ms`);
    }
    await sleep(500);
    const result = await load.stop();
    t.diagnostic(`${log.join('; ')}; ${result.ok} calls ok, failed: ${JSON.stringify(result.failed)}`);
    assert.deepEqual(result.failed, []);
    assert.ok(result.ok > 100, `calls flowed throughout: ${result.ok}`);
  });
});
