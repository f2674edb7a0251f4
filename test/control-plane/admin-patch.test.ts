/**
 * PATCH semantics (docs/admin-api.md): deep merge where arrays replace and null deletes, sub-path PATCH
 * replacing one field with the raw body, the merged result validated again, timestamps, private keys kept through
 * a PATCH, and concurrent PATCHes of one object that lose nothing.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { aesDecrypt } from '../../shared/crypto.ts';
import { makeCert } from '../helpers/certs.ts';
import { KEYRING, PREFIX, SEED_ROUTE, admin, jsonOf, rawText, startAdminFixture, type AdminFixture } from './admin-fixture.ts';

type Json = Record<string, unknown>;

const ROUTE = {
  ...SEED_ROUTE,
  labels: { team: 'a', env: 'dev' },
  upstream: { scheme: 'grpc', nodes: { '127.0.0.1:50051': 1, '127.0.0.1:50052': 2 } },
};

describe('admin API: PATCH', () => {
  let fx: AdminFixture;

  const stored = async (key = '/apisix/routes/1'): Promise<Json> => JSON.parse((await rawText(fx.raw, key)) ?? 'null') as Json;

  before(async () => {
    fx = await startAdminFixture();
  });

  after(async () => {
    await fx.close();
  });

  beforeEach(async () => {
    await fx.raw.delete().prefix(`${PREFIX}/`).exec();
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/1', body: ROUTE });
    assert.equal(res.statusCode, 201, res.body);
  });

  it('merges objects recursively, keeping the fields the patch does not name', async () => {
    const res = await admin(fx.app, { method: 'PATCH', url: '/apisix/admin/routes/1', body: { labels: { env: 'prod' }, upstream: { retries: 1 } } });
    assert.equal(res.statusCode, 200, res.body);
    const value = await stored();
    assert.deepEqual(value['labels'], { team: 'a', env: 'prod' });
    assert.deepEqual(value['upstream'], { ...ROUTE.upstream, retries: 1 });
    assert.equal(value['uri'], SEED_ROUTE['uri']);
  });

  it('replaces arrays wholesale', async () => {
    await admin(fx.app, { method: 'PATCH', url: '/apisix/admin/routes/1', body: { methods: ['POST'] } });
    assert.deepEqual((await stored())['methods'], ['POST']);
  });

  it('deletes a field given as null, such as one node of the hash-map form', async () => {
    const res = await admin(fx.app, {
      method: 'PATCH',
      url: '/apisix/admin/routes/1',
      body: { labels: null, upstream: { nodes: { '127.0.0.1:50052': null } } },
    });
    assert.equal(res.statusCode, 200, res.body);
    const value = await stored();
    assert.equal('labels' in value, false);
    assert.deepEqual((value['upstream'] as Json)['nodes'], { '127.0.0.1:50051': 1 });
  });

  it('replaces the field at a sub-path with the raw body: /routes/1/upstream/nodes', async () => {
    const nodes = [{ host: '10.0.0.1', port: 9000, weight: 3, priority: 1 }];
    const res = await admin(fx.app, { method: 'PATCH', url: '/apisix/admin/routes/1/upstream/nodes', body: nodes });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(((await stored())['upstream'] as Json)['nodes'], nodes);
  });

  it('takes any JSON type at a sub-path, a string for /desc', async () => {
    const res = await admin(fx.app, { method: 'PATCH', url: '/apisix/admin/routes/1/desc', body: '"from a sub-path"' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal((await stored())['desc'], 'from a sub-path');
  });

  it('answers 400 invalid sub-path for a path through a non-object, writing nothing', async () => {
    const before = await rawText(fx.raw, '/apisix/routes/1');
    const res = await admin(fx.app, { method: 'PATCH', url: '/apisix/admin/routes/1/uri/x', body: '"y"' });
    assert.equal(res.statusCode, 400);
    assert.deepEqual(jsonOf(res), { error_msg: 'invalid sub-path: /uri' });
    assert.equal(await rawText(fx.raw, '/apisix/routes/1'), before);
  });

  it('validates the merged result and writes nothing when it is invalid', async () => {
    const before = await rawText(fx.raw, '/apisix/routes/1');
    const merged = await admin(fx.app, { method: 'PATCH', url: '/apisix/admin/routes/1', body: { upstream: { scheme: 'http' } } });
    assert.equal(merged.statusCode, 400);
    assert.match(String(jsonOf(merged)['error_msg']), /^invalid configuration: property "upstream" validation failed: property "scheme"/);
    const deleted = await admin(fx.app, { method: 'PATCH', url: '/apisix/admin/routes/1', body: { uri: null } });
    assert.equal(deleted.statusCode, 400);
    assert.equal(await rawText(fx.raw, '/apisix/routes/1'), before);
  });

  it('refuses an id that differs from the URL and client-supplied timestamps, also at a sub-path', async () => {
    const wrongId = await admin(fx.app, { method: 'PATCH', url: '/apisix/admin/routes/1', body: { id: '2' } });
    assert.deepEqual([wrongId.statusCode, jsonOf(wrongId)], [400, { error_msg: 'wrong route id' }]);
    const stamp = await admin(fx.app, { method: 'PATCH', url: '/apisix/admin/routes/1', body: { create_time: 1 } });
    assert.deepEqual([stamp.statusCode, jsonOf(stamp)], [400, { error_msg: 'the property is forbidden:  create_time' }]);
    const subStamp = await admin(fx.app, { method: 'PATCH', url: '/apisix/admin/routes/1/update_time', body: '1' });
    assert.deepEqual([subStamp.statusCode, jsonOf(subStamp)], [400, { error_msg: 'the property is forbidden:  update_time' }]);
  });

  it('keeps create_time and refreshes update_time', async () => {
    await fx.raw.put('/apisix/routes/1').value(JSON.stringify({ ...ROUTE, id: '1', create_time: 1000, update_time: 1000 }));
    const res = await admin(fx.app, { method: 'PATCH', url: '/apisix/admin/routes/1', body: { desc: 'x' } });
    const value = jsonOf(res)['value'] as Json;
    assert.equal(value['create_time'], 1000);
    assert.ok(typeof value['update_time'] === 'number' && value['update_time'] > 1000);
  });

  it('keeps an ssl private key through a PATCH: re-checked against the certificate and stored encrypted', async () => {
    const pair = await makeCert({ sans: ['test.com'] });
    await admin(fx.app, { method: 'PUT', url: '/apisix/admin/ssls/1', body: { ...pair, sni: 'test.com' } });
    const res = await admin(fx.app, { method: 'PATCH', url: '/apisix/admin/ssls/1', body: { sni: 'other.test.com' } });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal('key' in (jsonOf(res)['value'] as Json), false);
    const ssl = await stored('/apisix/ssls/1');
    assert.equal(ssl['sni'], 'other.test.com');
    assert.equal(aesDecrypt(String(ssl['key']), KEYRING[0] ?? ''), pair.key);
  });

  it('loses no update when PATCHes of one object run concurrently', async () => {
    const writers = 6;
    const results = await Promise.all(
      Array.from({ length: writers }, (_, i) =>
        admin(fx.app, { method: 'PATCH', url: '/apisix/admin/routes/1', body: { labels: { [`w${i}`]: 'yes' } } }),
      ),
    );
    const labels = (await stored())['labels'] as Json;
    let succeeded = 0;
    results.forEach((res, i) => {
      // A writer may lose every retry (409 value changed before overwritten), but a 200 must have landed.
      if (res.statusCode === 200) {
        succeeded += 1;
        assert.equal(labels[`w${i}`], 'yes', `writer ${i} answered 200 but its label is gone`);
      } else {
        assert.equal(res.statusCode, 409, res.body);
        assert.match(String(jsonOf(res)['error_msg']), /^value changed before overwritten/);
      }
    });
    assert.ok(succeeded >= 1);
    assert.equal(labels['team'], 'a');
  });
});
