/**
 * Every method on every resource type against a real etcd (APISIX 3's v3 shapes): PUT (201 then 200), GET one and
 * list, POST with a generated 20-digit id, PATCH, DELETE, and the 404s for absent ids. One table row per type, so
 * a type that misses a method fails here by name.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { makeCert, type CertAndKey } from '../helpers/certs.ts';
import { PREFIX, SEED_ROUTE, admin, jsonOf, rawText, startAdminFixture, type AdminFixture } from './admin-fixture.ts';

interface Row {
  type: 'routes' | 'upstreams' | 'services' | 'ssls';
  singular: string;
  body: (pair: CertAndKey) => Record<string, unknown>;
}

const ROWS: Row[] = [
  { type: 'routes', singular: 'route', body: () => SEED_ROUTE },
  { type: 'upstreams', singular: 'upstream', body: () => ({ scheme: 'grpc', nodes: { '127.0.0.1:50051': 1 } }) },
  { type: 'services', singular: 'service', body: () => ({ upstream: { nodes: [{ host: '127.0.0.1', port: 50051, weight: 1 }] } }) },
  { type: 'ssls', singular: 'ssl', body: (pair) => ({ cert: pair.cert, key: pair.key, snis: ['test.com'] }) },
];

type Json = Record<string, unknown>;

describe('admin API: every method on every resource', () => {
  let fx: AdminFixture;
  let pair: CertAndKey;

  before(async () => {
    fx = await startAdminFixture();
    pair = await makeCert({ sans: ['test.com'] });
  });

  after(async () => {
    await fx.close();
  });

  beforeEach(async () => {
    await fx.raw.delete().prefix(`${PREFIX}/`).exec();
  });

  for (const row of ROWS) {
    const base = `/apisix/admin/${row.type}`;

    describe(row.type, () => {
      it('creates with PUT (201), replaces with PUT (200) and keeps the object at /apisix/<type>/<id>', async () => {
        const first = await admin(fx.app, { method: 'PUT', url: `${base}/1`, body: row.body(pair) });
        assert.equal(first.statusCode, 201, first.body);
        const second = await admin(fx.app, { method: 'PUT', url: `${base}/1`, body: row.body(pair) });
        assert.equal(second.statusCode, 200, second.body);
        assert.equal(jsonOf(second)['key'], `/apisix/${row.type}/1`);
        const stored = JSON.parse((await rawText(fx.raw, `/apisix/${row.type}/1`)) ?? 'null') as Json;
        assert.equal(stored['id'], '1');
        assert.equal(typeof stored['create_time'], 'number');
      });

      it('reads one object with createdIndex and modifiedIndex, and lists it', async () => {
        await admin(fx.app, { method: 'PUT', url: `${base}/1`, body: row.body(pair) });
        const one = await admin(fx.app, { method: 'GET', url: `${base}/1` });
        assert.equal(one.statusCode, 200, one.body);
        assert.deepEqual(Object.keys(jsonOf(one)).sort(), ['createdIndex', 'key', 'modifiedIndex', 'value']);
        const list = await admin(fx.app, { method: 'GET', url: base });
        assert.equal(jsonOf(list)['total'], 1);
        assert.equal(((jsonOf(list)['list'] as Json[])[0] ?? {})['key'], `/apisix/${row.type}/1`);
      });

      it('creates with POST under a generated 20-digit zero-padded id (201)', async () => {
        const res = await admin(fx.app, { method: 'POST', url: base, body: row.body(pair) });
        assert.equal(res.statusCode, 201, res.body);
        const key = String(jsonOf(res)['key']);
        const id = key.slice(`/apisix/${row.type}/`.length);
        assert.match(id, /^\d{20}$/);
        assert.equal((jsonOf(res)['value'] as Json)['id'], id);
        assert.notEqual(await rawText(fx.raw, key), null);
        const again = await admin(fx.app, { method: 'POST', url: base, body: row.body(pair) });
        assert.notEqual(jsonOf(again)['key'], key, 'two POSTs got the same id');
      });

      it(`refuses a body id on POST with "wrong ${row.singular} id, do not need it"`, async () => {
        const res = await admin(fx.app, { method: 'POST', url: base, body: { ...row.body(pair), id: '1' } });
        assert.equal(res.statusCode, 400);
        assert.deepEqual(jsonOf(res), { error_msg: `wrong ${row.singular} id, do not need it` });
        assert.deepEqual(await fx.raw.getAll().prefix(`/apisix/${row.type}/`).keys(), []);
      });

      it('merges a PATCH into the stored object (200) and answers with the result', async () => {
        await admin(fx.app, { method: 'PUT', url: `${base}/1`, body: row.body(pair) });
        const res = await admin(fx.app, { method: 'PATCH', url: `${base}/1`, body: { desc: 'patched' } });
        assert.equal(res.statusCode, 200, res.body);
        const value = jsonOf(res)['value'] as Json;
        assert.equal(value['desc'], 'patched');
        const stored = JSON.parse((await rawText(fx.raw, `/apisix/${row.type}/1`)) ?? 'null') as Json;
        assert.equal(stored['desc'], 'patched');
        for (const [field, original] of Object.entries(row.body(pair))) {
          if (field !== 'key') assert.deepEqual(stored[field], original, `PATCH changed ${field}`);
        }
      });

      it('deletes (200), after which GET, PATCH and DELETE of that id answer 404 Key not found', async () => {
        await admin(fx.app, { method: 'PUT', url: `${base}/1`, body: row.body(pair) });
        const del = await admin(fx.app, { method: 'DELETE', url: `${base}/1` });
        assert.equal(del.statusCode, 200, del.body);
        assert.deepEqual(jsonOf(del), { deleted: '1', key: `/apisix/${row.type}/1` });
        for (const method of ['GET', 'PATCH', 'DELETE'] as const) {
          const res = await admin(fx.app, { method, url: `${base}/1`, ...(method === 'PATCH' ? { body: { desc: 'x' } } : {}) });
          assert.equal(res.statusCode, 404, `${method}: ${res.body}`);
          assert.deepEqual(jsonOf(res), { message: 'Key not found' });
        }
        assert.equal(await rawText(fx.raw, `/apisix/${row.type}/1`), null);
      });

      it(`answers 400 missing ${row.singular} id for a DELETE without an id`, async () => {
        const res = await admin(fx.app, { method: 'DELETE', url: base });
        assert.equal(res.statusCode, 400);
        assert.deepEqual(jsonOf(res), { error_msg: `missing ${row.singular} id` });
      });
    });
  }

  it('answers 404 Unsupported resource type for every method on an unknown resource', async () => {
    for (const method of ['GET', 'PUT', 'POST', 'PATCH', 'DELETE'] as const) {
      const res = await admin(fx.app, { method, url: '/apisix/admin/stream_routes/1', body: {} });
      assert.equal(res.statusCode, 404, method);
      assert.deepEqual(jsonOf(res), { error_msg: 'Unsupported resource type: stream_routes' });
    }
  });
});
