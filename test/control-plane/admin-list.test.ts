/**
 * List endpoints as APISIX 3's v3_adapter: `name`, `label`, `uri` and `filter` filters,
 * `total` counted after filtering and before paging, paging by `page`/`page_size` in createdIndex order.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PREFIX, admin, jsonOf, startAdminFixture, type AdminFixture } from './admin-fixture.ts';

const UPSTREAM = { nodes: { '127.0.0.1:50051': 1 } };
/** More than one page of the smallest page size (10). */
const ROUTE_COUNT = 12;

describe('admin API: list filters and paging', () => {
  let fx: AdminFixture;

  const list = async (query: string): Promise<{ status: number; total: unknown; ids: string[]; body: Record<string, unknown> }> => {
    const res = await admin(fx.app, { method: 'GET', url: `/apisix/admin/routes${query}` });
    const body = jsonOf(res);
    const items = Array.isArray(body['list']) ? (body['list'] as { value: { id: string } }[]) : [];
    return { status: res.statusCode, total: body['total'], ids: items.map((item) => item.value.id), body };
  };

  before(async () => {
    fx = await startAdminFixture();
    await fx.raw.delete().prefix(`${PREFIX}/`).exec();
    await admin(fx.app, { method: 'PUT', url: '/apisix/admin/upstreams/u1', body: UPSTREAM });
    await admin(fx.app, { method: 'PUT', url: '/apisix/admin/services/s1', body: { upstream_id: 'u1' } });
    // Created in the order r11, r10, … r0, so createdIndex order differs from key order.
    for (let i = ROUTE_COUNT - 1; i >= 0; i--) {
      const body = {
        name: i % 2 === 0 ? `even-${i}` : `odd-${i}`,
        ...(i < 3 ? { labels: { tier: 'gold' } } : {}),
        ...(i === 5 ? { uris: ['/pkg.Other/Call', `/pkg.Svc${i}/*`] } : { uri: `/pkg.Svc${i}/Call` }),
        ...(i === 7 ? { service_id: 's1' } : { upstream_id: 'u1' }),
      };
      const res = await admin(fx.app, { method: 'PUT', url: `/apisix/admin/routes/r${i}`, body });
      assert.equal(res.statusCode, 201, res.body);
    }
  });

  after(async () => {
    await fx.close();
  });

  it('filters by a regex on name', async () => {
    assert.deepEqual((await list('?name=^even-1')).ids, ['r10']);
    const { total, ids } = await list('?name=even');
    assert.equal(total, ROUTE_COUNT / 2);
    assert.ok(ids.every((id) => Number(id.slice(1)) % 2 === 0));
  });

  it('filters by label key', async () => {
    const { total, ids } = await list('?label=tier');
    assert.equal(total, 3);
    assert.deepEqual(ids.sort(), ['r0', 'r1', 'r2']);
  });

  it('filters by a regex on uri, matching uris too', async () => {
    assert.deepEqual((await list('?uri=Other')).ids, ['r5']);
    assert.deepEqual((await list('?uri=Svc1[01]/')).ids.sort(), ['r10', 'r11']);
  });

  it('filters by service_id and upstream_id with filter=', async () => {
    assert.deepEqual((await list(`?filter=${encodeURIComponent('service_id=s1')}`)).ids, ['r7']);
    assert.equal((await list(`?filter=${encodeURIComponent('upstream_id=u1')}`)).total, ROUTE_COUNT - 1);
  });

  it('combines filters, all of which must match', async () => {
    const { ids } = await list('?label=tier&name=even');
    assert.deepEqual(ids.sort(), ['r0', 'r2']);
  });

  it('pages in createdIndex order with total counted before paging', async () => {
    const first = await list('?page=1&page_size=10');
    assert.equal(first.total, ROUTE_COUNT);
    assert.equal(first.ids.length, 10);
    assert.equal(first.ids[0], 'r11', 'not in createdIndex order');
    const second = await list('?page=2&page_size=10');
    assert.deepEqual(second.ids, ['r1', 'r0']);
    const beyond = await list('?page=3&page_size=10');
    assert.deepEqual([beyond.total, beyond.ids], [ROUTE_COUNT, []]);
  });

  it('pages after filtering', async () => {
    const { total, ids } = await list('?name=odd&page=1&page_size=10');
    assert.equal(total, ROUTE_COUNT / 2);
    assert.equal(ids.length, ROUTE_COUNT / 2);
  });

  it('answers 400 for a page_size outside [10, 500], a bad page or a bad regex', async () => {
    for (const query of ['?page=1&page_size=9', '?page=1&page_size=501']) {
      const res = await list(query);
      assert.deepEqual([res.status, res.body], [400, { error_msg: 'page_size must be between 10 and 500' }]);
    }
    assert.equal((await list('?page=0&page_size=10')).status, 400);
    assert.match(String((await list('?name=(')).body['error_msg']), /^invalid name regex: /);
    assert.equal((await list(`?filter=${encodeURIComponent('uri=/x')}`)).status, 400);
  });

  it('lists every object when neither page nor page_size is given, or only one of them', async () => {
    assert.equal((await list('')).ids.length, ROUTE_COUNT);
    assert.equal((await list('?page_size=10')).ids.length, ROUTE_COUNT);
  });
});
