/**
 * The routes resource end to end: the seed document's PUT, what lands in etcd, and the v3 response shapes of
 * GET, list and DELETE (docs/admin-api.md).
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  ADMIN_KEY,
  PREFIX,
  SEED_ROUTE,
  SEED_ROUTE_BODY,
  admin,
  jsonOf,
  rawText,
  startAdminFixture,
  type AdminFixture,
} from './admin-fixture.ts';

describe('admin API: routes', () => {
  let fx: AdminFixture;

  before(async () => {
    fx = await startAdminFixture();
  });

  after(async () => {
    await fx.close();
  });

  beforeEach(async () => {
    await fx.raw.delete().prefix(`${PREFIX}/`).exec();
  });

  it('creates the seed route from a form-encoded curl body with 201, then replaces it with 200', async () => {
    const first = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/1', body: SEED_ROUTE_BODY });
    assert.equal(first.statusCode, 201, first.body);
    const second = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/1', body: SEED_ROUTE_BODY });
    assert.equal(second.statusCode, 200, second.body);
    const body = jsonOf(second);
    assert.equal(body['key'], '/apisix/routes/1');
    assert.deepEqual(Object.keys(body).sort(), ['key', 'value']);
  });

  it('stores the body as JSON at /apisix/routes/1 with the id and timestamps and no schema defaults', async () => {
    await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/1', body: SEED_ROUTE_BODY });
    const text = await rawText(fx.raw, '/apisix/routes/1');
    assert.ok(text !== null, 'nothing stored at /apisix/routes/1');
    const stored = JSON.parse(text) as Record<string, unknown>;
    const { create_time: createTime, update_time: updateTime, ...rest } = stored;
    assert.deepEqual(rest, { ...SEED_ROUTE, id: '1' });
    assert.equal(typeof createTime, 'number');
    assert.equal(createTime, updateTime);
  });

  it('answers PUT with the stored value', async () => {
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/1', body: SEED_ROUTE_BODY });
    const stored = JSON.parse((await rawText(fx.raw, '/apisix/routes/1')) ?? 'null') as unknown;
    assert.deepEqual(jsonOf(res)['value'], stored);
  });

  it('keeps create_time across a replacing PUT and refreshes update_time', async () => {
    // An old object written directly, so "kept" cannot be confused with "recomputed in the same second".
    await fx.raw.put('/apisix/routes/7').value(JSON.stringify({ ...SEED_ROUTE, id: '7', create_time: 1000, update_time: 1000 }));
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/7', body: SEED_ROUTE_BODY });
    assert.equal(res.statusCode, 200, res.body);
    const value = jsonOf(res)['value'] as Record<string, unknown>;
    assert.equal(value['create_time'], 1000);
    assert.ok(typeof value['update_time'] === 'number' && value['update_time'] > 1000);
  });

  it('accepts a body with no Content-Type and one with a malformed Content-Type', async () => {
    // inject() adds no Content-Type to a string payload, so this request has none, as `curl -H 'Content-Type:'`.
    const none = await fx.app.inject({
      method: 'PUT',
      url: '/apisix/admin/routes/1',
      headers: { 'x-api-key': ADMIN_KEY },
      payload: SEED_ROUTE_BODY,
    });
    assert.equal(none.statusCode, 201, none.body);
    const malformed = await fx.app.inject({
      method: 'PUT',
      url: '/apisix/admin/routes/2',
      headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'not a media type' },
      payload: SEED_ROUTE_BODY,
    });
    assert.equal(malformed.statusCode, 201, malformed.body);
  });

  it('takes the id from the body when the URL has none', async () => {
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes', body: { ...SEED_ROUTE, id: 9 } });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(jsonOf(res)['key'], '/apisix/routes/9');
    assert.equal((jsonOf(res)['value'] as Record<string, unknown>)['id'], '9');
  });

  it('returns one route with createdIndex and modifiedIndex from etcd', async () => {
    await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/1', body: SEED_ROUTE_BODY });
    await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/1', body: SEED_ROUTE_BODY });
    const kv = (await fx.raw.get('/apisix/routes/1').exec()).kvs[0];
    assert.ok(kv !== undefined);
    const res = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes/1' });
    assert.equal(res.statusCode, 200);
    const body = jsonOf(res);
    assert.deepEqual(Object.keys(body).sort(), ['createdIndex', 'key', 'modifiedIndex', 'value']);
    assert.equal(body['key'], '/apisix/routes/1');
    assert.equal(body['createdIndex'], Number(kv.create_revision));
    assert.equal(body['modifiedIndex'], Number(kv.mod_revision));
    assert.ok(Number(kv.mod_revision) > Number(kv.create_revision));
    assert.equal((body['value'] as Record<string, unknown>)['uri'], '/helloworld.Greeter/SayHello');
  });

  it('lists routes as {total, list}, skipping the init_dir placeholder and non-JSON values', async () => {
    await fx.store.ensureDirs();
    await fx.raw.put('/apisix/routes/garbage').value('not json');
    await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/1', body: SEED_ROUTE_BODY });
    await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/2', body: SEED_ROUTE_BODY });
    const res = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes' });
    assert.equal(res.statusCode, 200);
    const body = jsonOf(res);
    assert.equal(body['total'], 2);
    const list = body['list'] as Record<string, unknown>[];
    assert.deepEqual(list.map((item) => item['key']), ['/apisix/routes/1', '/apisix/routes/2']);
    for (const item of list) {
      assert.deepEqual(Object.keys(item).sort(), ['createdIndex', 'key', 'modifiedIndex', 'value']);
    }
  });

  it('lists nothing as {"list":[],"total":0}', async () => {
    await fx.store.ensureDirs();
    const res = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body.trim(), '{"list":[],"total":0}');
  });

  it('deletes a route, answering {"deleted":"1","key":…}, after which GET answers 404 Key not found', async () => {
    await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/1', body: SEED_ROUTE_BODY });
    const del = await admin(fx.app, { method: 'DELETE', url: '/apisix/admin/routes/1' });
    assert.equal(del.statusCode, 200);
    assert.deepEqual(jsonOf(del), { deleted: '1', key: '/apisix/routes/1' });
    assert.equal(await rawText(fx.raw, '/apisix/routes/1'), null);
    const get = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes/1' });
    assert.equal(get.statusCode, 404);
    assert.deepEqual(jsonOf(get), { message: 'Key not found' });
  });

  it('answers 404 Key not found when deleting a route that does not exist', async () => {
    const res = await admin(fx.app, { method: 'DELETE', url: '/apisix/admin/routes/nope' });
    assert.equal(res.statusCode, 404);
    assert.deepEqual(jsonOf(res), { message: 'Key not found' });
  });

  it('sends Content-Type application/json and X-API-VERSION v3 on successes and errors', async () => {
    const ok = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes' });
    const missing = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes/absent' });
    const unauthorized = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes', key: null });
    for (const res of [ok, missing, unauthorized]) {
      assert.equal(res.headers['content-type'], 'application/json');
      assert.equal(res.headers['x-api-version'], 'v3');
    }
  });

  it('answers 404 {"error_msg":"Unsupported resource type: X"} for an unknown resource', async () => {
    const res = await admin(fx.app, { method: 'GET', url: '/apisix/admin/widgets/1' });
    assert.equal(res.statusCode, 404);
    assert.deepEqual(jsonOf(res), { error_msg: 'Unsupported resource type: widgets' });
  });
});
