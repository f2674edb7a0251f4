/**
 * Consumers through the admin API against a real etcd, in APISIX's shape (t/admin/consumers.t): named by
 * `username` (PUT with the name in the body or in the URL), stored at /apisix/consumers/<username> with their
 * key-auth key encrypted with the keyring and never returned, POST and PATCH refused with 405, and invalid bodies
 * refused with nothing written.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aesDecrypt, decryptSecrets } from '../../shared/crypto.ts';
import { KEYRING, admin, jsonOf, rawText, adminFixtureEachTest } from './admin-fixture.ts';

describe('admin API: consumers', () => {
  const fixture = adminFixtureEachTest();

  it('creates a consumer named in the body, replaces it, reads it without its key, and deletes it', async () => {
    const created = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/consumers', body: { username: 'jack', desc: 'new consumer' } });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(jsonOf(created)['key'], '/apisix/consumers/jack');
    const replaced = await admin(fixture().app, {
      method: 'PUT',
      url: '/apisix/admin/consumers',
      body: { username: 'jack', desc: 'new consumer', plugins: { 'key-auth': { key: 'auth-one' } } },
    });
    assert.equal(replaced.statusCode, 200, replaced.body);
    const got = jsonOf(await admin(fixture().app, { method: 'GET', url: '/apisix/admin/consumers/jack' }));
    const value = got['value'] as Record<string, unknown>;
    assert.equal(value['username'], 'jack');
    assert.deepEqual(value['plugins'], { 'key-auth': {} }, 'the key is never returned');
    assert.equal(typeof value['create_time'], 'number');
    const list = jsonOf(await admin(fixture().app, { method: 'GET', url: '/apisix/admin/consumers' }));
    assert.equal(list['total'], 1);
    const deleted = await admin(fixture().app, { method: 'DELETE', url: '/apisix/admin/consumers/jack' });
    assert.equal(deleted.statusCode, 200);
    assert.equal((await admin(fixture().app, { method: 'DELETE', url: '/apisix/admin/consumers/not_found' })).statusCode, 404);
  });

  it('stores the key-auth key encrypted with the first keyring entry, which the data plane decrypts', async () => {
    await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/consumers/ann', body: { plugins: { 'key-auth': { key: 'ann-secret-key' } } } });
    const stored = JSON.parse((await rawText(fixture().raw, '/apisix/consumers/ann')) ?? '{}') as { username: string; plugins: { 'key-auth': { key: string } } };
    assert.equal(stored.username, 'ann', 'the name from the URL is stored in the value');
    const sealed = stored.plugins['key-auth'].key;
    assert.notEqual(sealed, 'ann-secret-key');
    assert.equal(aesDecrypt(sealed, KEYRING[0] ?? ''), 'ann-secret-key');
    assert.deepEqual((decryptSecrets('consumers', stored, KEYRING) as typeof stored).plugins, { 'key-auth': { key: 'ann-secret-key' } });
    // A key written in clear (by hand, or by an APISIX without encryption) reads as it is.
    assert.deepEqual(decryptSecrets('consumers', { username: 'b', plugins: { 'key-auth': { key: 'plain-key' } } }, KEYRING), {
      username: 'b',
      plugins: { 'key-auth': { key: 'plain-key' } },
    });
  });

  it('refuses a missing name, a name that disagrees with the URL, and an invalid name, writing nothing', async () => {
    const missing = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/consumers', body: { id: 'jack' } });
    assert.equal(missing.statusCode, 400);
    assert.deepEqual(jsonOf(missing), { error_msg: 'missing consumer name' });
    const wrong = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/consumers/jack', body: { username: 'jill' } });
    assert.equal(wrong.statusCode, 400);
    assert.deepEqual(jsonOf(wrong), { error_msg: 'wrong consumer name' });
    const invalid = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/consumers', body: { username: 'jack smith' } });
    assert.equal(invalid.statusCode, 400);
    assert.match(String(jsonOf(invalid)['error_msg']), /^invalid configuration: property "username" validation failed/);
    const labels = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/consumers', body: { username: 'jack', labels: { env: ['production'] } } });
    assert.equal(labels.statusCode, 400);
    const plugin = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/consumers', body: { username: 'jack', plugins: { 'prometheus': {} } } });
    assert.equal(plugin.statusCode, 400, 'a route-only plugin on a consumer');
    assert.match(String(jsonOf(plugin)['error_msg']), /prometheus/);
    assert.equal(jsonOf(await admin(fixture().app, { method: 'GET', url: '/apisix/admin/consumers' }))['total'], 0);
  });

  it('refuses POST and PATCH with 405, as APISIX does', async () => {
    const post = await admin(fixture().app, { method: 'POST', url: '/apisix/admin/consumers', body: { username: 'jack' } });
    assert.equal(post.statusCode, 405);
    assert.deepEqual(jsonOf(post), { error_msg: 'not supported `POST` method for consumer' });
    await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/consumers', body: { username: 'jack' } });
    const patch = await admin(fixture().app, { method: 'PATCH', url: '/apisix/admin/consumers/jack', body: { desc: 'x' } });
    assert.equal(patch.statusCode, 405);
    assert.deepEqual(jsonOf(patch), { error_msg: 'not supported `PATCH` method for consumer' });
  });
});
