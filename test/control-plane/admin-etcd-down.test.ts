/**
 * The admin API while etcd is unreachable: every operation answers 503 with a message naming etcd, nothing is
 * half-written, and the API serves again once the same etcd member is back (APISIX answers 503 too).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SEED_ROUTE_BODY, admin, jsonOf, startAdminFixture, type AdminFixture, type AdminRequest } from './admin-fixture.ts';

/** How long to wait for the client to reconnect to the restarted etcd before the test gives up. */
const RECOVERY_DEADLINE_MS = 30_000;
const RECOVERY_POLL_MS = 200;

describe('admin API: etcd unavailable', () => {
  let fx: AdminFixture;

  before(async () => {
    fx = await startAdminFixture();
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/1', body: SEED_ROUTE_BODY });
    assert.equal(res.statusCode, 201, res.body);
  });

  after(async () => {
    await fx.close();
  });

  describe('while etcd is stopped', () => {
    before(async () => {
      await fx.etcd.stop();
    });

    after(async () => {
      await fx.etcd.start();
    });

    const requests: [string, AdminRequest][] = [
      ['GET of one route', { method: 'GET', url: '/apisix/admin/routes/1' }],
      ['GET of the route list', { method: 'GET', url: '/apisix/admin/routes' }],
      ['PUT of a route', { method: 'PUT', url: '/apisix/admin/routes/2', body: SEED_ROUTE_BODY }],
      ['DELETE of a route', { method: 'DELETE', url: '/apisix/admin/routes/1' }],
      ['POST of a route', { method: 'POST', url: '/apisix/admin/routes', body: SEED_ROUTE_BODY }],
      ['PATCH of a route', { method: 'PATCH', url: '/apisix/admin/routes/1', body: { desc: 'x' } }],
      ['PUT of an upstream', { method: 'PUT', url: '/apisix/admin/upstreams/1', body: { nodes: {} } }],
      ['DELETE of an upstream', { method: 'DELETE', url: '/apisix/admin/upstreams/1' }],
      ['GET of the service list', { method: 'GET', url: '/apisix/admin/services' }],
    ];
    for (const [title, request] of requests) {
      it(`answers 503 with an etcd error_msg to a ${title}`, async () => {
        const res = await admin(fx.app, request);
        assert.equal(res.statusCode, 503, res.body);
        assert.match(String(jsonOf(res)['error_msg']), /^etcd is unavailable: /);
        assert.equal(res.headers['content-type'], 'application/json');
      });
    }

    it('still validates a PUT before touching etcd', async () => {
      const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/3', body: '{"uri":"/x"}' });
      assert.equal(res.statusCode, 400, res.body);
    });
  });

  it('serves again once etcd is back, with the data written before the outage', async () => {
    const deadline = Date.now() + RECOVERY_DEADLINE_MS;
    let last = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes/1' });
    while (last.statusCode === 503 && Date.now() < deadline) {
      await sleep(RECOVERY_POLL_MS);
      last = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes/1' });
    }
    assert.equal(last.statusCode, 200, last.body);
    assert.equal(jsonOf(last)['key'], '/apisix/routes/1');
    const list = await admin(fx.app, { method: 'GET', url: '/apisix/admin/routes' });
    assert.equal(jsonOf(list)['total'], 1);
    // Nothing the refused writes carried reached etcd: not the PATCH, the POST, nor the upstream.
    assert.equal((jsonOf(last)['value'] as Record<string, unknown>)['desc'], undefined);
    const upstreams = await admin(fx.app, { method: 'GET', url: '/apisix/admin/upstreams' });
    assert.equal(jsonOf(upstreams)['total'], 0);
  });
});
