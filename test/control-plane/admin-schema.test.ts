/**
 * What the admin API publishes about itself: `GET /apisix/admin/schema/<name>` with APISIX's singular names
 * (as APISIX), and an OpenAPI document whose request bodies are the very schemas both planes validate with.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { schemas } from '../../shared/validate.ts';
import { VIEWER_KEY, admin, jsonOf, startAdminFixture, type AdminFixture } from './admin-fixture.ts';

const SINGULARS = { route: 'routes', upstream: 'upstreams', service: 'services', ssl: 'ssls', consumer: 'consumers', global_rule: 'global_rules', plugin_config: 'plugin_configs' } as const;

interface OpenApiDoc {
  openapi: string;
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> }; tags?: string[] }>>;
}

describe('admin API: schemas and OpenAPI description', () => {
  let fx: AdminFixture;
  let doc: OpenApiDoc;

  before(async () => {
    fx = await startAdminFixture();
    const res = await admin(fx.app, { method: 'GET', url: '/apisix/admin/openapi.json' });
    assert.equal(res.statusCode, 200, res.body);
    doc = JSON.parse(res.body) as OpenApiDoc;
  });

  after(async () => {
    await fx.close();
  });

  for (const [name, type] of Object.entries(SINGULARS)) {
    it(`serves the ${name} schema at /apisix/admin/schema/${name}, equal to the one validation uses`, async () => {
      const res = await admin(fx.app, { method: 'GET', url: `/apisix/admin/schema/${name}`, key: VIEWER_KEY });
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(jsonOf(res), JSON.parse(JSON.stringify(schemas[type])));
      assert.equal(jsonOf(res)['additionalProperties'], false);
    });
  }

  it('answers 400 not found schema for an unknown name', async () => {
    const res = await admin(fx.app, { method: 'GET', url: '/apisix/admin/schema/stream_route' });
    assert.deepEqual([res.statusCode, jsonOf(res)], [400, { error_msg: 'not found schema: stream_route' }]);
  });

  it('needs a key for the schemas and the OpenAPI document, like every admin path', async () => {
    for (const url of ['/apisix/admin/schema/route', '/apisix/admin/openapi.json']) {
      const res = await admin(fx.app, { method: 'GET', url, key: null });
      assert.equal(res.statusCode, 401, url);
    }
  });

  it('describes every method of every resource type in OpenAPI 3.1', () => {
    assert.equal(doc.openapi, '3.1.0');
    for (const type of Object.values(SINGULARS)) {
      assert.deepEqual(Object.keys(doc.paths[`/apisix/admin/${type}`] ?? {}).sort(), ['get', 'post', 'put'], type);
      assert.deepEqual(Object.keys(doc.paths[`/apisix/admin/${type}/{id}`] ?? {}).sort(), ['delete', 'get', 'patch', 'put'], type);
      assert.ok(doc.paths[`/apisix/admin/${type}/{id}/{*}`]?.['patch'] !== undefined, `${type}: no sub-path PATCH`);
    }
    assert.equal(doc.paths['/apisix/admin/ssl/{id}'], undefined, 'the 2.x alias should not be documented twice');
  });

  it('uses the validation schemas as the PUT and POST request bodies', () => {
    for (const type of Object.values(SINGULARS)) {
      const expected = JSON.parse(JSON.stringify(schemas[type])) as unknown;
      const put = doc.paths[`/apisix/admin/${type}/{id}`]?.['put']?.requestBody?.content['application/json']?.schema;
      const post = doc.paths[`/apisix/admin/${type}`]?.['post']?.requestBody?.content['application/json']?.schema;
      assert.deepEqual(put, expected, `${type} PUT`);
      assert.deepEqual(post, expected, `${type} POST`);
    }
  });

  it('does not let the documentation schemas validate or strip anything: unknown fields still get APISIX errors', async () => {
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/upstreams/1', body: { nodes: {}, extra: 1 } });
    assert.deepEqual([res.statusCode, jsonOf(res)], [400, { error_msg: 'invalid configuration: additional properties forbidden, found extra' }]);
  });
});
