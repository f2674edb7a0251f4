/**
 * Issue #13 on the admin API: APISIX's `upstream.checks` accepted as documented (with `type: grpc`,
 * `grpc_service`, `passive.unhealthy.grpc_statuses` and passive-only checks as extensions), every APISIX balancer
 * type, and chash's `hash_on`/`key` rules (APISIX's check_upstream_conf). Refusals are 400s with nothing written.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { admin, jsonOf, rawText, startAdminFixture, type AdminFixture } from './admin-fixture.ts';

const NODES = { '127.0.0.1:50051': 1, '127.0.0.1:50052': 1 };

/** The example of APISIX's health-check document, with the gRPC check. */
const CHECKS = {
  active: {
    type: 'grpc',
    timeout: 1.5,
    concurrency: 10,
    host: 'greeter.internal',
    port: 50051,
    grpc_service: 'helloworld.Greeter',
    healthy: { interval: 2, successes: 1 },
    unhealthy: { interval: 1, http_failures: 2, tcp_failures: 2, timeouts: 3 },
  },
  passive: {
    healthy: { http_statuses: [200], successes: 3 },
    unhealthy: { http_statuses: [502, 503], grpc_statuses: [14, 4], tcp_failures: 3, timeouts: 7, http_failures: 3 },
  },
};

describe('admin API: upstream checks and balancers (issue #13)', () => {
  let fx: AdminFixture;
  const put = (id: string, body: unknown): ReturnType<typeof admin> => admin(fx.app, { method: 'PUT', url: `/apisix/admin/upstreams/${id}`, body: body as object });
  const refused = async (body: unknown, expected: RegExp): Promise<void> => {
    const res = await put('bad', body);
    assert.equal(res.statusCode, 400, res.body);
    assert.match(String(jsonOf(res)['error_msg']), expected);
    assert.equal(await rawText(fx.raw, '/apisix/upstreams/bad'), null);
  };

  before(async () => {
    fx = await startAdminFixture();
  });
  after(async () => {
    await fx.close();
  });

  it('stores a grpc health check with passive checks as sent', async () => {
    const body = { scheme: 'grpc', type: 'roundrobin', nodes: NODES, checks: CHECKS };
    const res = await put('checked', body);
    assert.equal(res.statusCode, 201, res.body);
    const stored = JSON.parse((await rawText(fx.raw, '/apisix/upstreams/checked')) ?? 'null') as Record<string, unknown>;
    assert.deepEqual(stored['checks'], CHECKS);
  });

  it("accepts APISIX's http, https and tcp checks with their documented fields", async () => {
    for (const type of ['http', 'https', 'tcp']) {
      const checks = {
        active: {
          type,
          http_path: '/status',
          https_verify_certificate: false,
          req_headers: ['User-Agent: curl/7.29.0', 'X-Probe: 1'],
          healthy: { interval: 1, http_statuses: [200, 302], successes: 2 },
          unhealthy: { interval: 1, http_statuses: [429, 404, 500, 501, 502, 503, 504, 505], http_failures: 5, tcp_failures: 2, timeouts: 3 },
        },
      };
      const res = await put(`t-${type}`, { nodes: NODES, checks });
      assert.equal(res.statusCode, 201, `${type}: ${res.body}`);
    }
  });

  it('accepts passive checks alone (they recover by base_ejection_time)', async () => {
    const res = await put('passive', { nodes: NODES, checks: { passive: { base_ejection_time: 5, unhealthy: { tcp_failures: 1 } } } });
    assert.equal(res.statusCode, 201, res.body);
  });

  it('refuses checks that are not the schema', async () => {
    await refused({ nodes: NODES, checks: {} }, /checks/);
    await refused({ nodes: NODES, checks: { active: { type: 'udp' } } }, /type/);
    await refused({ nodes: NODES, checks: { active: { healthy: { interval: 0 } } } }, /interval/);
    await refused({ nodes: NODES, checks: { active: { unhealthy: { http_failures: 255 } } } }, /http_failures/);
    await refused({ nodes: NODES, checks: { active: { healthy: { http_statuses: [99] } } } }, /http_statuses/);
    await refused({ nodes: NODES, checks: { passive: { unhealthy: { grpc_statuses: [0] } } } }, /grpc_statuses/);
    await refused({ nodes: NODES, checks: { active: { timeout: 0 } } }, /timeout/);
    await refused({ nodes: NODES, checks: { active: { unknown: 1 } } }, /unknown|additional/);
  });

  it('accepts every APISIX balancer type and refuses others', async () => {
    for (const type of ['roundrobin', 'least_conn', 'ewma']) {
      assert.equal((await put(`b-${type}`, { type, nodes: NODES })).statusCode, 201, type);
    }
    assert.equal((await put('b-chash', { type: 'chash', hash_on: 'header', key: 'x-user-id', nodes: NODES })).statusCode, 201);
    assert.equal((await put('b-chash-vars', { type: 'chash', key: 'remote_addr', nodes: NODES })).statusCode, 201);
    assert.equal((await put('b-chash-consumer', { type: 'chash', hash_on: 'consumer', nodes: NODES })).statusCode, 201);
    assert.equal((await put('b-chash-combo', { type: 'chash', hash_on: 'vars_combinations', key: '$remote_addr$uri', nodes: NODES })).statusCode, 201);
    await refused({ type: 'random', nodes: NODES }, /type/);
  });

  it("refuses chash without a key, or with a key its hash_on cannot read (APISIX's rules)", async () => {
    await refused({ type: 'chash', nodes: NODES }, /missing key$/);
    await refused({ type: 'chash', hash_on: 'header', nodes: NODES }, /missing key$/);
    await refused({ type: 'chash', key: 'not_a_var', nodes: NODES }, /failed to match pattern/);
    await refused({ type: 'chash', hash_on: 'header', key: 'bad header', nodes: NODES }, /failed to match pattern/);
    await refused({ type: 'chash', hash_on: 'vars', key: 'arg_ok', nodes: NODES, checks: { active: { type: 'nope' } } }, /type/);
  });
});
