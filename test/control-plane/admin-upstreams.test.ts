/**
 * The upstream schema a gRPC gateway needs (docs/admin-api.md) on `/apisix/admin/upstreams` and inline in
 * services: both node forms with priority, keepalive_pool, timeouts and retries, pass_host, and TLS to grpcs nodes
 * with a client certificate whose key is stored encrypted and never returned. Also the service schema.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { aesDecrypt } from '../../shared/crypto.ts';
import { makeCert, type CertAndKey } from '../helpers/certs.ts';
import { KEYRING, admin, jsonOf, rawText, startAdminFixture, type AdminFixture } from './admin-fixture.ts';

type Json = Record<string, unknown>;

const FULL = {
  name: 'greeter',
  desc: 'example Greeter nodes',
  labels: { team: 'rpc' },
  scheme: 'grpc',
  type: 'roundrobin',
  nodes: [
    { host: '127.0.0.1', port: 50051, weight: 3, priority: 1 },
    { host: '127.0.0.1', weight: 1, priority: 0 },
    { host: '[::1]', port: 50051, weight: 1 },
  ],
  timeout: { connect: 1.5, send: 10, read: 10 },
  retries: 2,
  retry_timeout: 5,
  pass_host: 'rewrite',
  upstream_host: 'greeter.internal',
  keepalive_pool: { size: 16, idle_timeout: 30, requests: 1000 },
};

describe('admin API: upstreams and services', () => {
  let fx: AdminFixture;
  let pair: CertAndKey;
  let other: CertAndKey;

  const putUpstream = (id: string, body: unknown): ReturnType<typeof admin> =>
    admin(fx.app, { method: 'PUT', url: `/apisix/admin/upstreams/${id}`, body: body as object });
  const refusal = async (body: unknown, message: string): Promise<void> => {
    const res = await putUpstream('bad', body);
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(jsonOf(res)['error_msg'], message);
    assert.equal(await rawText(fx.raw, '/apisix/upstreams/bad'), null);
  };

  before(async () => {
    fx = await startAdminFixture();
    pair = await makeCert({ sans: ['client.test'] });
    other = await makeCert({ sans: ['other.test'] });
  });

  after(async () => {
    await fx.close();
  });

  it('stores every field of a full upstream as sent, without defaults', async () => {
    const res = await putUpstream('full', FULL);
    assert.equal(res.statusCode, 201, res.body);
    const stored = JSON.parse((await rawText(fx.raw, '/apisix/upstreams/full')) ?? 'null') as Json;
    const { create_time: _c, update_time: _u, ...rest } = stored;
    assert.deepEqual(rest, { ...FULL, id: 'full' });
  });

  it('accepts the hash-map node form with and without ports', async () => {
    const res = await putUpstream('map', { scheme: 'grpcs', nodes: { '127.0.0.1:50052': 1, 'greeter.test': 2, '[::1]:1': 0 } });
    assert.equal(res.statusCode, 201, res.body);
  });

  it("refuses what APISIX refuses, in APISIX's words", async () => {
    await refusal({ nodes: {}, retries: -1 }, 'invalid configuration: property "retries" validation failed: expected -1 to be at least 0');
    await refusal(
      { nodes: {}, keepalive_pool: { size: 0 } },
      'invalid configuration: property "keepalive_pool" validation failed: property "size" validation failed: expected 0 to be at least 1',
    );
    await refusal({ nodes: {}, scheme: 'http' }, 'invalid configuration: property "scheme" validation failed: must be one of ["grpc","grpcs"]');
    await refusal({ nodes: {}, pass_host: 'rewrite' }, "invalid configuration: `upstream_host` can't be empty when `pass_host` is `rewrite`");
    await refusal({ nodes: [{ host: '::1', port: 1, weight: 1 }] }, "invalid configuration: IPv6 address must be enclosed with '[' and ']'");
    await refusal({ nodes: {}, hash_on: 'ring' }, 'invalid configuration: property "hash_on" validation failed: must be one of ["vars","header","cookie","consumer","vars_combinations"]');
    await refusal({ nodes: {}, hash_key: 'x' }, 'invalid configuration: additional properties forbidden, found hash_key');
    await refusal(
      { nodes: {}, scheme: 'grpcs', tls: { client_cert: pair.cert } },
      'invalid configuration: property "tls" validation failed: failed to validate dependent schema for "client_cert": property "client_key" is required',
    );
  });

  it('stores tls.client_key encrypted, returns it in no response, and keeps the certificate and verify', async () => {
    const body = { scheme: 'grpcs', nodes: { '127.0.0.1:50053': 1 }, tls: { client_cert: pair.cert, client_key: pair.key, verify: true } };
    const put = await putUpstream('mtls', body);
    assert.equal(put.statusCode, 201, put.body);
    const stored = JSON.parse((await rawText(fx.raw, '/apisix/upstreams/mtls')) ?? 'null') as { tls: Json };
    assert.equal(aesDecrypt(String(stored.tls['client_key']), KEYRING[0] ?? ''), pair.key);
    assert.equal(stored.tls['client_cert'], pair.cert);
    const get = await admin(fx.app, { method: 'GET', url: '/apisix/admin/upstreams/mtls' });
    for (const res of [put, get]) assert.ok(!res.body.includes('PRIVATE KEY') && !res.body.includes('client_key'), res.body);
    assert.equal(((jsonOf(get)['value'] as { tls: Json }).tls)['verify'], true);
  });

  it('refuses TLS settings on an h2c upstream, a mismatched client pair, and a certificate given twice', async () => {
    await refusal(
      { nodes: {}, tls: { verify: true } },
      'invalid configuration: property "tls" validation failed: tls is only used with "scheme": "grpcs"',
    );
    await refusal(
      { nodes: {}, scheme: 'grpcs', tls: { client_cert: pair.cert, client_key: other.key } },
      'invalid configuration: property "tls" validation failed: the private key does not match the certificate',
    );
    await refusal(
      { nodes: {}, scheme: 'grpcs', tls: { client_cert: pair.cert, client_key: pair.key, client_cert_id: 'c' } },
      'invalid configuration: property "tls" validation failed: only one of "client_cert_id" or "client_cert" and "client_key" is allowed',
    );
  });

  it('encrypts the client key of an inline upstream of a route and strips it from responses', async () => {
    const upstream = { scheme: 'grpcs', nodes: { '127.0.0.1:50053': 1 }, tls: { client_cert: pair.cert, client_key: pair.key } };
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/routes/mtls', body: { uri: '/a.B/C', upstream } });
    assert.equal(res.statusCode, 201, res.body);
    assert.ok(!res.body.includes('client_key'));
    const text = (await rawText(fx.raw, '/apisix/routes/mtls')) ?? '';
    assert.ok(text.includes('client_key') && !text.includes('PRIVATE KEY'), text.slice(0, 200));
  });

  it('stores a service with an inline upstream, hosts and plugins; refuses upstream with upstream_id', async () => {
    const body = { name: 'svc', hosts: ['greeter.test'], upstream: { nodes: { '127.0.0.1:50051': 1 } }, plugins: { 'grpc-limits': { max_request_message_bytes: 1024 } } };
    const res = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/services/1', body });
    assert.equal(res.statusCode, 201, res.body);
    await putUpstream('u1', { nodes: {} });
    const both = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/services/2', body: { ...body, upstream_id: 'u1' } });
    assert.deepEqual([both.statusCode, jsonOf(both)], [400, { error_msg: 'invalid configuration: only one of "upstream" or "upstream_id" is allowed' }]);
    const script = await admin(fx.app, { method: 'PUT', url: '/apisix/admin/services/3', body: { script: 'x' } });
    assert.equal(script.statusCode, 400);
  });
});
