/**
 * The admin token check (APISIX's `check_token`): where the key may come from, the 401 bodies, and the viewer role.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ADMIN_KEY,
  SEED_ROUTE_BODY,
  VIEWER_KEY,
  admin,
  jsonOf,
  rawText,
  buildTestApp,
  startAdminFixture,
  type AdminFixture,
} from './admin-fixture.ts';

describe('admin API: authentication', () => {
  let fx: AdminFixture;

  before(async () => {
    fx = await startAdminFixture();
  });

  after(async () => {
    await fx.close();
  });

  it('answers 401 missing apikey when no key is sent', async () => {
    const res = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes', key: null });
    assert.equal(res.statusCode, 401);
    assert.deepEqual(jsonOf(res), { error_msg: 'failed to check token', description: 'missing apikey' });
  });

  it('answers 401 wrong apikey for a key that is not configured', async () => {
    const res = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes', key: 'not-a-key' });
    assert.equal(res.statusCode, 401);
    assert.deepEqual(jsonOf(res), { error_msg: 'failed to check token', description: 'wrong apikey' });
  });

  it('checks the key before anything else, even for an unknown resource', async () => {
    const res = await admin(fx.app, { method: 'GET', url: '/apisix/admin/widgets', key: null });
    assert.equal(res.statusCode, 401);
  });

  it('does not write anything for a PUT with a wrong key', async () => {
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/401', body: SEED_ROUTE_BODY, key: 'bad' });
    assert.equal(res.statusCode, 401);
    assert.equal(await rawText(fx.raw, '/apisix/routes/401'), null);
  });

  it('accepts the key from the api_key query argument', async () => {
    const res = await admin(fx.app, { method: 'GET', url: `/apisix/admin/routes?api_key=${ADMIN_KEY}`, key: null });
    assert.equal(res.statusCode, 200, res.body);
  });

  it('accepts the key from the x_api_key cookie', async () => {
    const res = await admin(fx.app, {
      method: 'GET',
      url: '/apisix/admin/routes',
      key: null,
      headers: { cookie: `theme=dark; x_api_key=${ADMIN_KEY}` },
    });
    assert.equal(res.statusCode, 200, res.body);
  });

  it('prefers the api_key query argument over the header, as APISIX does', async () => {
    const res = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes?api_key=wrong', key: ADMIN_KEY });
    assert.equal(res.statusCode, 401);
    assert.equal(jsonOf(res)['description'], 'wrong apikey');
  });

  it('lets a viewer key read', async () => {
    const res = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes', key: VIEWER_KEY });
    assert.equal(res.statusCode, 200, res.body);
  });

  it('refuses a PUT with a viewer key with 401 invalid method for role viewer, writing nothing', async () => {
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/v', body: SEED_ROUTE_BODY, key: VIEWER_KEY });
    assert.equal(res.statusCode, 401);
    assert.deepEqual(jsonOf(res), { error_msg: 'failed to check token', description: 'invalid method for role viewer' });
    assert.equal(await rawText(fx.raw, '/apisix/routes/v'), null);
  });

  it('refuses a DELETE with a viewer key', async () => {
    const res = await admin(fx.app, { method: 'DELETE', url: '/apisix/admin/routes/v', key: VIEWER_KEY });
    assert.equal(res.statusCode, 401);
    assert.equal(jsonOf(res)['description'], 'invalid method for role viewer');
  });

  it('answers paths outside /apisix/admin with 404 without asking for a key', async () => {
    const res = await admin(fx.app, { method: 'GET', url: '/elsewhere', key: null });
    assert.equal(res.statusCode, 404);
    assert.deepEqual(jsonOf(res), { error_msg: 'not found' });
  });
  it('refuses POST and PATCH with a viewer key too', async () => {
    for (const method of ['POST', 'PATCH'] as const) {
      const res = await admin(fx.app, { method, url: `/apisix/admin/routes${method === 'PATCH' ? '/v' : ''}`, body: SEED_ROUTE_BODY, key: VIEWER_KEY });
      assert.equal(res.statusCode, 401, method);
      assert.equal(jsonOf(res)['description'], 'invalid method for role viewer');
    }
  });

  it('answers 403 to a client outside the default loopback-only allow_admin, before looking at the key', async () => {
    for (const key of [ADMIN_KEY, null]) {
      const res = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes', key, remoteAddress: '10.1.2.3' });
      assert.equal(res.statusCode, 403, res.body);
      assert.match(String(jsonOf(res)['error_msg']), /10\.1\.2\.3 is not allowed/);
    }
    const v6 = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes', remoteAddress: 'fd00::1' });
    assert.equal(v6.statusCode, 403);
  });

  it('lets loopback clients in, over IPv4, IPv6 and IPv4-mapped IPv6', async () => {
    for (const remoteAddress of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) {
      const res = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes', remoteAddress });
      assert.equal(res.statusCode, 200, `${remoteAddress}: ${res.body}`);
    }
  });

  it('allows exactly the configured CIDR blocks', async () => {
    const app = buildTestApp(fx.store, { allowAdmin: ['10.0.0.0/8', '2001:db8::/32'] });
    try {
      const inside = await admin(app, { method: 'GET', url: '/apisix/admin/routes', remoteAddress: '10.200.0.1' });
      const inside6 = await admin(app, { method: 'GET', url: '/apisix/admin/routes', remoteAddress: '2001:db8::5' });
      const outside = await admin(app, { method: 'GET', url: '/apisix/admin/routes', remoteAddress: '11.0.0.1' });
      const loopback = await admin(app, { method: 'GET', url: '/apisix/admin/routes', remoteAddress: '127.0.0.1' });
      assert.deepEqual([inside.statusCode, inside6.statusCode, outside.statusCode, loopback.statusCode], [200, 200, 403, 403]);
    } finally {
      await app.close();
    }
  });
});
