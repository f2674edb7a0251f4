/**
 * Issue #16: `traffic-split` through the admin API, etcd and the data plane with grpc-js clients and real greeter
 * nodes, each answering with its id (`x-served-by`): weighted canaries (exact shares, since one data plane's smooth
 * weighted round robin is deterministic), canaries by header (`match.vars`), inline upstreams, an upstream object's
 * change followed, and the admin API's refusals (missing upstream, an upstream still in use, a global rule).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Metadata, status as GrpcCode, type Client } from '@grpc/grpc-js';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { type GatewayFixture, putRouteAndWait, startGateway } from './gateway-fixture.ts';

const SAY_HELLO = '/helloworld.Greeter/SayHello';

describe('traffic-split', () => {
  let gw: GatewayFixture;
  let stable: GreeterNode;
  let canary: GreeterNode;
  let third: GreeterNode;
  let client: Client;
  const opened: { close(): unknown }[] = [];

  before(async () => {
    opened.push((gw = await startGateway()));
    opened.push((stable = await startGreeterNode({ id: 'stable' })));
    opened.push((canary = await startGreeterNode({ id: 'canary' })));
    opened.push((third = await startGreeterNode({ id: 'third' })));
    opened.push((client = greeterClient(gw.h2cAddress)));
    const res = await gw.admin('PUT', '/upstreams/canary', nodes(canary));
    assert.equal(res.status, 201, JSON.stringify(res.body));
  });

  after(async () => {
    for (const resource of opened.reverse()) await resource.close();
  });

  function nodes(node: GreeterNode): Record<string, unknown> {
    return { scheme: 'grpc', type: 'roundrobin', nodes: { [`127.0.0.1:${String(node.port)}`]: 1 } };
  }

  const putRoute = (id: string, plugins: Record<string, unknown>): Promise<void> => putRouteAndWait(gw, id, { uri: SAY_HELLO, upstream: nodes(stable), plugins });

  /** Who served `n` calls, counted by node id. */
  async function servedBy(n: number, metadata = new Metadata()): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = await sayHello(client, `c${String(i)}`, metadata);
      assert.equal(r.status.code, GrpcCode.OK, r.status.details);
      const id = r.servedBy ?? '?';
      counts[id] = (counts[id] ?? 0) + 1;
    }
    return counts;
  }

  test('weighted: an upstream object at weight 1 and the route\'s own at weight 3 take exactly 1 in 4 and 3 in 4 calls', async () => {
    await putRoute('split', { 'traffic-split': { rules: [{ weighted_upstreams: [{ upstream_id: 'canary', weight: 1 }, { weight: 3 }] }] } });
    assert.deepEqual(await servedBy(40), { canary: 10, stable: 30 });
  });

  test('by header: only calls whose metadata match the rule go to the canary; weight 0 is never picked', async () => {
    await putRoute('split', {
      'traffic-split': {
        rules: [
          { match: [{ vars: [['http_x_canary', '==', '1']] }], weighted_upstreams: [{ upstream_id: 'canary' }, { upstream: nodes(third), weight: 0 }] },
        ],
      },
    });
    const flagged = new Metadata();
    flagged.set('x-canary', '1');
    assert.deepEqual(await servedBy(6, flagged), { canary: 6 });
    assert.deepEqual(await servedBy(6), { stable: 6 }, 'no rule matched: the route\'s upstream');
    const other = new Metadata();
    other.set('x-canary', '2');
    assert.deepEqual(await servedBy(3, other), { stable: 3 });
  });

  test('the first rule that matches wins; an inline upstream; a changed upstream object is followed', async () => {
    await putRoute('split', {
      'traffic-split': {
        rules: [
          { match: [{ vars: [['http_x_tier', '==', 'gold']] }, { vars: [['http_x_tier', '==', 'platinum']] }], weighted_upstreams: [{ upstream: nodes(third) }] },
          { match: [{ vars: [['http_x_tier', '~~', '^(gold|silver)$']] }], weighted_upstreams: [{ upstream_id: 'canary' }] },
        ],
      },
    });
    const tier = (value: string): Metadata => {
      const metadata = new Metadata();
      metadata.set('x-tier', value);
      return metadata;
    };
    assert.deepEqual(await servedBy(3, tier('gold')), { third: 3 }, 'gold matches both rules: the first wins');
    assert.deepEqual(await servedBy(3, tier('platinum')), { third: 3 }, 'either match entry of a rule');
    assert.deepEqual(await servedBy(3, tier('silver')), { canary: 3 });
    assert.deepEqual(await servedBy(3, tier('bronze')), { stable: 3 });
    // The upstream object moves to another node: the route is rebuilt with it.
    const before = gw.dataPlane.snapshots.current().targets.get('split');
    assert.equal((await gw.admin('PUT', '/upstreams/canary', nodes(third))).status, 200);
    await gw.waitForSnapshot((snapshot) => snapshot.targets.get('split') !== before, 'route rebuilt with the changed upstream');
    assert.deepEqual(await servedBy(3, tier('silver')), { third: 3 });
    assert.equal((await gw.admin('PUT', '/upstreams/canary', nodes(canary))).status, 200);
  });

  test('admin: a missing upstream_id, an upstream in use, a global rule, bad vars and an id with an inline upstream are refused', async () => {
    const refused = async (path: string, body: unknown, message: RegExp): Promise<void> => {
      const res = await gw.admin('PUT', path, body);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.match((res.body as { error_msg: string }).error_msg, message);
    };
    const route = (split: unknown): unknown => ({ uri: SAY_HELLO, upstream: nodes(stable), plugins: { 'traffic-split': split } });
    await refused('/routes/bad', route({ rules: [{ weighted_upstreams: [{ upstream_id: 'nope' }] }] }), /failed to fetch upstream info by upstream id \[nope\]/);
    await refused('/routes/bad', route({ rules: [{ match: [{ vars: [['no_such_var', '==', '1']] }], weighted_upstreams: [{ weight: 1 }] }] }), /plugin traffic-split err: .*no_such_var/);
    await refused('/routes/bad', route({ rules: [{ weighted_upstreams: [{ upstream_id: 'canary', upstream: nodes(third) }] }] }), /only one of "upstream" or "upstream_id"/);
    await refused('/global_rules/bad', { plugins: { 'traffic-split': { rules: [{ weighted_upstreams: [{ weight: 1 }] }] } } }, /not in global rules/);
    assert.equal((await gw.admin('GET', '/routes/bad')).status, 404, 'nothing was written');
    await putRoute('split', { 'traffic-split': { rules: [{ weighted_upstreams: [{ upstream_id: 'canary' }] }] } });
    const deleted = await gw.admin('DELETE', '/upstreams/canary');
    assert.equal(deleted.status, 400, 'an upstream traffic-split uses cannot be deleted');
    assert.match((deleted.body as { error_msg: string }).error_msg, /route \[split\] is still using it/);
  });
});
