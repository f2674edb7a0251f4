/**
 * Prototype pollution through the admin API (issue #11 case 8): a nested `"__proto__"` key in a PATCH used to become
 * the merged object's prototype, so validation saw the inherited `nodes` while etcd stored `"upstream":{}` and the
 * two planes disagreed. Every body (PUT, POST, PATCH, any Content-Type) with `__proto__`, `constructor` or
 * `prototype` anywhere is now a 400 that writes nothing, and a PATCH sub-path naming one is refused too.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergePatch } from '../../control-plane/admin/patch.ts';
import { SEED_ROUTE, admin } from '../control-plane/admin-fixture.ts';
import { SEEDED_ROUTE_URL, assertLegitimatePutWorks, assertPrototypeClean, assertRefused, storedValue, type Json, useAdminFixture } from './admin-kit.ts';

const ROUTE_URL = SEEDED_ROUTE_URL;

describe('admin API: prototype pollution', () => {
  const fixture = useAdminFixture({ seedRoute: true });

  it('refuses a PATCH whose nested __proto__ would hide deleted nodes from validation, keeping the stored route', async () => {
    const body = '{"upstream":{"nodes":null,"__proto__":{"nodes":{"127.0.0.1:50099":1}}}}';
    const message = await assertRefused(fixture(), { method: 'PATCH', url: ROUTE_URL, body }, 'property name "__proto__" is forbidden');
    assert.match(message, /^invalid request body: property "upstream" validation failed: /);
    const stored = await storedValue(fixture(), 'routes/1');
    assert.deepEqual((stored['upstream'] as Json)['nodes'], { '127.0.0.1:50051': 1 });
    assertPrototypeClean();
    await assertLegitimatePutWorks(fixture());
  });

  it('refuses the same PATCH sent as application/json, so no Content-Type reaches another parser', async () => {
    const body = '{"upstream":{"nodes":null,"__proto__":{"nodes":{"127.0.0.1:50099":1}}}}';
    const headers = { 'content-type': 'application/json' };
    await assertRefused(fixture(), { method: 'PATCH', url: ROUTE_URL, body, headers }, 'property name "__proto__" is forbidden');
    assertPrototypeClean();
    await assertLegitimatePutWorks(fixture());
  });

  it('refuses a top-level __proto__ in a PUT, which would otherwise be dropped on the way to etcd', async () => {
    const body = '{"uri":"/a.B/C","__proto__":{"upstream":{"nodes":{"127.0.0.1:50051":1}}}}';
    await assertRefused(fixture(), { method: 'PUT', url: '/apisix/admin/routes/2', body }, 'property name "__proto__" is forbidden');
    assertPrototypeClean();
    await assertLegitimatePutWorks(fixture());
  });

  it('refuses __proto__ inside free-form node metadata, where the schema allows any key', async () => {
    const body = '{"uri":"/a.B/C","upstream":{"nodes":[{"host":"127.0.0.1","port":1,"weight":1,"metadata":{"__proto__":{"polluted":1}}}]}}';
    const message = await assertRefused(fixture(), { method: 'PUT', url: '/apisix/admin/routes/2', body }, 'is forbidden');
    assert.match(message, /property "metadata" validation failed: property name "__proto__" is forbidden$/);
    assertPrototypeClean();
    await assertLegitimatePutWorks(fixture());
  });

  it('refuses a constructor key in labels on a POST, using up no generated id', async () => {
    const body = { ...SEED_ROUTE, labels: { constructor: 'x' } };
    await assertRefused(fixture(), { method: 'POST', url: '/apisix/admin/routes', body }, 'property name "constructor" is forbidden');
    await assertLegitimatePutWorks(fixture());
  });

  it('refuses a prototype key in an upstream body', async () => {
    const body = { nodes: { '127.0.0.1:50051': 1 }, keepalive_pool: { prototype: { size: 1 } } };
    await assertRefused(fixture(), { method: 'PUT', url: '/apisix/admin/upstreams/1', body }, 'property name "prototype" is forbidden');
    await assertLegitimatePutWorks(fixture());
  });

  it('refuses a PATCH sub-path through __proto__, which would walk into Object.prototype', async () => {
    const body = '{"127.0.0.1:50099":1}';
    await assertRefused(fixture(), { method: 'PATCH', url: `${ROUTE_URL}/__proto__/nodes`, body }, 'invalid sub-path');
    await assertRefused(fixture(), { method: 'PATCH', url: `${ROUTE_URL}/upstream/constructor`, body }, 'invalid sub-path');
    assertPrototypeClean();
    await assertLegitimatePutWorks(fixture());
  });

  it('still merges a legitimate PATCH into the stored route', async () => {
    const res = await admin(fixture().app, { method: 'PATCH', url: ROUTE_URL, body: { upstream: { nodes: { '127.0.0.1:50052': 2 } } } });
    assert.equal(res.statusCode, 200, res.body);
    const stored = await storedValue(fixture(), 'routes/1');
    assert.deepEqual((stored['upstream'] as Json)['nodes'], { '127.0.0.1:50051': 1, '127.0.0.1:50052': 2 });
  });

  it('merges into prototype-less objects, so even a __proto__ field that got past the body check stays plain data', () => {
    const patch = JSON.parse('{"upstream":{"__proto__":{"nodes":{"x:1":1}}}}') as unknown;
    const merged = mergePatch({ upstream: { nodes: { 'a:1': 1 } } }, patch) as Json;
    const upstream = merged['upstream'] as Json;
    assert.equal(Object.getPrototypeOf(merged), null);
    assert.equal(Object.getPrototypeOf(upstream), null);
    assert.ok(Object.hasOwn(upstream, '__proto__'), 'the key is an own field, not a prototype');
    assert.deepEqual({ ...upstream['nodes'] as Json }, { 'a:1': 1 });
    assertPrototypeClean();
  });
});
