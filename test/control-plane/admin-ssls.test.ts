/**
 * The ssls resource: the 2.x `ssl` alias of the seed document, and private keys that are stored but never
 * returned (APISIX strips `key` and `keys` too).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generate } from 'selfsigned';
import { aesDecrypt, aesEncrypt } from '../../shared/crypto.ts';
import { KEYRING, admin, jsonOf, rawText, startAdminFixture, type AdminFixture } from './admin-fixture.ts';

interface Pair {
  cert: string;
  key: string;
}

async function makePair(keyType: 'ec' | 'rsa', host: string): Promise<Pair> {
  const pems = await generate([{ name: 'commonName', value: host }], {
    keyType,
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: host }] }],
  });
  return { cert: pems.cert, key: pems.private };
}

describe('admin API: ssls', () => {
  let fx: AdminFixture;
  let ec: Pair;
  let rsa: Pair;

  before(async () => {
    fx = await startAdminFixture();
    ec = await makePair('ec', 'test.com');
    rsa = await makePair('rsa', 'test.com');
  });

  after(async () => {
    await fx.close();
  });

  it('accepts the 2.x /apisix/admin/ssl/<id> path and stores under /apisix/ssls/<id>', async () => {
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/ssl/1', body: { ...ec, snis: ['test.com'] } });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(jsonOf(res)['key'], '/apisix/ssls/1');
    assert.notEqual(await rawText(fx.raw, '/apisix/ssls/1'), null);
    const viaAlias = await admin(fx.app, { method: 'GET', url: '/apisix/admin/ssl/1' });
    assert.equal(viaAlias.statusCode, 200);
    assert.equal(jsonOf(viaAlias)['key'], '/apisix/ssls/1');
  });

  it('stores the private keys encrypted with the first keyring entry and returns them in no response', async () => {
    const body = { ...ec, certs: [rsa.cert], keys: [rsa.key], sni: 'test.com' };
    const put = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/ssls/2', body });
    assert.equal(put.statusCode, 201, put.body);
    const text = (await rawText(fx.raw, '/apisix/ssls/2')) ?? '';
    assert.ok(!text.includes('PRIVATE KEY'), 'a private key is stored in clear');
    const stored = JSON.parse(text) as { key: string; keys: string[] };
    assert.equal(aesDecrypt(stored.key, KEYRING[0] ?? ''), ec.key);
    assert.deepEqual(stored.keys.map((k) => aesDecrypt(k, KEYRING[0] ?? '')), [rsa.key]);

    const replaced = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/ssls/2', body });
    const one = await admin(fx.app, { method: 'GET', url: '/apisix/admin/ssls/2' });
    const list = await admin(fx.app, { method: 'GET', url: '/apisix/admin/ssls' });
    for (const res of [replaced, one, list]) assert.equal(res.statusCode, 200, res.body);
    for (const res of [put, replaced, one, list]) {
      assert.ok(!res.body.includes('PRIVATE KEY'), `a private key leaked in ${res.body.slice(0, 200)}`);
    }
    const value = jsonOf(one)['value'] as Record<string, unknown>;
    assert.equal(value['cert'], ec.cert);
    assert.deepEqual(value['certs'], [rsa.cert]);
    assert.equal('key' in value, false);
    assert.equal('keys' in value, false);
  });

  it('refuses a key that does not match its certificate, writing nothing', async () => {
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/ssls/3', body: { cert: ec.cert, key: rsa.key, sni: 'test.com' } });
    assert.equal(res.statusCode, 400);
    assert.match(String(jsonOf(res)['error_msg']), /^invalid configuration: /);
    assert.equal(await rawText(fx.raw, '/apisix/ssls/3'), null);
  });

  it('answers wrong ssl id when the body id differs from the URL id', async () => {
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/ssls/4', body: { ...ec, sni: 'test.com', id: '5' } });
    assert.equal(res.statusCode, 400);
    assert.deepEqual(jsonOf(res), { error_msg: 'wrong ssl id' });
  });

  it('deletes through the alias', async () => {
    await admin(fx.app, { method: 'PUT', url: '/apisix/admin/ssls/6', body: { ...ec, sni: 'test.com' } });
    const res = await admin(fx.app, { method: 'DELETE', url: '/apisix/admin/ssl/6' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(jsonOf(res), { deleted: '1', key: '/apisix/ssls/6' });
    assert.equal(await rawText(fx.raw, '/apisix/ssls/6'), null);
  });
  it('accepts a key already encrypted with another keyring entry, as APISIX stores it, and re-encrypts it', async () => {
    const sealedByApisix = aesEncrypt(ec.key, KEYRING[1] ?? '');
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/ssls/7', body: { cert: ec.cert, key: sealedByApisix, sni: 'test.com' } });
    assert.equal(res.statusCode, 201, res.body);
    const stored = JSON.parse((await rawText(fx.raw, '/apisix/ssls/7')) ?? 'null') as { key: string };
    assert.equal(aesDecrypt(stored.key, KEYRING[0] ?? ''), ec.key);
  });

  it('refuses a key encrypted with a keyring it does not have, writing nothing', async () => {
    const foreign = aesEncrypt(ec.key, 'ffffffffffffffff');
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/ssls/8', body: { cert: ec.cert, key: foreign, sni: 'test.com' } });
    assert.equal(res.statusCode, 400, res.body);
    assert.match(String(jsonOf(res)['error_msg']), /^failed to decrypt previous encrypted key: property "key"/);
    assert.equal(await rawText(fx.raw, '/apisix/ssls/8'), null);
  });

  it('accepts a client certificate without SNI (type client), for upstream mTLS', async () => {
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/ssls/9', body: { ...ec, type: 'client' } });
    assert.equal(res.statusCode, 201, res.body);
    const server = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/ssls/10', body: { ...ec } });
    assert.equal(server.statusCode, 400, server.body);
  });
});
