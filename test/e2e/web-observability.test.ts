/**
 * Issue #17: grpc-web and transcoded calls are counted and logged like any call, with what the client was really
 * answered: a transcoded NOT_FOUND is HTTP 404 in the metrics and the access log (not the 200 of the gRPC answer
 * behind it), a grpc-web call its 200 and grpc-status, a CORS preflight its 204 and no gRPC status.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startDataPlane, type DataPlane } from '../../data-plane/data-plane.ts';
import { parseConfig } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import { putEtcdJson } from '../flow/child-gateway.ts';
import { makeCert } from '../helpers/certs.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { waitUntil } from '../helpers/fake-upstream.ts';
import { startGreeterNode, STATUS_HEADER, type GreeterNode } from '../helpers/greeter.ts';
import { frame, helloMessage, http1Request, parseWebBody } from '../helpers/grpc-web-raw.ts';
import { samplesOf, scrape } from '../helpers/prometheus-text.ts';

const HELLO_PROTO = `syntax = "proto3";
package helloworld;
service Greeter { rpc SayHello (HelloRequest) returns (HelloReply) {} }
message HelloRequest { string name = 1; }
message HelloReply { string message = 1; }
`;

describe('grpc-web and transcoded calls in metrics and the access log', () => {
  let etcd: EtcdProcess | undefined;
  let node: GreeterNode | undefined;
  let plane: DataPlane | undefined;
  let dir = '';
  const h2c = (): string => `127.0.0.1:${plane?.addresses.find((a) => a.kind === 'h2c')?.port ?? 0}`;

  before(async () => {
    etcd = await startEtcd();
    node = await startGreeterNode();
    dir = mkdtempSync(join(tmpdir(), 'gw-web-obs-'));
    await putEtcdJson(etcd.endpoint, '/apisix/protos/hello', { content: HELLO_PROTO });
    await putEtcdJson(etcd.endpoint, '/apisix/routes/web', { uri: '/helloworld.Greeter/*', plugins: { 'grpc-web': {} }, upstream: { nodes: { [node.address]: 1 } } });
    await putEtcdJson(etcd.endpoint, '/apisix/routes/json', {
      uri: '/hello',
      plugins: { 'grpc-transcode': { proto_id: 'hello', service: 'helloworld.Greeter', method: 'SayHello' } },
      upstream: { nodes: { [node.address]: 1 } },
    });
    const config = parseConfig(`
apisix:
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { enable: false }
  status: { ip: 127.0.0.1, port: 0 }
nginx_config:
  http:
    enable_access_log: true
    access_log: "${join(dir, 'access.log')}"
    access_log_format: '$route_id $request_method $status $grpc_status'
deployment:
  etcd: { host: ["${etcd.endpoint}"], prefix: /apisix, timeout: 5 }
`);
    plane = await startDataPlane({ config, log: silentLogger(), defaultCert: await makeCert({ sans: ['localhost'] }) });
    const p = plane;
    await waitUntil(() => p.snapshots.current().router.size === 2, 10_000, () => 'routes not loaded');
  });

  after(async () => {
    await plane?.close();
    await node?.close();
    await etcd?.close();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  test('each call is recorded with the HTTP status the client got and its gRPC status', async () => {
    assert.ok(plane !== undefined);
    const web = await http1Request(h2c(), { path: '/helloworld.Greeter/SayHello', headers: { 'content-type': 'application/grpc-web+proto' }, body: frame(helloMessage('w')) });
    assert.equal(parseWebBody(web.body).trailers?.['grpc-status'], '0');
    const ok = await http1Request(h2c(), { path: '/hello', headers: { 'content-type': 'application/json' }, body: Buffer.from('{"name":"j"}') });
    assert.equal(ok.status, 200);
    const missing = await http1Request(h2c(), { path: '/hello', headers: { 'content-type': 'application/json', [STATUS_HEADER]: '5' }, body: Buffer.from('{}') });
    assert.equal(missing.status, 404);
    const preflight = await http1Request(h2c(), { method: 'OPTIONS', path: '/helloworld.Greeter/SayHello', headers: { origin: 'http://page.test' } });
    assert.equal(preflight.status, 204);

    const samples = await scrape(`127.0.0.1:${plane.statusAddress?.port ?? 0}`);
    assert.equal(samplesOf(samples, 'apisix_http_status', { route: 'json', code: '404' }).reduce((sum, s) => sum + s.value, 0), 1, 'the transcoded NOT_FOUND counted as 404');
    assert.equal(samplesOf(samples, 'apisix_grpc_status', { route: 'json', grpc_code: 'NOT_FOUND' }).reduce((sum, s) => sum + s.value, 0), 1);
    assert.equal(samplesOf(samples, 'apisix_http_status', { route: 'json', code: '200' }).reduce((sum, s) => sum + s.value, 0), 1);
    assert.equal(samplesOf(samples, 'apisix_grpc_status', { route: 'web', grpc_code: 'OK' }).reduce((sum, s) => sum + s.value, 0), 1);
    assert.equal(samplesOf(samples, 'apisix_http_status', { route: 'web', code: '204' }).reduce((sum, s) => sum + s.value, 0), 1, 'the preflight');

    const log = join(dir, 'access.log');
    await waitUntil(() => readFileSync(log, 'utf8').trim().split('\n').length >= 4, 10_000, () => 'access log lines');
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['web POST 200 0', 'json POST 200 0', 'json POST 404 5', 'web OPTIONS 204 -']);
  });
});
