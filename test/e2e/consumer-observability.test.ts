/**
 * The consumer `key-auth` found is in what the data plane records (issue #16): the `consumer` label of the call
 * metrics (APISIX's prometheus labels) and `$consumer_name` in the access log, for admitted and refused calls; a
 * call on a route without authentication keeps the empty label.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Metadata, status as GrpcCode, type Client } from '@grpc/grpc-js';
import { startDataPlane, type DataPlane } from '../../data-plane/data-plane.ts';
import { parseConfig } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import { putEtcdJson } from '../flow/child-gateway.ts';
import { makeCert } from '../helpers/certs.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { waitUntil } from '../helpers/fake-upstream.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { samplesOf, scrape } from '../helpers/prometheus-text.ts';

describe('the consumer in metrics and the access log', () => {
  let etcd: EtcdProcess | undefined;
  let node: GreeterNode | undefined;
  let plane: DataPlane | undefined;
  let client: Client | undefined;
  let dir = '';

  before(async () => {
    etcd = await startEtcd();
    node = await startGreeterNode();
    dir = mkdtempSync(join(tmpdir(), 'gw-consumer-obs-'));
    await putEtcdJson(etcd.endpoint, '/apisix/consumers/jack', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } });
    await putEtcdJson(etcd.endpoint, '/apisix/routes/auth', { uri: '/helloworld.Greeter/SayHello', plugins: { 'key-auth': {} }, upstream: { nodes: { [node.address]: 1 } } });
    await putEtcdJson(etcd.endpoint, '/apisix/routes/open', { uri: '/helloworld.Greeter/SayHelloServerStream', upstream: { nodes: { [node.address]: 1 } } });
    const config = parseConfig(`
apisix:
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { enable: false }
  status: { ip: 127.0.0.1, port: 0 }
nginx_config:
  http:
    enable_access_log: true
    access_log: "${join(dir, 'access.log')}"
    access_log_format: '$route_id consumer=$consumer_name $grpc_status'
deployment:
  etcd: { host: ["${etcd.endpoint}"], prefix: /apisix, timeout: 5 }
`);
    plane = await startDataPlane({ config, log: silentLogger(), defaultCert: await makeCert({ sans: ['localhost'] }) });
    const p = plane;
    await waitUntil(() => p.snapshots.current().router.size === 2 && p.snapshots.current().consumers.size === 1, 10_000, () => 'config not loaded');
    client = greeterClient(`127.0.0.1:${plane.addresses.find((a) => a.kind === 'h2c')?.port ?? 0}`);
  });

  after(async () => {
    client?.close();
    await plane?.close();
    await node?.close();
    await etcd?.close();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  test('admitted calls are counted and logged with their consumer; refused and unauthenticated ones without', async () => {
    assert.ok(client !== undefined && plane !== undefined);
    const key = new Metadata();
    key.set('apikey', 'jack-key');
    for (let i = 0; i < 3; i++) assert.equal((await sayHello(client, 'x', key)).status.code, GrpcCode.OK);
    assert.equal((await sayHello(client, 'x')).status.code, GrpcCode.UNAUTHENTICATED);
    const samples = await scrape(`127.0.0.1:${plane.statusAddress?.port ?? 0}`);
    const jack = samplesOf(samples, 'apisix_http_status', { route: 'auth', consumer: 'jack' });
    assert.equal(jack.reduce((sum, s) => sum + s.value, 0), 3, JSON.stringify(jack));
    const anonymous = samplesOf(samples, 'apisix_http_status', { route: 'auth', consumer: '' });
    assert.equal(anonymous.reduce((sum, s) => sum + s.value, 0), 1, 'the refused call has no consumer');
    await waitUntil(() => readFileSync(join(dir, 'access.log'), 'utf8').trim().split('\n').length >= 4, 10_000, () => 'access log lines');
    const lines = readFileSync(join(dir, 'access.log'), 'utf8').trim().split('\n');
    assert.deepEqual(lines.slice(0, 4), ['auth consumer=jack 0', 'auth consumer=jack 0', 'auth consumer=jack 0', 'auth consumer=- 16'], 'an empty variable is logged as -, as nginx does');
  });
});
