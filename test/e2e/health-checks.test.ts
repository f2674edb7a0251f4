/**
 * Issue #13: upstreams that heal themselves, end to end: a real etcd, the admin API, an in-process data plane on
 * the native engine, real @grpc/grpc-js Greeter nodes with the standard grpc.health.v1 service (examples/), and a
 * node in a child process that a test freezes with SIGSTOP.
 *
 * What is asserted is counted, never timed: how many probes a node answered before it left rotation, how many
 * calls reached it afterwards (none), how many calls failed (none, or under 1 % for a frozen node, each inside the
 * detection window), and that checkers, timers and probe connections do not outlive their configuration.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status as GrpcCode, type Client } from '@grpc/grpc-js';
import { startGateway, type GatewayFixture } from './gateway-fixture.ts';
import { startFakeUpstream, waitUntil, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { freePort } from '../helpers/ports.ts';

const LIMIT_MS = 20_000;
const CALL_DEADLINE_MS = 10_000;

interface Load {
  /** Calls so far, per serving node id, and the failures with when they happened. */
  readonly servedBy: Map<string, number>;
  readonly failed: { at: number; detail: string }[];
  ok: number;
  stop(): Promise<void>;
}

/** `n` loops each making one unary call at a time through the gateway until stopped. */
function startLoad(client: Client, n: number, pauseMs = 2): Load {
  let running = true;
  const load: Load = {
    servedBy: new Map(),
    failed: [],
    ok: 0,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
  const loops = Array.from({ length: n }, async (_, i) => {
    while (running) {
      const r = await sayHello(client, `load-${i}`, undefined, { deadline: Date.now() + CALL_DEADLINE_MS });
      if (r.status.code === GrpcCode.OK) {
        load.ok++;
        const id = r.servedBy ?? '?';
        load.servedBy.set(id, (load.servedBy.get(id) ?? 0) + 1);
      } else load.failed.push({ at: Date.now(), detail: `${r.status.code} ${r.status.details}` });
      await sleep(pauseMs);
    }
  });
  return load;
}

describe('upstream health checks (issue #13)', { timeout: 180_000 }, () => {
  let gw: GatewayFixture;
  let client: Client;
  const nodes: GreeterNode[] = [];

  before(async () => {
    gw = await startGateway();
    client = greeterClient(gw.h2cAddress);
  });

  after(async () => {
    client.close();
    await gw.close();
    for (const node of nodes) await node.close();
  });

  const node = async (id: string): Promise<GreeterNode> => {
    const n = await startGreeterNode({ id });
    nodes.push(n);
    return n;
  };

  /** Route 1 (the Greeter) on upstream object `id`; waits until the data plane serves it. */
  const useUpstream = async (id: string, upstream: Record<string, unknown>): Promise<void> => {
    const put = await gw.admin('PUT', `/upstreams/${id}`, upstream);
    assert.ok(put.status === 200 || put.status === 201, JSON.stringify(put.body));
    const route = await gw.admin('PUT', '/routes/1', { uri: '/helloworld.Greeter/*', upstream_id: id });
    assert.ok(route.status === 200 || route.status === 201, JSON.stringify(route.body));
    const nodesOf = (upstream['nodes'] as Record<string, number> | undefined) ?? {};
    await gw.waitForSnapshot((s) => JSON.stringify(s.targets.get('1')?.upstream.nodes.map((n) => `${n.host}:${n.port}`).sort()) === JSON.stringify(Object.keys(nodesOf).sort()), `upstream ${id}`);
  };

  const status = (address: string): string | undefined => {
    for (const checker of gw.dataPlane.health.report()) {
      const found = checker.nodes.find((n) => `${n.ip}:${n.port}` === address);
      if (found !== undefined) return found.status;
    }
    return undefined;
  };
  const waitStatus = (address: string, wanted: (s: string | undefined) => boolean, what: string): Promise<void> =>
    waitUntil(() => wanted(status(address)), LIMIT_MS, () => `${what}: ${address} is ${String(status(address))}; ${JSON.stringify(gw.dataPlane.health.report())}`);

  test('a node that says NOT_SERVING leaves rotation after `http_failures` probes, with no call failing, and comes back after `successes`', async (t) => {
    const a = await node('A');
    const b = await node('B');
    const checks = {
      active: { type: 'grpc', timeout: 1, healthy: { interval: 1, successes: 2 }, unhealthy: { interval: 1, http_failures: 2 } },
    };
    await useUpstream('ns', { nodes: { [a.address]: 1, [b.address]: 1 }, checks });
    await waitUntil(() => b.health.checks >= 1, LIMIT_MS, () => 'first probe of B');
    assert.equal(b.health.lastService, '', 'grpc_service defaults to "" (the whole server)');

    const load = startLoad(client, 4);
    await waitUntil(() => (load.servedBy.get('B') ?? 0) > 20, LIMIT_MS, () => `calls reach B: ${JSON.stringify([...load.servedBy])}`);
    const checksAtSwitch = b.health.checks;
    b.setHealth('NOT_SERVING');
    await waitStatus(b.address, (s) => s === 'unhealthy', 'B ejected');
    const probesToEject = b.health.checks - checksAtSwitch;
    // Ejected by the 2nd failing probe; a probe may have been in flight at the switch.
    assert.ok(probesToEject >= 2 && probesToEject <= 3, `probes until ejection: ${probesToEject}`);
    // Calls already sent to B when it was ejected finish (and are counted) after it: let the 4 in flight end first.
    const aAtEjection = load.servedBy.get('A') ?? 0;
    await waitUntil(() => (load.servedBy.get('A') ?? 0) > aAtEjection + 20, LIMIT_MS, () => 'calls in flight at the ejection end');
    const bCalls = load.servedBy.get('B') ?? 0;
    const aCalls = load.servedBy.get('A') ?? 0;
    await waitUntil(() => (load.servedBy.get('A') ?? 0) > aCalls + 200, LIMIT_MS, () => 'calls go on through A');
    assert.equal(load.servedBy.get('B') ?? 0, bCalls, 'no call reached B once it was unhealthy');

    const checksAtReturn = b.health.checks;
    b.setHealth('SERVING');
    await waitStatus(b.address, (s) => s === 'healthy', 'B back');
    const probesToReturn = b.health.checks - checksAtReturn;
    assert.ok(probesToReturn >= 2 && probesToReturn <= 3, `probes until return: ${probesToReturn}`);
    await waitUntil(() => (load.servedBy.get('B') ?? 0) > bCalls + 20, LIMIT_MS, () => 'calls reach B again');
    await load.stop();
    t.diagnostic(`ok ${load.ok}, failed ${load.failed.length}, probes to eject ${probesToEject}, to return ${probesToReturn}`);
    assert.deepEqual(load.failed, [], 'not one call failed');
  });

  test('grpc_service and host: the probe asks for that service with that :authority; an unknown service is a failure', async () => {
    const a = await node('A2');
    const b = await node('B2');
    const checks = {
      active: {
        type: 'grpc',
        grpc_service: 'helloworld.Greeter',
        host: 'greeter.internal',
        healthy: { interval: 1, successes: 1 },
        unhealthy: { interval: 1, http_failures: 1 },
      },
    };
    await useUpstream('svc', { nodes: { [a.address]: 1, [b.address]: 1 }, checks });
    await waitUntil(() => a.health.checks >= 1 && a.health.lastService === 'helloworld.Greeter', LIMIT_MS, () => `probe of A: ${JSON.stringify(a.health)}`);
    assert.equal(a.health.lastAuthority, 'greeter.internal');
    // SERVICE health is per service: the Greeter NOT_SERVING on B while the server as a whole is SERVING.
    b.setHealth('NOT_SERVING', 'helloworld.Greeter');
    await waitStatus(b.address, (s) => s === 'unhealthy', 'B ejected for its Greeter service');
    b.setHealth('SERVING', 'helloworld.Greeter');
    await waitStatus(b.address, (s) => s === 'healthy', 'B back');
    await useUpstream('svc', { nodes: { [a.address]: 1, [b.address]: 1 }, checks: { ...checks, active: { ...checks.active, grpc_service: 'no.such.Service' } } });
    await waitStatus(a.address, (s) => s === 'unhealthy', 'an unknown service (NOT_FOUND) counts as a failure');
    // Every node unhealthy: calls still go to all of them (APISIX), so nothing fails for it.
    await waitStatus(b.address, (s) => s === 'unhealthy', 'B unhealthy too');
    const r = await sayHello(client, 'all-down', undefined, { deadline: Date.now() + CALL_DEADLINE_MS });
    assert.equal(r.status.code, 0, r.status.details);
  });

  test('a killed node (SIGKILL): every later call that meets it is retried on the other node (0 failed), and the checker ejects it', async (t) => {
    const a = await node('A3');
    const port = await freePort();
    const killed = await spawnGreeter(port, 'K');
    const address = `127.0.0.1:${port}`;
    try {
      const checks = {
        active: { type: 'grpc', healthy: { interval: 1 }, unhealthy: { interval: 1, tcp_failures: 2 } },
        passive: { unhealthy: { tcp_failures: 3 } },
      };
      await useUpstream('kill', { nodes: { [a.address]: 1, [address]: 1 }, checks, timeout: { connect: 1, send: 5, read: 5 } });
      const warm = startLoad(client, 4);
      await waitUntil(() => (warm.servedBy.get('K') ?? 0) > 20, LIMIT_MS, () => 'calls reach K');
      await warm.stop();
      // Calls in flight on a connection that dies may have run on the node: gRPC never replays those. The claim is
      // about every call after the kill.
      killed.kill('SIGKILL');
      await new Promise((resolve) => killed.once('exit', resolve));
      const load = startLoad(client, 4);
      await waitStatus(address, (s) => s === 'unhealthy', 'K ejected');
      const aCalls = load.servedBy.get('A3') ?? 0;
      await waitUntil(() => (load.servedBy.get('A3') ?? 0) > aCalls + 200, LIMIT_MS, () => 'calls go on through A3');
      await load.stop();
      t.diagnostic(`ok ${load.ok}, failed ${JSON.stringify(load.failed)}`);
      assert.deepEqual(load.failed, [], 'every call that met the dead node was retried on the other');
      assert.equal(load.servedBy.get('K') ?? 0, 0);
    } finally {
      killed.kill('SIGKILL');
    }
  });

  test('a node frozen with SIGSTOP (its port still accepting) is ejected by timeouts; under 1 % of calls fail, all in the detection window', async (t) => {
    const a = await node('A4');
    const port = await freePort();
    const frozen = await spawnGreeter(port, 'F');
    try {
      const address = `127.0.0.1:${port}`;
      const checks = {
        active: { type: 'grpc', timeout: 0.5, healthy: { interval: 1, successes: 2 }, unhealthy: { interval: 1, timeouts: 2 } },
        passive: { unhealthy: { timeouts: 2 } },
      };
      // timeout.read bounds one attempt that gets no response headers; retries moves the call to A4.
      await useUpstream('frozen', { nodes: { [a.address]: 1, [address]: 1 }, checks, timeout: { connect: 1, send: 1, read: 0.5 }, retries: 1 });
      const load = startLoad(client, 4);
      await waitUntil(() => (load.servedBy.get('F') ?? 0) > 20, LIMIT_MS, () => `calls reach F: ${JSON.stringify([...load.servedBy])}`);
      const frozenAt = Date.now();
      process.kill(frozen.pid ?? 0, 'SIGSTOP');
      await waitStatus(address, (s) => s === 'unhealthy', 'F ejected');
      const ejectedAt = Date.now();
      const aCalls = load.servedBy.get('A4') ?? 0;
      await waitUntil(() => (load.servedBy.get('A4') ?? 0) > aCalls + 300, LIMIT_MS, () => 'calls go on through A4');
      process.kill(frozen.pid ?? 0, 'SIGCONT');
      await waitStatus(address, (s) => s === 'healthy', 'F back after SIGCONT');
      const fCalls = load.servedBy.get('F') ?? 0;
      await waitUntil(() => (load.servedBy.get('F') ?? 0) > fCalls + 20, LIMIT_MS, () => 'calls reach F again');
      await load.stop();
      const total = load.ok + load.failed.length;
      t.diagnostic(`calls ${total}, failed ${load.failed.length} (${JSON.stringify(load.failed.map((f) => ({ ...f, at: f.at - frozenAt })))}), ejected ${ejectedAt - frozenAt} ms after SIGSTOP`);
      assert.ok(load.failed.length < total / 100, `fewer than 1 % of ${total} calls failed: ${load.failed.length}`);
      for (const failure of load.failed) assert.ok(failure.at >= frozenAt && failure.at <= ejectedAt + CALL_DEADLINE_MS, `a failure outside the detection window: ${JSON.stringify(failure)}`);
    } finally {
      try {
        process.kill(frozen.pid ?? 0, 'SIGCONT');
      } catch {
        // already gone
      }
      frozen.kill('SIGKILL');
    }
  });

  test('passive checks: a node answering UNAVAILABLE (passive grpc_statuses) is ejected after http_failures calls and comes back after base_ejection_time', async (t) => {
    const a = await node('A6');
    const bad: FakeUpstream = await startFakeUpstream();
    try {
      bad.onStream((_stream, _headers, ctl) => ctl.trailersOnly(14, 'overloaded'));
      const checks = { passive: { base_ejection_time: 2, unhealthy: { grpc_statuses: [14], http_failures: 3 } } };
      await useUpstream('passive', { nodes: { [a.address]: 1, [bad.address]: 1 }, checks });
      let unavailable = 0;
      let fromA = 0;
      // Calls one at a time: the bad node's answers reach the client as it gave them until the third ejects it.
      for (let i = 0; i < 40 && status(bad.address) !== 'unhealthy'; i++) {
        const r = await sayHello(client, `p${i}`, undefined, { deadline: Date.now() + CALL_DEADLINE_MS });
        if (r.status.code === GrpcCode.UNAVAILABLE) unavailable++;
        else if (r.status.code === GrpcCode.OK) fromA++;
      }
      assert.equal(status(bad.address), 'unhealthy');
      assert.equal(unavailable, 3, 'exactly http_failures UNAVAILABLE answers before the ejection');
      const streamsAtEjection = bad.streams.length;
      for (let i = 0; i < 30; i++) assert.equal((await sayHello(client, `q${i}`, undefined, { deadline: Date.now() + CALL_DEADLINE_MS })).status.code, 0);
      assert.equal(bad.streams.length, streamsAtEjection, 'no call reached the ejected node');
      // Passive only: back (on probation) after base_ejection_time.
      await waitStatus(bad.address, (s) => s === 'healthy', 'back after base_ejection_time');
      t.diagnostic(`${unavailable} UNAVAILABLE, ${fromA} from A6 before the ejection`);
    } finally {
      await bad.close();
    }
  });

  test('checkers follow the configuration: an edited checks block restarts one, a removed node and a removed route stop probes, nothing leaks over 1,000 changes', async () => {
    const a = await node('A5');
    const b = await node('B5');
    const nodesAB = { [a.address]: 1, [b.address]: 1 };
    for (let i = 0; i < 1000; i++) {
      const timeout = i === 999 ? 1.6 : 1 + (i % 5) / 10;
      const res = await gw.admin('PUT', '/upstreams/churn', { nodes: nodesAB, checks: { active: { type: 'grpc', timeout, healthy: { interval: 1 + (i % 3) } } } });
      assert.ok(res.status === 200 || res.status === 201);
    }
    const route = await gw.admin('PUT', '/routes/1', { uri: '/helloworld.Greeter/*', upstream_id: 'churn' });
    assert.ok(route.status === 200 || route.status === 201);
    await gw.waitForSnapshot((s) => s.targets.get('1')?.upstream.checker !== undefined && s.targets.get('1')?.upstream.checker?.id.includes('"timeout":1.6') === true, 'the last checks');
    await waitUntil(() => gw.dataPlane.health.size === 1, LIMIT_MS, () => `one checker: ${gw.dataPlane.health.size}`);
    await waitUntil(() => gw.dataPlane.health.probeConnections === 2, LIMIT_MS, () => `one probe connection per node: ${gw.dataPlane.health.probeConnections}`);
    // Node B removed from the upstream: its probes stop and its connection closes.
    await useUpstream('churn', { nodes: { [a.address]: 1 }, checks: { active: { type: 'grpc', timeout: 1.6, healthy: { interval: 2 } } } });
    await waitUntil(() => gw.dataPlane.health.probeConnections === 1, LIMIT_MS, () => `B's probe connection closed: ${gw.dataPlane.health.probeConnections}`);
    const bChecks = b.health.checks;
    await sleep(2_500);
    assert.equal(b.health.checks, bChecks, 'no probe reached B after it left the upstream');
    // No route uses a checked upstream any more: no checker, no probe connection.
    const plain = await gw.admin('PUT', '/routes/1', { uri: '/helloworld.Greeter/*', upstream: { nodes: { [a.address]: 1 } } });
    assert.ok(plain.status === 200);
    await waitUntil(() => gw.dataPlane.health.size === 0 && gw.dataPlane.health.probeConnections === 0, LIMIT_MS, () => `checkers ${gw.dataPlane.health.size}, connections ${gw.dataPlane.health.probeConnections}`);
  });
});

/** examples/greeter-server.ts in a child process (h2c only), so that a test can freeze it. */
async function spawnGreeter(port: number, id: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['examples/greeter-server.ts', '--grpc-address', `127.0.0.1:${port}`, '--grpcs-address', '', '--id', id], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitUntil(() => output.includes('listening on'), LIMIT_MS, () => `greeter child: ${output}`);
  return child;
}
