/**
 * The data plane's status port (/healthz, /readyz): a whole data plane in-process against a real etcd, routes
 * written straight to etcd with a raw etcd3 client, and etcd stopped and started again under it to see
 * `config_stale` follow the watch while readiness stays up. The phases a running data plane passes too quickly to
 * probe (loading, draining) are checked against the status server alone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { startDataPlane, type DataPlane } from '../../data-plane/data-plane.ts';
import { StatusPhase, startStatusServer, type StatusReport } from '../../data-plane/status-server.ts';
import { parseConfig } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { startStatusDataPlane } from '../helpers/status-data-plane.ts';

/** Bounds every poll: etcd restarts, the watch's connect deadline (timeout: 2 s) and its retry backoff fit well in it. */
const WAIT_MS = 30_000;
const POLL_MS = 25;

interface StatusBody {
  status: string;
  revision: string | null;
  routes: number;
  config_stale: boolean;
  since: string | null;
}

interface Probe {
  status: number;
  body: StatusBody;
}

async function get(base: string, path: string, method = 'GET'): Promise<{ status: number; text: string; type: string | null }> {
  const res = await fetch(`${base}${path}`, { method });
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') };
}

async function probe(base: string, path: '/healthz' | '/readyz'): Promise<Probe> {
  const res = await get(base, path);
  return { status: res.status, body: JSON.parse(res.text) as StatusBody };
}

async function waitFor(base: string, what: string, predicate: (probe: Probe) => boolean): Promise<Probe> {
  const deadline = Date.now() + WAIT_MS;
  let last: Probe | undefined;
  while (Date.now() < deadline) {
    last = await probe(base, '/readyz');
    if (predicate(last)) return last;
    await sleep(POLL_MS);
  }
  throw new Error(`${what}: not seen within ${WAIT_MS} ms; last /readyz: ${JSON.stringify(last)}`);
}

function route(uri: string): string {
  return JSON.stringify({ uri, upstream: { scheme: 'grpc', type: 'roundrobin', nodes: { '127.0.0.1:50051': 1 } } });
}

/** A fresh client per write: one that saw etcd go away keeps its circuit breaker open for a while. */
async function putRoute(etcd: EtcdProcess, id: string, uri: string): Promise<void> {
  const client = new Etcd3({ hosts: etcd.endpoint });
  try {
    await client.put(`/apisix/routes/${id}`).value(route(uri));
  } finally {
    client.close();
  }
}

describe('status port of a running data plane', () => {
  let etcd: EtcdProcess;
  let dataPlane: DataPlane;
  let base: string;

  before(async () => {
    etcd = await startEtcd();
    dataPlane = await startStatusDataPlane(etcd.endpoint);
    const address = dataPlane.statusAddress;
    assert.ok(address !== undefined, 'apisix.status is set, so the data plane has a status address');
    base = `http://${address.host}:${address.port}`;
  });

  after(async () => {
    await dataPlane.close();
    await etcd.close();
  });

  test('the status server has its own port, apart from the gRPC listeners', () => {
    const ports = dataPlane.addresses.map((a) => a.port);
    assert.equal(ports.includes(dataPlane.statusAddress?.port ?? -1), false);
  });

  test('/healthz answers 200 with status ok', async () => {
    const res = await probe(base, '/healthz');
    assert.equal(res.status, 200);
    assert.equal(res.body.status, 'ok');
    assert.equal(typeof res.body.revision, 'string');
  });

  test('/readyz answers 200 with the revision and route count of the snapshot in service', async () => {
    const res = await probe(base, '/readyz');
    assert.equal(res.status, 200);
    assert.equal(res.body.status, 'ok');
    assert.equal(res.body.revision, dataPlane.snapshots.current().revision);
    assert.equal(res.body.routes, dataPlane.snapshots.current().router.size);
  });

  test('the revision grows and the route is counted after a route is written to etcd', async () => {
    const before = await waitFor(base, 'a live etcd watch', (p) => !p.body.config_stale);
    await putRoute(etcd, 'r1', '/svc.A/Call');
    const afterPut = await waitFor(base, 'the new route in the status', (p) => p.body.routes === before.body.routes + 1);
    assert.ok(BigInt(afterPut.body.revision ?? '0') > BigInt(before.body.revision ?? '0'), JSON.stringify({ before, afterPut }));
  });

  test('with etcd stopped, config_stale turns true with its start time while /readyz stays 200', async () => {
    const live = await waitFor(base, 'a live etcd watch', (p) => !p.body.config_stale);
    assert.equal(live.body.since, null);
    const stoppedAt = Date.now();
    await etcd.stop();

    const stale = await waitFor(base, 'config_stale: true after etcd stopped', (p) => p.body.config_stale);
    assert.equal(stale.status, 200, 'a stale data plane stays ready: it serves its last good config');
    assert.equal(stale.body.status, 'ok');
    assert.equal(stale.body.revision, live.body.revision);
    assert.equal(stale.body.routes, live.body.routes);
    assert.ok(stale.body.since !== null && Date.parse(stale.body.since) >= stoppedAt - 1_000, `since: ${String(stale.body.since)}`);
    assert.equal((await probe(base, '/healthz')).body.config_stale, true);
  });

  test('config_stale returns to false once etcd is back, and changes apply again', async () => {
    await etcd.stop(); // already stopped by the previous test; makes this one stand on its own
    await waitFor(base, 'config_stale: true after etcd stopped', (p) => p.body.config_stale);
    await etcd.start();

    const live = await waitFor(base, 'config_stale: false after etcd started', (p) => !p.body.config_stale);
    assert.equal(live.status, 200);
    assert.equal(live.body.since, null);
    await putRoute(etcd, 'r2', '/svc.B/Call');
    await waitFor(base, 'a route written after the restart', (p) => p.body.routes === live.body.routes + 1);
  });

  test('a second data plane on a status port in use fails to start, naming apisix.status', async () => {
    const busy = dataPlane.statusAddress?.port ?? 0;
    const config = parseConfig(`
apisix:
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { enable: false }
  status: { ip: 127.0.0.1, port: ${busy} }
deployment:
  etcd: { host: ["${etcd.endpoint}"], timeout: 2 }
`);
    await assert.rejects(startDataPlane({ config, log: silentLogger() }), /status server \(apisix\.status\) cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
  });

  test('an unknown path is a 404 and a POST is a 405', async () => {
    const missing = await get(base, '/status');
    assert.equal(missing.status, 404);
    assert.equal(missing.type, 'application/json');
    assert.equal((await get(base, '/healthz', 'POST')).status, 405);
  });
});

describe('status server phases', () => {
  const report: StatusReport = { phase: StatusPhase.loading, revision: undefined, routes: 0, watch: { connected: false, since: 0 } };

  async function serve(current: () => StatusReport): Promise<{ base: string; close: () => Promise<void> }> {
    const server = await startStatusServer({ listen: { ip: '127.0.0.1', port: 0 }, log: silentLogger(), report: current });
    return { base: `http://127.0.0.1:${server.address.port}`, close: () => server.close() };
  }

  test('before the first config is in service, /readyz is 503 and /healthz is 200', async (t) => {
    const server = await serve(() => report);
    t.after(server.close);
    const ready = await probe(server.base, '/readyz');
    assert.equal(ready.status, 503);
    assert.deepEqual(ready.body, { status: 'loading', revision: null, routes: 0, config_stale: true, since: new Date(0).toISOString(), config_error: null, config_skipped: 0 });
    assert.equal((await probe(server.base, '/healthz')).status, 200);
  });

  test('while draining, /readyz is 503 so balancers stop sending new calls', async (t) => {
    const server = await serve(() => ({ ...report, phase: StatusPhase.draining, revision: '7', routes: 2 }));
    t.after(server.close);
    const ready = await probe(server.base, '/readyz');
    assert.equal(ready.status, 503);
    assert.equal(ready.body.status, 'draining');
    assert.equal(ready.body.revision, '7');
  });

  test('close() is idempotent and frees the port', async () => {
    const server = await startStatusServer({ listen: { ip: '127.0.0.1', port: 0 }, log: silentLogger(), report: () => report });
    await probe(`http://127.0.0.1:${server.address.port}`, '/healthz'); // leaves a keep-alive connection open
    await Promise.all([server.close(), server.close()]);
    await server.close();
    await assert.rejects(fetch(`http://127.0.0.1:${server.address.port}/healthz`));
  });
});
