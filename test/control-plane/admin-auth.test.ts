/**
 * The admin token check (apisix-compat §2.1): where the key may come from, the 401 bodies, and the viewer role.
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
});
