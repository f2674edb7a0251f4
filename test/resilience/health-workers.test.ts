/**
 * Issue #13 with worker processes (`node data-plane/main.ts`, 2 workers, a real etcd, real Greeter
 * nodes with grpc.health.v1):
 *
 * - One process per replica probes: each node's health service sees Check calls from exactly one connection
 *   (the prober keeps one per node), not one per worker.
 * - A node the prober finds NOT_SERVING is skipped by every worker: calls over 8 connections, spread over both
 *   workers by the primary, never reach it.
 * - The primary's status port serves APISIX's control API view, `GET /v1/healthcheck` and
 *   `/v1/healthcheck/upstreams/<id>`, from the probing worker's states.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@grpc/grpc-js';
import { putEtcdJson, spawnChildGateway, type ChildGateway } from '../flow/child-gateway.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { waitUntil } from '../helpers/fake-upstream.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';

const LIMIT_MS = 30_000;

interface NodeView {
  ip: string;
  port: number;
  hostname: string;
  status: string;
  counter: Record<string, number>;
}
interface CheckerView {
  name: string;
  type: string;
  nodes: NodeView[];
}

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  try {
    const res = await fetch(url);
    return { status: res.status, body: await res.json() };
  } catch {
    return { status: 0, body: undefined };
  }
}

describe('health checks with worker processes', { timeout: 120_000 }, () => {
  let etcd: EtcdProcess | undefined;
  let gateway: ChildGateway | undefined;
  let a: GreeterNode | undefined;
  let b: GreeterNode | undefined;
  const clients: Client[] = [];

  before(async () => {
    etcd = await startEtcd();
    a = await startGreeterNode({ id: 'A' });
    b = await startGreeterNode({ id: 'B' });
    const checks = { active: { type: 'grpc', healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, http_failures: 1 } } };
    await putEtcdJson(etcd.endpoint, '/apisix/upstreams/hc', { nodes: { [a.address]: 1, [b.address]: 1 }, checks });
    await putEtcdJson(etcd.endpoint, '/apisix/routes/1', { uri: '/helloworld.Greeter/*', upstream_id: 'hc' });
    gateway = await spawnChildGateway(etcd.endpoint, { workers: 2 });
    const gw = gateway;
    const deadline = Date.now() + LIMIT_MS;
    for (;;) {
      const ready = await getJson(`http://${gw.statusAddress}/readyz`);
      const workers = (ready.body as { workers?: { status: string }[] } | undefined)?.workers ?? [];
      if (ready.status === 200 && workers.filter((w) => w.status === 'ok').length === 2) break;
      if (Date.now() > deadline) throw new Error(`two workers serving: ${JSON.stringify(ready)}\n${gw.output()}`);
      await sleep(100);
    }
  });

  after(async () => {
    for (const client of clients) client.close();
    await gateway?.stop();
    await a?.close();
    await b?.close();
    await etcd?.close();
  });

  test('one process probes, every worker skips what it found unhealthy, and the primary serves /v1/healthcheck', async (t) => {
    assert.ok(gateway !== undefined && a !== undefined && b !== undefined);
    const gw = gateway;
    const nodeA = a;
    const nodeB = b;
    await waitUntil(() => nodeA.health.checks >= 4 && nodeB.health.checks >= 4, LIMIT_MS, () => `probes: A ${nodeA.health.checks}, B ${nodeB.health.checks}`);
    assert.equal(nodeA.health.peers, 1, 'checks to A came over one connection: one probing process');
    assert.equal(nodeB.health.peers, 1, 'checks to B came over one connection');

    const url = `http://${gw.statusAddress}/v1/healthcheck`;
    let list: CheckerView[] = [];
    const deadline = Date.now() + LIMIT_MS;
    while (list.length !== 1 && Date.now() < deadline) {
      list = ((await getJson(url)).body as CheckerView[] | undefined) ?? [];
      await sleep(100);
    }
    assert.equal(list.length, 1, JSON.stringify(list));
    assert.equal(list[0]?.name, '/apisix/upstreams/hc');
    assert.equal(list[0].type, 'grpc');
    assert.deepEqual(list[0].nodes.map((n) => `${n.ip}:${n.port}`).sort(), [nodeA.address, nodeB.address].sort());
    assert.deepEqual(Object.keys(list[0].nodes[0]?.counter ?? {}).sort(), ['http_failure', 'success', 'tcp_failure', 'timeout_failure']);
    const one = await getJson(`${url}/upstreams/hc`);
    assert.equal(one.status, 200);
    assert.equal((one.body as CheckerView).name, '/apisix/upstreams/hc');
    assert.equal((await getJson(`${url}/upstreams/none`)).status, 404);

    nodeB.setHealth('NOT_SERVING');
    const statusOfB = async (): Promise<string | undefined> =>
      ((await getJson(`${url}/upstreams/hc`)).body as CheckerView | undefined)?.nodes.find((n) => `${n.ip}:${n.port}` === nodeB.address)?.status;
    const until = Date.now() + LIMIT_MS;
    let seen: string | undefined;
    while ((seen = await statusOfB()) !== 'unhealthy' && Date.now() < until) await sleep(100);
    assert.equal(seen, 'unhealthy');
    // The change reached both workers (relayed by the primary): 8 connections, spread over the two, 10 calls each.
    await sleep(300);
    const own = Array.from({ length: 8 }, () => greeterClient(gw.h2cAddress, { channelOptions: { 'grpc.use_local_subchannel_pool': 1 } }));
    clients.push(...own);
    const results = await Promise.all(
      own.map(async (client) => {
        const served: (string | undefined)[] = [];
        for (let i = 0; i < 10; i++) served.push((await sayHello(client, 'w', undefined, { deadline: Date.now() + 5_000 })).servedBy);
        return served;
      }),
    );
    const served = results.flat();
    t.diagnostic(`served by: ${JSON.stringify(served.reduce<Record<string, number>>((m, s) => ({ ...m, [s ?? '?']: (m[s ?? '?'] ?? 0) + 1 }), {}))}`);
    assert.deepEqual(new Set(served), new Set(['A']), 'no worker sent a call to B');
    const status = (await getJson(`http://${gw.statusAddress}/readyz`)).body as { workers?: unknown[] };
    assert.equal(status.workers?.length, 2);
  });
});
