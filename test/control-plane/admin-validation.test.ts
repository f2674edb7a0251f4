/**
 * What a PUT refuses (docs/apisix-compatibility.md): schema errors answered 400 `invalid configuration: …` naming the
 * field, APISIX's id and timestamp rules, unreadable bodies, and in every case nothing written to etcd.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SEED_ROUTE, admin, jsonOf, rawText, startAdminFixture, type AdminFixture } from './admin-fixture.ts';

const UPSTREAM = SEED_ROUTE['upstream'] as Record<string, unknown>;

interface Rejection {
  title: string;
  url?: string;
  body: string | object;
  /** The exact error_msg, or a substring that must appear in it. */
  exact?: string;
  contains?: string[];
}

const REJECTIONS: Rejection[] = [
  {
    title: 'an unknown field',
    body: { ...SEED_ROUTE, color: 'blue' },
    exact: 'invalid configuration: additional properties forbidden, found color',
  },
  {
    title: 'an upstream scheme that is not grpc or grpcs',
    body: { ...SEED_ROUTE, upstream: { ...UPSTREAM, scheme: 'http' } },
    contains: ['invalid configuration: ', 'scheme'],
  },
  {
    title: 'neither uri nor uris',
    body: { upstream: UPSTREAM },
    contains: ['invalid configuration: ', 'uri'],
  },
  {
    title: 'a negative node weight',
    body: { ...SEED_ROUTE, upstream: { ...UPSTREAM, nodes: { '127.0.0.1:50051': -1 } } },
    contains: ['invalid configuration: ', 'nodes'],
  },
  {
    title: 'a timeout without read',
    body: { ...SEED_ROUTE, timeout: { connect: 1, send: 1 } },
    contains: ['invalid configuration: ', 'timeout', 'read'],
  },
  {
    title: 'a route with no way to an upstream',
    body: { uri: '/a' },
    exact: 'invalid configuration: one of "upstream", "upstream_id" or "service_id" is required',
  },
  {
    title: 'both an inline upstream and an upstream_id',
    body: { ...SEED_ROUTE, upstream_id: '1' },
    exact: 'invalid configuration: only one of "upstream" or "upstream_id" is allowed',
  },
  {
    title: 'a wrongly typed uri (APISIX\'s wording)',
    body: { ...SEED_ROUTE, uri: 666 },
    exact: 'invalid configuration: property "uri" validation failed: wrong type: expected string, got number',
  },
  {
    title: 'an empty uris list (APISIX\'s wording)',
    body: { upstream: UPSTREAM, uris: [] },
    exact: 'invalid configuration: property "uris" validation failed: expect array to have at least 1 items',
  },
  {
    title: 'a zero connect timeout (APISIX\'s wording)',
    body: { ...SEED_ROUTE, timeout: { connect: 0, send: 1, read: 1 } },
    exact: 'invalid configuration: property "timeout" validation failed: property "connect" validation failed: expected 0 to be greater than 0',
  },
  {
    title: 'a name over 256 characters (APISIX\'s wording)',
    body: { ...SEED_ROUTE, name: 'n'.repeat(257) },
    exact: 'invalid configuration: property "name" validation failed: string too long, expected at most 256, got 257',
  },
  {
    title: 'a body id that differs from the URL id',
    body: { ...SEED_ROUTE, id: '2' },
    exact: 'wrong route id',
  },
  {
    title: 'a client-supplied create_time',
    body: { ...SEED_ROUTE, create_time: 1 },
    exact: 'the property is forbidden:  create_time',
  },
  {
    title: 'a client-supplied update_time',
    body: { ...SEED_ROUTE, update_time: 1 },
    exact: 'the property is forbidden:  update_time',
  },
  {
    title: 'a body that is not JSON',
    body: '{"uri": "/a",',
    contains: ['invalid request body: '],
  },
  {
    title: 'a JSON array instead of an object',
    body: '[1, 2]',
    contains: ['invalid configuration: '],
  },
  {
    title: 'an empty body',
    body: '',
    exact: 'missing configurations',
  },
  {
    title: 'an id longer than 64 characters in the URL',
    url: `/apisix/admin/routes/${'x'.repeat(65)}`,
    body: SEED_ROUTE,
    contains: ['invalid configuration: ', 'id'],
  },
  {
    title: 'an id with characters outside [a-zA-Z0-9-_.] in the URL',
    url: '/apisix/admin/routes/a%20b',
    body: SEED_ROUTE,
    contains: ['invalid configuration: ', 'id'],
  },
];

describe('admin API: rejected writes', () => {
  let fx: AdminFixture;

  before(async () => {
    fx = await startAdminFixture();
  });

  after(async () => {
    await fx.close();
  });

  for (const rejection of REJECTIONS) {
    it(`answers 400 for ${rejection.title} and writes nothing`, async () => {
      const url = rejection.url ?? '/apisix/admin/routes/1';
      const res = await admin(fx.app, { method: 'PUT', url, body: rejection.body });
      assert.equal(res.statusCode, 400, res.body);
      const message = jsonOf(res)['error_msg'];
      assert.equal(typeof message, 'string', res.body);
      if (rejection.exact !== undefined) assert.equal(message, rejection.exact);
      for (const part of rejection.contains ?? []) assert.ok(String(message).includes(part), `${part} not in ${res.body}`);
      const written = await fx.raw.getAll().prefix('/apisix/routes/').keys();
      assert.deepEqual(written, []);
    });
  }

  it('answers 400 missing route id for a PUT with no id in the URL or the body', async () => {
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes', body: SEED_ROUTE });
    assert.equal(res.statusCode, 400);
    assert.deepEqual(jsonOf(res), { error_msg: 'missing route id' });
  });

  it('accepts a body id equal to the URL id, even as a number', async () => {
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/5', body: { ...SEED_ROUTE, id: 5 } });
    assert.equal(res.statusCode, 201, res.body);
    const stored = JSON.parse((await rawText(fx.raw, '/apisix/routes/5')) ?? 'null') as Record<string, unknown>;
    assert.equal(stored['id'], '5');
  });

  it('answers 400 invalid request body for a body over 1.5 MiB', async () => {
    const big = JSON.stringify({ ...SEED_ROUTE, desc: 'x'.repeat(1_600_000) });
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/big', body: big });
    assert.equal(res.statusCode, 400);
    assert.match(String(jsonOf(res)['error_msg']), /^invalid request body: /);
    assert.equal(await rawText(fx.raw, '/apisix/routes/big'), null);
  });

  it('answers 404 not found for a method the admin API does not serve', async () => {
    const res = await admin(fx.app, { method: 'POST', url: '/apisix/admin/routes/1', body: SEED_ROUTE });
    assert.equal(res.statusCode, 404);
    assert.deepEqual(jsonOf(res), { error_msg: 'not found' });
  });
});
