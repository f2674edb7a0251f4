/**
 * Issue #14 across worker processes: a data plane with 2 workers serves a scripted mix of calls (OK, NOT_FOUND
 * from the upstream, UNIMPLEMENTED from no route, DEADLINE_EXCEEDED at the gateway, UNAVAILABLE from a dead node)
 * on several connections, so both workers serve some; then one scrape of the primary's status port shows exactly
 * those counts per label set, summed over the workers, histogram counts equal call counts, and the access log holds
 * exactly one line per call with the right grpc_status and a request id each.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Metadata, type Client } from '@grpc/grpc-js';
import { putEtcdJson, spawnChildGateway, type ChildGateway } from '../flow/child-gateway.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { grpcFrame, helloMessage, waitUntil } from '../helpers/fake-upstream.ts';
import { STATUS_HEADER, DELAY_HEADER, greeterClient, greeterMethod, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { rawUnaryCall } from '../helpers/interop-raw-client.ts';
import { freePort } from '../helpers/ports.ts';
import { scrape, samplesOf, sumOf } from '../helpers/prometheus-text.ts';

const START_LIMIT_MS = 30_000;
/** Connections the mix is spread over: node:cluster hands them to the 2 workers in turn. */
const CLIENTS = 6;

describe('observability across 2 worker processes', () => {
  let etcd: EtcdProcess | undefined;
  let node: GreeterNode | undefined;
  let gateway: ChildGateway | undefined;
  let dir = '';
  let logFile = '';
  let deadPort = 0;
  const clients: Client[] = [];

  before(async () => {
    etcd = await startEtcd();
    node = await startGreeterNode();
    deadPort = await freePort(); // nothing listens there: connect refused, UNAVAILABLE
    dir = mkdtempSync(join(tmpdir(), 'gw-observability-'));
    logFile = join(dir, 'access.log');
    gateway = await spawnChildGateway(etcd.endpoint, { workers: 2, env: { GATEWAY_ACCESS_LOG: logFile, GATEWAY_ACCESS_LOG_FORMAT: 'json' } });
    await putEtcdJson(etcd.endpoint, '/apisix/routes/1', { uri: '/helloworld.Greeter/SayHello', upstream: { nodes: { [node.address]: 1 } } });
    await putEtcdJson(etcd.endpoint, '/apisix/routes/2', { uri: '/helloworld.Greeter/SayHelloClientStream', upstream: { nodes: { [`127.0.0.1:${deadPort}`]: 1 }, retries: 0 } });
    const gw = gateway;
    const started = Date.now();
    for (;;) {
      const ready = await fetch(`http://${gw.statusAddress}/readyz`).then((r) => (r.ok ? (r.json() as Promise<{ routes: number; workers?: { routes: number }[] }>) : undefined)).catch(() => undefined);
      if (ready !== undefined && ready.workers?.length === 2 && ready.workers.every((w) => w.routes === 2)) break;
      if (Date.now() - started > START_LIMIT_MS) throw new Error(`gateway not ready with 2 routes in 2 workers:\n${gw.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    for (const client of clients) client.close();
    await gateway?.stop();
    await node?.close();
    await etcd?.close();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  test('one scrape counts every call of the mix exactly, summed over both workers, and the access log has a line per call', { timeout: 90_000 }, async () => {
    assert.ok(gateway !== undefined && node !== undefined);
    const gw = gateway;
    const expected = { OK: 0, NOT_FOUND: 0, UNIMPLEMENTED: 0, DEADLINE_EXCEEDED: 0, UNAVAILABLE: 0 };
    const { path: clientStreamPath, requestSerialize, responseDeserialize } = greeterMethod('SayHelloClientStream');
    for (let i = 0; i < CLIENTS; i++) {
      const client = greeterClient(gw.h2cAddress);
      clients.push(client);
      // OK, twice
      for (let k = 0; k < 2; k++) {
        const ok = await sayHello(client, `ok-${i}-${k}`);
        assert.equal(ok.status.code, 0);
        expected.OK++;
      }
      // NOT_FOUND, answered by the upstream (trailers-only), passed through
      const notFound = new Metadata();
      notFound.set(STATUS_HEADER, '5');
      assert.equal((await sayHello(client, 'nf', notFound)).status.code, 5);
      expected.NOT_FOUND++;
      // UNIMPLEMENTED: no route for this path
      const unimplemented = await new Promise<number>((resolve) => {
        client.makeUnaryRequest('/nope.Service/Missing', requestSerialize, responseDeserialize, { name: 'x' }, (err) => resolve(err?.code ?? 0));
      });
      assert.equal(unimplemented, 12);
      expected.UNIMPLEMENTED++;
      // UNAVAILABLE: route 2's only node refuses connections
      const unavailable = await new Promise<number>((resolve) => {
        const call = client.makeClientStreamRequest(clientStreamPath, requestSerialize, responseDeserialize, (err) => resolve(err?.code ?? 0));
        call.write({ name: 'x' });
        call.end();
      });
      assert.equal(unavailable, 14);
      expected.UNAVAILABLE++;
    }
    // DEADLINE_EXCEEDED at the gateway: grpc-timeout 200 ms, an upstream that answers after 5 s. A raw client with
    // no deadline of its own, so the gateway's answer (not a client-side cancel) ends the call.
    for (let i = 0; i < 4; i++) {
      const res = await rawUnaryCall({ address: gw.h2cAddress, authority: 'gw' }, '/helloworld.Greeter/SayHello', { 'grpc-timeout': '200m', [DELAY_HEADER]: '5000' }, grpcFrame(helloMessage('late')));
      assert.equal(res.headers['grpc-status'] ?? res.trailers?.['grpc-status'], '4');
      expected.DEADLINE_EXCEEDED++;
    }
    const total = Object.values(expected).reduce((a, b) => a + b, 0);

    const samples = await scrape(gw.statusAddress);
    const grpc = (code: string, labels: Record<string, string> = {}): number => sumOf(samples, 'apisix_grpc_status', { grpc_code: code, ...labels });
    assert.equal(grpc('OK', { route: '1', node: '127.0.0.1' }), expected.OK);
    assert.equal(grpc('NOT_FOUND', { route: '1', node: '127.0.0.1' }), expected.NOT_FOUND);
    assert.equal(grpc('UNIMPLEMENTED', { route: '', service: '', node: '' }), expected.UNIMPLEMENTED);
    // The gateway's timer or the upstream's own (grpc-timeout is forwarded as the time left) may end these first:
    // node="" when the gateway did, the node's IP when the upstream answered DEADLINE_EXCEEDED itself.
    assert.equal(grpc('DEADLINE_EXCEEDED', { route: '1' }), expected.DEADLINE_EXCEEDED);
    assert.equal(grpc('UNAVAILABLE', { route: '2', node: '' }), expected.UNAVAILABLE);
    assert.equal(sumOf(samples, 'apisix_grpc_status'), total, 'no other call was counted');
    // APISIX's own metrics: every call is one HTTP 200 (gRPC statuses travel in trailers), with the route's pattern.
    assert.equal(sumOf(samples, 'apisix_http_status', { code: '200' }), total);
    assert.equal(sumOf(samples, 'apisix_http_status', { route: '1', matched_uri: '/helloworld.Greeter/SayHello' }), expected.OK + expected.NOT_FOUND + expected.DEADLINE_EXCEEDED);
    assert.equal(sumOf(samples, 'apisix_http_requests_total'), total);
    // Histograms: one request observation per call, in its +Inf bucket and its _count alike.
    assert.equal(sumOf(samples, 'apisix_http_latency_count', { type: 'request' }), total);
    assert.equal(sumOf(samples, 'apisix_http_latency_bucket', { type: 'request', le: '+Inf' }), total);
    // Upstream latency only where an upstream answered: OK and NOT_FOUND, and the DEADLINE_EXCEEDED calls the
    // upstream ended itself (counted with its node above) rather than the gateway's timer (node="").
    const answeredDeadlines = grpc('DEADLINE_EXCEEDED', { route: '1', node: '127.0.0.1' });
    assert.equal(sumOf(samples, 'apisix_http_latency_count', { type: 'upstream' }), expected.OK + expected.NOT_FOUND + answeredDeadlines);
    // Buckets are cumulative: each bucket holds at least the one below it.
    for (const series of samplesOf(samples, 'apisix_http_latency_count', { type: 'request' })) {
      const buckets = samplesOf(samples, 'apisix_http_latency_bucket', { ...series.labels, type: 'request' }).map((s) => s.value);
      assert.deepEqual([...buckets].sort((a, b) => a - b), buckets);
    }
    assert.ok(sumOf(samples, 'apisix_bandwidth', { type: 'ingress', route: '1' }) > 0);
    assert.equal(sumOf(samples, 'apisix_etcd_reachable'), 1, 'the minimum over the workers: both reach etcd');
    assert.equal(samplesOf(samples, 'apisix_node_info').length, 1, 'one node_info, not one per worker');

    // The access log: exactly one JSON line per call (written asynchronously by each worker: wait for them).
    const lines = (): string[] => readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '');
    await waitUntil(() => lines().length >= total, 10_000, () => `access log has ${lines().length} of ${total} lines`);
    await new Promise((r) => setTimeout(r, 300)); // nothing more may come
    const records = lines().map((l) => JSON.parse(l) as { grpc_status: number; request_id: string; route_id: string; request_uri: string });
    assert.equal(records.length, total);
    const byStatus = (code: number): number => records.filter((r) => r.grpc_status === code).length;
    assert.deepEqual(
      { OK: byStatus(0), NOT_FOUND: byStatus(5), UNIMPLEMENTED: byStatus(12), DEADLINE_EXCEEDED: byStatus(4), UNAVAILABLE: byStatus(14) },
      expected,
    );
    assert.equal(new Set(records.map((r) => r.request_id)).size, total, 'every line has its own request id');
    assert.equal(sumOf(await scrape(gw.statusAddress, '/metrics'), 'apisix_access_log_lines', { state: 'written' }), total);
  });

  test('SIGUSR1 to the primary makes every worker reopen the access log, as logrotate expects of nginx', { timeout: 60_000 }, async () => {
    assert.ok(gateway !== undefined);
    const gw = gateway;
    const rotated = `${logFile}.1`;
    const before = readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '').length;
    renameSync(logFile, rotated);
    process.kill(gw.pid, 'SIGUSR1');
    await waitUntil(() => existsSync(logFile), 10_000, () => 'the access log was not reopened');
    // The other worker got the same IPC message in the same turn; give its open a moment (not an assertion).
    await new Promise((r) => setTimeout(r, 500));
    // A new connection per call: the primary hands them to both workers in turn, so both must have reopened.
    for (let i = 0; i < CLIENTS; i++) {
      const client = greeterClient(gw.h2cAddress);
      clients.push(client);
      assert.equal((await sayHello(client, `after-rotate-${i}`)).status.code, 0);
    }
    const lines = (file: string): number => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').length;
    await waitUntil(() => lines(logFile) === CLIENTS, 10_000, () => `new file has ${lines(logFile)} lines`);
    assert.equal(lines(rotated), before, 'nothing more went to the rotated file');
    assert.equal(gw.exited, false, 'SIGUSR1 did not stop the gateway');
  });
});