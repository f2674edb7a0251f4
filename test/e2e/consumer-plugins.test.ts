/**
 * Issue #16: plugins on consumers beyond credentials. Once `key-auth` (on the route or in a global rule) has
 * identified the caller, the consumer's plugins merge over the route's as APISIX merges them: a plugin the consumer
 * configures replaces the route's, the route's others still run, and consumer plugins of a higher priority than the
 * authentication plugin still run (after it). Through the admin API, etcd and the data plane with grpc-js clients;
 * a route without plugins is called beside every refusal.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Metadata, status as GrpcCode, type Client } from '@grpc/grpc-js';
import { greeterClient, sayHello, sayHelloServerStream, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { type GatewayFixture, putRouteAndWait, startGateway } from './gateway-fixture.ts';

const SAY_HELLO = '/helloworld.Greeter/SayHello';

describe('consumer plugins', () => {
  let gw: GatewayFixture;
  let node: GreeterNode;
  let client: Client;
  const opened: { close(): unknown }[] = [];

  before(async () => {
    opened.push((gw = await startGateway()));
    opened.push((node = await startGreeterNode({ id: 'node' })));
    opened.push((client = greeterClient(gw.h2cAddress)));
    await putRoute('plain', { uri: '/helloworld.Greeter/SayHelloServerStream' });
  });

  after(async () => {
    for (const resource of opened.reverse()) await resource.close();
  });

  const upstream = (): unknown => ({ scheme: 'grpc', type: 'roundrobin', nodes: { [`127.0.0.1:${String(node.port)}`]: 1 } });

  const putRoute = (id: string, body: Record<string, unknown>): Promise<void> => putRouteAndWait(gw, id, { upstream: upstream(), ...body });

  async function putConsumer(username: string, plugins: Record<string, unknown>): Promise<void> {
    const previous = gw.dataPlane.snapshots.current().consumers;
    const res = await gw.admin('PUT', '/consumers', { username, plugins });
    assert.ok(res.status === 200 || res.status === 201, `PUT consumer ${username}: ${String(res.status)} ${JSON.stringify(res.body)}`);
    await gw.waitForSnapshot((snapshot) => snapshot.consumers !== previous, `consumer ${username} applied`);
  }

  const as = (key: string): Metadata => {
    const metadata = new Metadata();
    metadata.set('apikey', key);
    return metadata;
  };

  async function codes(key: string, n: number): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push((await sayHello(client, 'x', as(key))).status.code);
    return out;
  }

  async function assertPlainRouteServes(): Promise<void> {
    const res = await sayHelloServerStream(client, 'plain');
    assert.equal(res.status.code, GrpcCode.OK, res.status.details);
    assert.ok(res.messages.length > 0);
  }

  test('admin: a consumer takes traffic plugins, validated as on a route; route-only plugins are refused', async () => {
    const refused = async (plugins: Record<string, unknown>, message: RegExp): Promise<void> => {
      const res = await gw.admin('PUT', '/consumers', { username: 'bad', plugins: { 'key-auth': { key: 'bad-key' }, ...plugins } });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.match((res.body as { error_msg: string }).error_msg, message);
      assert.equal((await gw.admin('GET', '/consumers/bad')).status, 404, 'nothing was written');
    };
    await refused({ 'limit-count': { count: 1, time_window: 1, key: 'no_such_var' } }, /plugin limit-count err: unknown variable "no_such_var"/);
    await refused({ 'consumer-restriction': { whitelist: ['a'] } }, /consumer-restriction/);
    await refused({ 'grpc-limits': { max_request_message_bytes: 1 } }, /grpc-limits/);
  });

  test("the consumer's limit-count replaces the route's for its calls; another consumer keeps the route's", async () => {
    await putConsumer('gold', { 'key-auth': { key: 'gold-key' }, 'limit-count': { count: 3, time_window: 60, rejected_msg: 'gold quota used up' } });
    await putConsumer('basic', { 'key-auth': { key: 'basic-key' } });
    await putRoute('limited', { uri: SAY_HELLO, plugins: { 'key-auth': {}, 'limit-count': { count: 1, time_window: 60, key: 'consumer_name', rejected_msg: 'route quota used up' } } });
    assert.deepEqual(await codes('basic-key', 2), [GrpcCode.OK, GrpcCode.RESOURCE_EXHAUSTED], "basic: the route's quota of 1");
    const gold = [];
    for (let i = 0; i < 4; i++) gold.push(await sayHello(client, 'x', as('gold-key')));
    assert.deepEqual(
      gold.map((o) => o.status.code),
      [GrpcCode.OK, GrpcCode.OK, GrpcCode.OK, GrpcCode.RESOURCE_EXHAUSTED],
      "gold: its own quota of 3, not the route's",
    );
    assert.equal(gold[3]?.status.details, 'gold quota used up');
    assert.equal(gold[0]?.headers?.get('x-ratelimit-limit')[0], '3');
    await assertPlainRouteServes();
  });

  test("a consumer's proxy-rewrite edits the upstream request; route plugins it does not configure still run", async () => {
    await putConsumer('tagged', { 'key-auth': { key: 'tagged-key' }, 'proxy-rewrite': { headers: { set: { 'x-tier': 'gold' } } } });
    await putRoute('limited', {
      uri: SAY_HELLO,
      plugins: { 'key-auth': {}, 'limit-count': { count: 2, time_window: 60, key: 'consumer_name' }, 'proxy-rewrite': { headers: { set: { 'x-route': 'yes' } } } },
    });
    const ok = await sayHello(client, 'x', as('tagged-key'));
    assert.equal(ok.status.code, GrpcCode.OK, ok.status.details);
    assert.equal(node.lastCall?.metadata['x-tier'], 'gold', "the consumer's rewrite");
    assert.equal(node.lastCall.metadata['x-route'], undefined, "the route's proxy-rewrite is replaced by the consumer's");
    assert.equal(node.lastCall.metadata['x-consumer-username'], 'tagged');
    assert.deepEqual(await codes('tagged-key', 2), [GrpcCode.OK, GrpcCode.RESOURCE_EXHAUSTED], "the route's limit-count still counts the consumer");
  });

  test('consumer plugins of a higher priority than key-auth still run after it: ip-restriction and fault-injection', async () => {
    await putConsumer('walled', { 'key-auth': { key: 'walled-key' }, 'ip-restriction': { whitelist: ['10.9.0.0/16'], message: 'walled off' } });
    await putConsumer('chaos', { 'key-auth': { key: 'chaos-key' }, 'fault-injection': { abort: { grpc_status: 14, body: 'chaos for this consumer' } } });
    await putRoute('limited', { uri: SAY_HELLO, plugins: { 'key-auth': {} } });
    const callsBefore = node.totalCalls;
    const walled = await sayHello(client, 'x', as('walled-key'));
    assert.equal(walled.status.code, GrpcCode.PERMISSION_DENIED);
    assert.equal(walled.status.details, 'walled off');
    const chaos = await sayHello(client, 'x', as('chaos-key'));
    assert.equal(chaos.status.code, GrpcCode.UNAVAILABLE);
    assert.equal(chaos.status.details, 'chaos for this consumer');
    assert.equal(node.totalCalls, callsBefore, 'neither reached the node');
    assert.equal((await sayHello(client, 'x', as('basic-key'))).status.code, GrpcCode.OK, 'other consumers are not affected');
    await assertPlainRouteServes();
  });

  test('key-auth in a global rule: the consumer\'s plugins merge over a route that has none of its own', async () => {
    await putConsumer('global', { 'key-auth': { key: 'global-key' }, 'limit-count': { count: 1, time_window: 60 } });
    await putRoute('limited', { uri: SAY_HELLO });
    const previous = gw.dataPlane.snapshots.current().globalPlugins;
    const rule = await gw.admin('PUT', '/global_rules/auth', { plugins: { 'key-auth': {} } });
    assert.ok(rule.status === 200 || rule.status === 201, JSON.stringify(rule.body));
    await gw.waitForSnapshot((snapshot) => snapshot.globalPlugins !== previous, 'global rule applied');
    try {
      assert.deepEqual(await codes('global-key', 2), [GrpcCode.OK, GrpcCode.RESOURCE_EXHAUSTED]);
      assert.equal((await sayHello(client, 'x', as('basic-key'))).status.code, GrpcCode.OK);
    } finally {
      assert.equal((await gw.admin('DELETE', '/global_rules/auth')).status, 200);
    }
  });

  test('consumer groups: a member takes the group\'s plugins under its own; references are kept whole', async () => {
    const put = await gw.admin('PUT', '/consumer_groups/silver', { plugins: { 'limit-count': { count: 2, time_window: 60, rejected_msg: 'silver quota used up' }, 'proxy-rewrite': { headers: { set: { 'x-group': 'silver' } } } } });
    assert.ok(put.status === 200 || put.status === 201, JSON.stringify(put.body));
    assert.equal((await gw.admin('PUT', '/consumers', { username: 'lost', group_id: 'nope', plugins: { 'key-auth': { key: 'lost-key' } } })).status, 400, 'a group that does not exist');
    await putConsumer('member', { 'key-auth': { key: 'member-key' } });
    const joined = await gw.admin('PUT', '/consumers', { username: 'member', group_id: 'silver', plugins: { 'key-auth': { key: 'member-key' } } });
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    const own = await gw.admin('PUT', '/consumers', { username: 'owner', group_id: 'silver', plugins: { 'key-auth': { key: 'owner-key' }, 'limit-count': { count: 3, time_window: 60 } } });
    assert.ok(own.status === 200 || own.status === 201, JSON.stringify(own.body));
    await gw.waitForSnapshot((snapshot) => snapshot.consumers.byKey('owner-key') !== undefined && snapshot.consumers.byKey('member-key')?.plugins !== undefined, 'group members applied');
    await putRoute('limited', { uri: SAY_HELLO, plugins: { 'key-auth': {} } });
    const member = [];
    for (let i = 0; i < 3; i++) member.push(await sayHello(client, 'x', as('member-key')));
    assert.deepEqual(member.map((o) => o.status.code), [GrpcCode.OK, GrpcCode.OK, GrpcCode.RESOURCE_EXHAUSTED], "the group's quota");
    assert.equal(member[2]?.status.details, 'silver quota used up');
    assert.equal(node.lastCall?.metadata['x-group'], 'silver', "the group's proxy-rewrite");
    assert.deepEqual(await codes('owner-key', 4), [GrpcCode.OK, GrpcCode.OK, GrpcCode.OK, GrpcCode.RESOURCE_EXHAUSTED], "the consumer's own limit-count wins over its group's");
    const refused = await gw.admin('DELETE', '/consumer_groups/silver');
    assert.equal(refused.status, 400, 'a group in use cannot be deleted');
    assert.match((refused.body as { error_msg: string }).error_msg, /consumer_group.*consumer \[(member|owner)\] is still using it/);
    const got = await gw.admin('GET', '/consumer_groups/silver');
    assert.equal(got.status, 200);
  });

  test('a consumer changed: its plugins change with it; unchanged consumers keep their counters', async () => {
    await putRoute('limited', { uri: SAY_HELLO, plugins: { 'key-auth': {} } });
    await putConsumer('steady', { 'key-auth': { key: 'steady-key' }, 'limit-count': { count: 2, time_window: 60 } });
    await putConsumer('changing', { 'key-auth': { key: 'changing-key' }, 'limit-count': { count: 1, time_window: 60 } });
    assert.deepEqual(await codes('steady-key', 1), [GrpcCode.OK]);
    assert.deepEqual(await codes('changing-key', 2), [GrpcCode.OK, GrpcCode.RESOURCE_EXHAUSTED]);
    await putConsumer('changing', { 'key-auth': { key: 'changing-key' }, 'limit-count': { count: 5, time_window: 60 } });
    assert.deepEqual(await codes('changing-key', 1), [GrpcCode.OK], 'a new configuration, a new window');
    assert.deepEqual(await codes('steady-key', 2), [GrpcCode.OK, GrpcCode.RESOURCE_EXHAUSTED], "steady's window survived the other consumer's change");
  });
});
