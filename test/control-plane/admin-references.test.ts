/**
 * Reference integrity (docs/admin-api.md, References): references to absent objects are refused with APISIX's messages,
 * deleting an object still referenced is refused naming the referrer unless `?force=true`, and a write racing a
 * delete cannot leave a dangling reference (both are etcd transactions guarded by what they read).
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { checkNoReferrers, checkReferences, deleteRefusal } from '../../control-plane/admin/references.ts';
import { AdminBadRequest } from '../../shared/errors.ts';
import { makeCert, type CertAndKey } from '../helpers/certs.ts';
import { PREFIX, admin, jsonOf, rawText, startAdminFixture, type AdminFixture } from './admin-fixture.ts';

const UPSTREAM = { nodes: { '127.0.0.1:50051': 1 } };
const route = (extra: object): object => ({ uri: '/helloworld.Greeter/SayHello', ...extra });

describe('admin API: references between resources', () => {
  let fx: AdminFixture;
  let pair: CertAndKey;

  const put = async (url: string, body: object): Promise<void> => {
    const res = await admin(fx.app, { method: 'PUT', url: `/apisix/admin/${url}`, body });
    assert.ok(res.statusCode === 200 || res.statusCode === 201, `${url}: ${res.body}`);
  };
  const refused = async (method: 'PUT' | 'DELETE' | 'PATCH', url: string, message: string, body?: object): Promise<void> => {
    const res = await admin(fx.app, { method, url: `/apisix/admin/${url}`, ...(body === undefined ? {} : { body }) });
    assert.equal(res.statusCode, 400, res.body);
    assert.deepEqual(jsonOf(res), { error_msg: message });
  };

  before(async () => {
    fx = await startAdminFixture();
    pair = await makeCert({ sans: ['client.test'] });
  });

  after(async () => {
    await fx.close();
  });

  beforeEach(async () => {
    await fx.raw.delete().prefix(`${PREFIX}/`).exec();
  });

  it('refuses a route naming an absent upstream_id or service_id, writing nothing', async () => {
    await refused('PUT', 'routes/1', 'failed to fetch upstream info by upstream id [99], response code: 404', route({ upstream_id: 99 }));
    await refused('PUT', 'routes/1', 'failed to fetch service info by service id [s], response code: 404', route({ service_id: 's' }));
    assert.equal(await rawText(fx.raw, '/apisix/routes/1'), null);
  });

  it('accepts references to objects that exist, stored as given', async () => {
    await put('upstreams/u1', UPSTREAM);
    await put('services/s1', { upstream_id: 'u1' });
    await put('routes/1', route({ service_id: 's1' }));
    await put('routes/2', route({ upstream_id: 'u1' }));
    const stored = JSON.parse((await rawText(fx.raw, '/apisix/routes/1')) ?? 'null') as Record<string, unknown>;
    assert.equal(stored['service_id'], 's1');
  });

  it('refuses a service naming an absent upstream_id', async () => {
    await refused('PUT', 'services/s1', 'failed to fetch upstream info by upstream id [nope], response code: 404', { upstream_id: 'nope' });
  });

  it('refuses tls.client_cert_id naming an absent ssl or one that is not of type client', async () => {
    const upstream = { ...UPSTREAM, scheme: 'grpcs', tls: { client_cert_id: 'c1' } };
    await refused('PUT', 'upstreams/u1', 'failed to fetch ssl info by ssl id [c1], response code: 404', upstream);
    await put('ssls/c1', { ...pair, sni: 'client.test' });
    await refused('PUT', 'upstreams/u1', 'failed to fetch ssl info by ssl id [c1], wrong ssl type', upstream);
    await put('ssls/c1', { ...pair, type: 'client' });
    await put('upstreams/u1', upstream);
    await put('routes/1', route({ upstream }));
  });

  it('refuses deleting an upstream a route uses, naming the route; force=true deletes it anyway', async () => {
    await put('upstreams/u1', UPSTREAM);
    await put('routes/r1', route({ upstream_id: 'u1' }));
    await refused('DELETE', 'upstreams/u1', 'can not delete this upstream, route [r1] is still using it now');
    await refused('DELETE', 'upstreams/u1?force=yes', 'can not delete this upstream, route [r1] is still using it now');
    assert.notEqual(await rawText(fx.raw, '/apisix/upstreams/u1'), null);
    const forced = await admin(fx.app, { method: 'DELETE', url: '/apisix/admin/upstreams/u1?force=true' });
    assert.equal(forced.statusCode, 200, forced.body);
    assert.equal(await rawText(fx.raw, '/apisix/upstreams/u1'), null);
  });

  it('refuses deleting an upstream a service uses, and a service a route uses, in APISIX words', async () => {
    await put('upstreams/u1', UPSTREAM);
    await put('services/s1', { upstream_id: 'u1' });
    await put('routes/r1', route({ service_id: 's1' }));
    await refused('DELETE', 'upstreams/u1', 'can not delete this upstream, service [s1] is still using it now');
    await refused('DELETE', 'services/s1', 'can not delete this service directly, route [r1] is still using it now');
  });

  it('refuses deleting a client certificate an upstream uses, or turning it into a server certificate', async () => {
    await put('ssls/c1', { ...pair, type: 'client' });
    await put('upstreams/u1', { ...UPSTREAM, scheme: 'grpcs', tls: { client_cert_id: 'c1' } });
    await refused('DELETE', 'ssls/c1', 'can not delete this ssl, upstream [u1] is still using it now');
    await refused('PUT', 'ssls/c1', 'can not change the type of this ssl, upstream [u1] is still using it now', { ...pair, sni: 'x.test' });
  });

  it('deletes an upstream once its last referrer is gone', async () => {
    await put('upstreams/u1', UPSTREAM);
    await put('routes/r1', route({ upstream_id: 'u1' }));
    await admin(fx.app, { method: 'DELETE', url: '/apisix/admin/routes/r1' });
    const res = await admin(fx.app, { method: 'DELETE', url: '/apisix/admin/upstreams/u1' });
    assert.equal(res.statusCode, 200, res.body);
  });

  it('refuses a delete when a referrer appears between its scan and its commit', async () => {
    await put('upstreams/u1', UPSTREAM);
    let scans = 0;
    const deletion = fx.store.delete('upstreams', 'u1', async () => {
      scans += 1;
      const preconditions = await checkNoReferrers(fx.store, 'upstreams', 'u1', deleteRefusal('upstreams'));
      // Another admin writes a route using the upstream after this scan, before the delete commits.
      if (scans === 1) await fx.raw.put('/apisix/routes/late').value(JSON.stringify(route({ id: 'late', upstream_id: 'u1' })));
      return preconditions;
    });
    await assert.rejects(deletion, (err: unknown) => err instanceof AdminBadRequest && err.message.includes('route [late]'));
    assert.equal(scans, 2);
    assert.notEqual(await rawText(fx.raw, '/apisix/upstreams/u1'), null);
  });

  it('refuses a write when its referenced object is deleted between the check and the commit', async () => {
    await put('upstreams/u1', UPSTREAM);
    let builds = 0;
    const value = route({ id: 'r1', upstream_id: 'u1' });
    const write = fx.store.put('routes', 'r1', async () => {
      builds += 1;
      const preconditions = await checkReferences(fx.store, 'routes', value);
      if (builds === 1) await fx.raw.delete().key('/apisix/upstreams/u1');
      return { value, preconditions };
    });
    await assert.rejects(write, (err: unknown) => err instanceof AdminBadRequest && err.message.includes('upstream id [u1]'));
    assert.equal(builds, 2);
    assert.equal(await rawText(fx.raw, '/apisix/routes/r1'), null);
  });
});
