/**
 * Issue #13's balancers through the whole gateway (admin API → etcd → data plane → real Greeter nodes): `chash`
 * on a metadata header keeps each key on one node, and removing one of three nodes moves only the keys that were
 * on it; `least_conn` and `ewma` serve calls like any balancer. Distributions are in
 * test/data-plane/balancers.test.ts; this is the wiring: the key read from a real call's header list.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Metadata, type Client } from '@grpc/grpc-js';
import { startGateway, type GatewayFixture } from './gateway-fixture.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';

const USERS = 60;

describe('balancers through the gateway (issue #13)', { timeout: 120_000 }, () => {
  let gw: GatewayFixture;
  let client: Client;
  const nodes: GreeterNode[] = [];

  before(async () => {
    gw = await startGateway();
    client = greeterClient(gw.h2cAddress);
    for (const id of ['N1', 'N2', 'N3']) nodes.push(await startGreeterNode({ id }));
  });
  after(async () => {
    client.close();
    await gw.close();
    for (const node of nodes) await node.close();
  });

  const route = async (upstream: Record<string, unknown>): Promise<void> => {
    const res = await gw.admin('PUT', '/routes/1', { uri: '/helloworld.Greeter/*', upstream });
    assert.ok(res.status === 200 || res.status === 201, JSON.stringify(res.body));
    const want = Object.keys(upstream['nodes'] as Record<string, number>).sort();
    const type = upstream['type'];
    await gw.waitForSnapshot((s) => {
      const up = s.targets.get('1')?.upstream;
      return JSON.stringify(up?.nodes.map((n) => `${n.host}:${n.port}`).sort()) === JSON.stringify(want) && (type !== 'chash' || up?.hash !== undefined) && (type === 'chash' || up?.hash === undefined);
    }, 'route 1');
  };

  const servedFor = async (user: string): Promise<string | undefined> => {
    const metadata = new Metadata();
    metadata.set('x-user-id', user);
    const r = await sayHello(client, user, metadata, { deadline: Date.now() + 5_000 });
    assert.equal(r.status.code, 0, r.status.details);
    return r.servedBy;
  };

  test('chash on a header: one node per key; removing a node moves only its keys', async () => {
    const all = Object.fromEntries(nodes.map((n) => [n.address, 1]));
    await route({ type: 'chash', hash_on: 'header', key: 'x-user-id', nodes: all });
    const placed = new Map<string, string | undefined>();
    for (let u = 0; u < USERS; u++) placed.set(`user-${u}`, await servedFor(`user-${u}`));
    for (let u = 0; u < USERS; u += 3) assert.equal(await servedFor(`user-${u}`), placed.get(`user-${u}`), `user-${u} stays on its node`);
    const used = new Set(placed.values());
    assert.ok(used.size >= 2, `keys spread over nodes: ${JSON.stringify([...used])}`);

    const [first, second, third] = nodes as [GreeterNode, GreeterNode, GreeterNode];
    await route({ type: 'chash', hash_on: 'header', key: 'x-user-id', nodes: { [first.address]: 1, [second.address]: 1 } });
    let moved = 0;
    for (const [user, before] of placed) {
      const now = await servedFor(user);
      if (before === third.id) {
        moved++;
        assert.notEqual(now, third.id);
      } else assert.equal(now, before, `${user} was on ${String(before)}, which stayed: it must not move`);
    }
    assert.equal(moved, [...placed.values()].filter((n) => n === third.id).length);
  });

  test('least_conn and ewma serve every call, over every node', async () => {
    for (const type of ['least_conn', 'ewma']) {
      await route({ type, nodes: Object.fromEntries(nodes.map((n) => [n.address, 1])) });
      const served = new Set<string | undefined>();
      const results = await Promise.all(Array.from({ length: 60 }, (_, i) => sayHello(client, `${type}-${i}`, undefined, { deadline: Date.now() + 5_000 })));
      for (const r of results) {
        assert.equal(r.status.code, 0, `${type}: ${r.status.details}`);
        served.add(r.servedBy);
      }
      assert.ok(served.size >= 2, `${type} used ${JSON.stringify([...served])}`);
    }
  });
});
