/**
 * Issue #14 in one data plane: request ids (kept or made, forwarded, returned, logged), W3C trace context (the
 * gateway's span becomes the upstream's parent) with OTLP/JSON spans decoded by a local collector, a collector
 * that is down (no call lost, memory bounded), and the label-set cap attacked at the frame level by a client
 * spraying method names while legitimate calls run beside it.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
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
import { freePort } from '../helpers/ports.ts';
import { samplesOf, scrape, sumOf } from '../helpers/prometheus-text.ts';
import { AttackClient, grpcRequestHeaders } from '../security/h2-attack-client.ts';

/** Distinct label sets per metric in this test's data plane (plugin_attr.prometheus.max_label_sets). */
const MAX_LABEL_SETS = 20;
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';

interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: Record<string, unknown> }[];
}

/** A local OTLP/HTTP collector: decodes every JSON export it gets. */
async function startCollector(): Promise<{ server: Server; port: number; spans: ReceivedSpan[]; requests: number }> {
  const state = { spans: [] as ReceivedSpan[], requests: 0 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.requests++;
      assert.equal(req.url, '/v1/traces');
      assert.equal(req.headers['content-type'], 'application/json');
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { resourceSpans: { scopeSpans: { spans: ReceivedSpan[] }[] }[] };
      for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) state.spans.push(...ss.spans);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return Object.assign(state, { server, port });
}

function planeConfig(etcd: string, collectorPort: number, accessLog: string) {
  return parseConfig(`
apisix:
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { enable: false }
  status: { ip: 127.0.0.1, port: 0 }
nginx_config:
  http: { enable_access_log: true, access_log: "${accessLog}" }
plugin_attr:
  prometheus: { max_label_sets: ${MAX_LABEL_SETS} }
  opentelemetry:
    collector: { address: "127.0.0.1:${collectorPort}", request_timeout: 1 }
    sampler: { name: always_on }
    batch_span_processor: { batch_timeout: 0.1, max_export_batch_size: 8, max_queue_size: 64 }
deployment:
  etcd: { host: ["${etcd}"], prefix: /apisix, timeout: 5 }
`);
}

function attr(span: ReceivedSpan, key: string): unknown {
  const found = span.attributes.find((a) => a.key === key);
  return found === undefined ? undefined : Object.values(found.value)[0];
}

describe('observability in one data plane', () => {
  let etcd: EtcdProcess | undefined;
  let node: GreeterNode | undefined;
  let plane: DataPlane | undefined;
  let downPlane: DataPlane | undefined;
  let collector: Awaited<ReturnType<typeof startCollector>> | undefined;
  let dir = '';
  const clients: Client[] = [];
  const address = (p: DataPlane): string => `127.0.0.1:${p.addresses.find((a) => a.kind === 'h2c')?.port ?? 0}`;
  const statusOf = (p: DataPlane): string => `127.0.0.1:${p.statusAddress?.port ?? 0}`;

  before(async () => {
    etcd = await startEtcd();
    node = await startGreeterNode();
    collector = await startCollector();
    dir = mkdtempSync(join(tmpdir(), 'gw-obs-'));
    await putEtcdJson(etcd.endpoint, '/apisix/routes/1', { uri: '/helloworld.Greeter/*', upstream: { nodes: { [node.address]: 1 } } });
    await putEtcdJson(etcd.endpoint, '/apisix/routes/2', {
      uri: '/helloworld.Greeter/*',
      host: 'quiet.example',
      priority: 10,
      plugins: { opentelemetry: { sampler: { name: 'always_off' } } },
      upstream: { nodes: { [node.address]: 1 } },
    });
    await putEtcdJson(etcd.endpoint, '/apisix/routes/3', {
      uri: '/flood.*',
      plugins: { prometheus: { grpc_method_metrics: true } },
      upstream: { nodes: { [node.address]: 1 } },
    });
    const defaultCert = await makeCert({ sans: ['localhost'] });
    plane = await startDataPlane({ config: planeConfig(etcd.endpoint, collector.port, join(dir, 'access.log')), log: silentLogger(), defaultCert });
    // A second data plane whose collector is down: nothing listens on its port.
    downPlane = await startDataPlane({ config: planeConfig(etcd.endpoint, await freePort(), join(dir, 'down.log')), log: silentLogger(), defaultCert });
    for (const p of [plane, downPlane]) await waitUntil(() => p.snapshots.current().router.size === 3, 10_000, () => 'routes not loaded');
  });

  after(async () => {
    for (const client of clients) client.close();
    await plane?.close();
    await downPlane?.close();
    await node?.close();
    collector?.server.close();
    await etcd?.close();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  test('a call without a request id gets one: the upstream sees it and the response carries it back', async () => {
    assert.ok(plane !== undefined && node !== undefined);
    const client = greeterClient(address(plane));
    clients.push(client);
    const outcome = await sayHello(client, 'rid');
    assert.equal(outcome.status.code, 0);
    const returned = outcome.headers?.get('x-request-id')[0];
    assert.match(String(returned), /^[0-9a-f-]{36}$/);
    assert.equal(node.lastCall?.metadata['x-request-id'], returned);
  });

  test("a client's own request id is kept as it came, forwarded once and returned", async () => {
    assert.ok(plane !== undefined && node !== undefined);
    const client = greeterClient(address(plane));
    clients.push(client);
    const metadata = new Metadata();
    metadata.set('x-request-id', 'client-id-42');
    const outcome = await sayHello(client, 'rid', metadata);
    assert.equal(outcome.headers?.get('x-request-id')[0], 'client-id-42');
    assert.equal(node.lastCall?.metadata['x-request-id'], 'client-id-42');
  });

  test("a client's traceparent reaches the upstream with the gateway's span as parent, and that span is exported", async () => {
    assert.ok(plane !== undefined && node !== undefined && collector !== undefined);
    const client = greeterClient(address(plane));
    clients.push(client);
    const metadata = new Metadata();
    metadata.set('traceparent', `00-${TRACE_ID}-${CLIENT_SPAN}-01`);
    metadata.set('tracestate', 'vendor=abc');
    assert.equal((await sayHello(client, 'traced', metadata)).status.code, 0);
    const upstreamSaw = node.lastCall?.metadata['traceparent'] ?? '';
    const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(upstreamSaw);
    assert.ok(match !== null, `upstream saw traceparent ${upstreamSaw}`);
    assert.equal(match[1], TRACE_ID, 'same trace');
    const gatewaySpan = match[2] as string;
    assert.notEqual(gatewaySpan, CLIENT_SPAN, "the parent is the gateway's span, not the client's");
    assert.equal(node.lastCall?.metadata['tracestate'], 'vendor=abc');
    const c = collector;
    await waitUntil(() => c.spans.some((s) => s.spanId === gatewaySpan), 10_000, () => `spans received: ${c.spans.length}`);
    const span = c.spans.find((s) => s.spanId === gatewaySpan) as ReceivedSpan;
    assert.equal(span.traceId, TRACE_ID);
    assert.equal(span.parentSpanId, CLIENT_SPAN);
    assert.equal(span.kind, 2);
    assert.equal(span.name, '/helloworld.Greeter/SayHello');
    assert.equal(attr(span, 'rpc.system'), 'grpc');
    assert.equal(attr(span, 'rpc.grpc.status_code'), '0');
    assert.ok(BigInt(span.endTimeUnixNano) >= BigInt(span.startTimeUnixNano));
  });

  test('without a traceparent the gateway starts a trace (sampler always_on); a route whose sampler is always_off exports nothing but still propagates', async () => {
    assert.ok(plane !== undefined && node !== undefined && collector !== undefined);
    const client = greeterClient(address(plane));
    clients.push(client);
    assert.equal((await sayHello(client, 'root')).status.code, 0);
    const rootParent = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(node.lastCall?.metadata['traceparent'] ?? '');
    assert.ok(rootParent !== null);
    const c = collector;
    await waitUntil(() => c.spans.some((s) => s.spanId === rootParent[2]), 10_000, () => 'root span not exported');
    assert.equal(c.spans.find((s) => s.spanId === rootParent[2])?.parentSpanId ?? '', '');

    // Route 2 (host quiet.example, sampler always_off) with a sampled parent: the route's sampler decides, so the
    // upstream sees the same trace, unsampled, and no span is exported.
    const quiet = greeterClient(address(plane), { authority: 'quiet.example' });
    clients.push(quiet);
    const metadata = new Metadata();
    metadata.set('traceparent', `00-${TRACE_ID}-${CLIENT_SPAN}-01`);
    assert.equal((await sayHello(quiet, 'quiet', metadata)).status.code, 0);
    const quietParent = /^00-([0-9a-f]{32})-([0-9a-f]{16})-00$/.exec(node.lastCall?.metadata['traceparent'] ?? '');
    assert.ok(quietParent !== null, `upstream saw ${String(node.lastCall?.metadata['traceparent'])}`);
    assert.equal(quietParent[1], TRACE_ID);
    await plane.metrics?.metrics(); // a turn for any export in flight
    await new Promise((r) => setTimeout(r, 300)); // past a batch_timeout: an export would have been sent
    assert.equal(c.spans.filter((s) => s.spanId === quietParent[2]).length, 0);
  });

  test('a collector that is down costs no call, and the spans it could not take stay bounded and counted', async () => {
    assert.ok(downPlane !== undefined);
    const client = greeterClient(address(downPlane));
    clients.push(client);
    const outcomes = await Promise.all(Array.from({ length: 300 }, (_, i) => sayHello(client, `down-${i}`)));
    assert.deepEqual(outcomes.map((o) => o.status.code).filter((c) => c !== GrpcCode.OK), []);
    const p = downPlane;
    const spans = async (): Promise<number> => sumOf(await scrape(statusOf(p)), 'apisix_opentelemetry_spans', { state: 'dropped' }) + sumOf(await scrape(statusOf(p)), 'apisix_opentelemetry_spans', { state: 'failed' });
    let lost = 0;
    for (let i = 0; i < 100 && lost < 300 - 64; i++) {
      lost = await spans();
      await new Promise((r) => setTimeout(r, 100));
    }
    // Of 300 spans at most the queue (64) can still be waiting; the rest were dropped or failed, none exported.
    assert.ok(lost >= 300 - 64, `dropped+failed ${lost}`);
    const samples = await scrape(statusOf(p));
    assert.equal(sumOf(samples, 'apisix_opentelemetry_spans', { state: 'exported' }), 0);
    assert.equal(sumOf(samples, 'apisix_grpc_status', { grpc_code: 'OK' }), 300);
  });

  test('a client spraying method names at the frame level grows no metric past max_label_sets, while other calls succeed', { timeout: 60_000 }, async () => {
    assert.ok(plane !== undefined);
    const p = plane;
    const before = await scrape(statusOf(p));
    const legit = greeterClient(address(p));
    clients.push(legit);
    const port = p.addresses.find((a) => a.kind === 'h2c')?.port ?? 0;
    const attacker = await AttackClient.open({ host: '127.0.0.1', port });
    const FLOOD = 200;
    const legitCalls: Promise<{ status: { code: number } }>[] = [];
    try {
      await attacker.waitForSettings();
      let stream = 1;
      for (let batch = 0; batch < FLOOD / 50; batch++) {
        const ids: number[] = [];
        attacker.batch(() => {
          for (let i = 0; i < 50; i++, stream += 2) {
            attacker.headers(stream, grpcRequestHeaders('gw', `/flood.Svc${batch}/M${Math.random().toString(36).slice(2)}`), true);
            ids.push(stream);
          }
        });
        legitCalls.push(sayHello(legit, `beside-${batch}`));
        await attacker.waitFor(() => ids.every((id) => attacker.streamEnded(id)), `batch ${batch} answered`, 20_000);
      }
    } finally {
      attacker.destroy();
    }
    for (const outcome of await Promise.all(legitCalls)) assert.equal(outcome.status.code, 0);
    const after = await scrape(statusOf(p));
    const methodSeries = samplesOf(after, 'apisix_grpc_method_status');
    const kept = methodSeries.filter((s) => s.labels['grpc_method'] !== '_overflow');
    assert.ok(kept.length <= MAX_LABEL_SETS, `${kept.length} method label sets`);
    assert.ok(methodSeries.length <= MAX_LABEL_SETS + 17, 'plus at most one overflow series per status code');
    assert.equal(sumOf(after, 'apisix_grpc_method_status'), FLOOD, 'every sprayed call is counted, kept or overflowed');
    assert.equal(sumOf(after, 'apisix_metric_overflow_calls', { metric: 'apisix_grpc_method_status' }), FLOOD - kept.length);
    // The route-level families do not grow with the paths: route 3 is one label set per node and status.
    assert.equal(samplesOf(after, 'apisix_http_status', { route: '3' }).length, 1);
    assert.equal(sumOf(after, 'apisix_http_status', { route: '3' }) - sumOf(before, 'apisix_http_status', { route: '3' }), FLOOD);
  });
});
