/**
 * The plugin list and schemas, global rules and plugin configs through the admin API against a real etcd, in APISIX's shapes: PUT, GET, PATCH and
 * DELETE by id, no POST (405, as APISIX), `plugins` required and validated like a route's, a route's
 * `plugin_config_id` checked to exist, and a plugin config in use refused deletion.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PluginsSchema } from '../../shared/schema/plugins.ts';
import { KeyAuthConsumerSchema } from '../../shared/schema/consumer.ts';
import { SEED_ROUTE, VIEWER_KEY, admin, jsonOf, adminFixtureEachTest } from './admin-fixture.ts';

const DENY_ALL = { 'ip-restriction': { blacklist: ['0.0.0.0/0', '::/0'] } };

describe('admin API: global rules and plugin configs', () => {
  const fixture = adminFixtureEachTest();

  for (const [type, singular] of [['global_rules', 'global_rule'], ['plugin_configs', 'plugin_config']] as const) {
    it(`${type}: PUT, GET, PATCH and DELETE by id; POST is 405; plugins are required and validated`, async () => {
      const put = await admin(fixture().app, { method: 'PUT', url: `/apisix/admin/${type}/1`, body: { plugins: DENY_ALL } });
      assert.equal(put.statusCode, 201, put.body);
      assert.equal(jsonOf(put)['key'], `/apisix/${type}/1`);
      const patch = await admin(fixture().app, { method: 'PATCH', url: `/apisix/admin/${type}/1`, body: { desc: 'deny all' } });
      assert.equal(patch.statusCode, 200, patch.body);
      const got = jsonOf(await admin(fixture().app, { method: 'GET', url: `/apisix/admin/${type}/1` }));
      assert.deepEqual((got['value'] as Record<string, unknown>)['plugins'], DENY_ALL);
      const post = await admin(fixture().app, { method: 'POST', url: `/apisix/admin/${type}`, body: { plugins: DENY_ALL } });
      assert.equal(post.statusCode, 405);
      assert.deepEqual(jsonOf(post), { error_msg: `not supported \`POST\` method for ${singular}` });
      const missing = await admin(fixture().app, { method: 'PUT', url: `/apisix/admin/${type}/2`, body: { desc: 'no plugins' } });
      assert.equal(missing.statusCode, 400);
      assert.match(String(jsonOf(missing)['error_msg']), /plugins/);
      const bad = await admin(fixture().app, { method: 'PUT', url: `/apisix/admin/${type}/2`, body: { plugins: { 'ip-restriction': { whitelist: ['nope'] } } } });
      assert.equal(bad.statusCode, 400);
      assert.match(String(jsonOf(bad)['error_msg']), /plugin ip-restriction err: "nope" is not an IP address/);
      const unknown = await admin(fixture().app, { method: 'PUT', url: `/apisix/admin/${type}/2`, body: { plugins: { 'no-such-plugin': {} } } });
      assert.deepEqual(jsonOf(unknown), { error_msg: 'invalid configuration: property "plugins" validation failed: unknown plugin [no-such-plugin]' });
      assert.equal((await admin(fixture().app, { method: 'DELETE', url: `/apisix/admin/${type}/1` })).statusCode, 200);
    });
  }

  it("a route's plugin_config_id must name a plugin config, and one in use cannot be deleted", async () => {
    const orphan = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/routes/r1', body: { ...SEED_ROUTE, plugin_config_id: 'pc1' } });
    assert.equal(orphan.statusCode, 400);
    assert.deepEqual(jsonOf(orphan), { error_msg: 'failed to fetch plugin_config info by plugin_config id [pc1], response code: 404' });
    await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/plugin_configs/pc1', body: { plugins: DENY_ALL } });
    const route = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/routes/r1', body: { ...SEED_ROUTE, plugin_config_id: 'pc1' } });
    assert.equal(route.statusCode, 201, route.body);
    const refused = await admin(fixture().app, { method: 'DELETE', url: '/apisix/admin/plugin_configs/pc1' });
    assert.equal(refused.statusCode, 400);
    assert.deepEqual(jsonOf(refused), { error_msg: 'can not delete this plugin_config, route [r1] is still using it now' });
  });

  it('lists the plugins and serves the schema of each, for routes and for consumers; an unknown one is 400', async () => {
    const list = await admin(fixture().app, { method: 'GET', url: '/apisix/admin/plugins/list', key: VIEWER_KEY });
    assert.equal(list.statusCode, 200);
    const names = JSON.parse(list.body) as string[];
    assert.deepEqual(names, Object.keys(PluginsSchema.properties).sort());
    assert.ok(names.includes('key-auth') && names.includes('limit-count') && names.includes('grpc-limits'));
    const limit = await admin(fixture().app, { method: 'GET', url: '/apisix/admin/plugins/limit-count' });
    assert.deepEqual(jsonOf(limit), JSON.parse(JSON.stringify(PluginsSchema.properties['limit-count'])));
    const consumer = await admin(fixture().app, { method: 'GET', url: '/apisix/admin/plugins/key-auth?schema_type=consumer' });
    assert.deepEqual(jsonOf(consumer), JSON.parse(JSON.stringify(KeyAuthConsumerSchema)));
    const unknown = await admin(fixture().app, { method: 'GET', url: '/apisix/admin/plugins/no-such-plugin' });
    assert.equal(unknown.statusCode, 400);
    assert.deepEqual(jsonOf(unknown), { error_msg: 'plugin not found in subsystem http' });
    assert.equal((await admin(fixture().app, { method: 'GET', url: '/apisix/admin/plugins/list', key: null })).statusCode, 401);
  });
});
