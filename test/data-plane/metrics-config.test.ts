/**
 * plugin_attr.prometheus as APISIX reads it: `export_addr` gives the scrape a server of its own (the status port
 * then serves none), `metric_prefix`, `default_buckets` and `prefer_name` shape what is exported; bad values stop
 * the start with an error naming the key. A standalone data plane (no etcd) and a real Greeter upstream.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@grpc/grpc-js';
import { startDataPlane, type DataPlane } from '../../data-plane/data-plane.ts';
import { parseConfig } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import { makeCert } from '../helpers/certs.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { freePort } from '../helpers/ports.ts';
import { parseMetrics, samplesOf, sumOf } from '../helpers/prometheus-text.ts';
import { standaloneDeployment } from '../helpers/standalone.ts';

describe('plugin_attr.prometheus', () => {
  let dir = '';
  let node: GreeterNode | undefined;
  let plane: DataPlane | undefined;
  let exportPort = 0;
  const clients: Client[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gw-prom-'));
    node = await startGreeterNode();
    const file = join(dir, 'apisix.yaml');
    writeFileSync(file, `routes:\n  - id: 7\n    name: greeter-route\n    uri: /helloworld.Greeter/*\n    upstream:\n      nodes: { "${node.address}": 1 }\n#END\n`);
    exportPort = await freePort();
    const config = parseConfig(`
apisix:
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { enable: false }
  status: { ip: 127.0.0.1, port: 0 }
plugin_attr:
  prometheus:
    export_addr: { ip: 127.0.0.1, port: ${exportPort} }
    export_uri: /custom/metrics
    metric_prefix: gw_
    default_buckets: [5, 50]
    prefer_name: true
${standaloneDeployment(file)}`);
    plane = await startDataPlane({ config, log: silentLogger(), defaultCert: await makeCert({ sans: ['localhost'] }) });
  });

  after(async () => {
    for (const client of clients) client.close();
    await plane?.close();
    await node?.close();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  test('export_addr serves the scrape at export_uri with the prefix, the buckets and route names; the status port serves none', async () => {
    assert.ok(plane !== undefined);
    const client = greeterClient(`127.0.0.1:${plane.addresses.find((a) => a.kind === 'h2c')?.port ?? 0}`);
    clients.push(client);
    for (let i = 0; i < 3; i++) assert.equal((await sayHello(client, `p${i}`)).status.code, 0);
    const res = await fetch(`http://127.0.0.1:${exportPort}/custom/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const samples = parseMetrics(await res.text());
    assert.equal(sumOf(samples, 'gw_grpc_status', { grpc_code: 'OK', route: 'greeter-route' }), 3);
    assert.equal(samplesOf(samples, 'apisix_grpc_status').length, 0, 'no metric keeps the default prefix');
    const buckets = samplesOf(samples, 'gw_http_latency_bucket', { type: 'request', route: 'greeter-route' }).map((s) => s.labels['le']);
    assert.deepEqual(buckets, ['5', '50', '+Inf']);
    assert.equal((await fetch(`http://127.0.0.1:${exportPort}/metrics`)).status, 200, '/metrics too');
    assert.equal((await fetch(`http://127.0.0.1:${exportPort}/readyz`)).status, 404, 'the metrics server is not a status server');
    const status = `http://127.0.0.1:${plane.statusAddress?.port ?? 0}`;
    assert.equal((await fetch(`${status}/readyz`)).status, 200);
    assert.equal((await fetch(`${status}/custom/metrics`)).status, 404, 'the status port leaves the metrics to export_addr');
  });

  test('bad values stop the start with an error naming the key', () => {
    const bad = (yaml: string): string => {
      try {
        parseConfig(yaml);
      } catch (err) {
        return (err as Error).message;
      }
      return 'accepted';
    };
    assert.match(bad('plugin_attr:\n  prometheus: { metric_prefix: "9bad" }\n'), /plugin_attr\.prometheus\.metric_prefix/);
    assert.match(bad('plugin_attr:\n  prometheus: { default_buckets: [10, 5] }\n'), /plugin_attr\.prometheus\.default_buckets/);
    assert.match(bad('plugin_attr:\n  prometheus: { max_label_sets: 0 }\n'), /plugin_attr\.prometheus\.max_label_sets/);
    assert.match(bad('plugin_attr:\n  opentelemetry: { sampler: { name: sometimes } }\n'), /plugin_attr\.opentelemetry\.sampler/);
    assert.match(bad('nginx_config:\n  http: { access_log_format_escape: yaml }\n'), /access_log_format_escape/);
    assert.match(bad('plugin_attr:\n  request-id: { header_name: "grpc-id" }\n'), /plugin_attr\.request-id\.header_name/);
  });
});

describe('GATEWAY_ACCESS_LOG', () => {
  test('off, false and 0 turn the log off; on, true and 1 keep the configured destination; anything else is a path', () => {
    const yaml = 'nginx_config:\n  http: { enable_access_log: true, access_log: /var/log/gw.log }\n';
    const accessLog = (value: string) => parseConfig(yaml, { GATEWAY_ACCESS_LOG: value }).observability.accessLog;
    for (const value of ['off', 'false', '0']) assert.equal(accessLog(value).enable, false, value);
    for (const value of ['on', 'true', '1']) assert.deepEqual([accessLog(value).enable, accessLog(value).path], [true, '/var/log/gw.log'], value);
    assert.deepEqual([accessLog('/tmp/other.log').enable, accessLog('/tmp/other.log').path], [true, '/tmp/other.log']);
    const off = parseConfig('nginx_config:\n  http: { enable_access_log: false }\n', { GATEWAY_ACCESS_LOG: 'on' }).observability.accessLog;
    assert.deepEqual([off.enable, off.path], [true, 'stdout']);
  });
});
