/**
 * Issue #11, case 2: one etcd value must not stop every config update. A route whose `nodes[].metadata` was nested
 * 10,000 levels deep passed the schema then and made the snapshot build throw: running workers kept their config
 * forever and restarted ones crash-looped. The shared schema check now refuses such a value before any build
 * (shared/json-bounds.ts), so it is skipped like any invalid value; the build must still be safe on its own, so the
 * unit tests below hand it a value that got past validation. Values are written straight into etcd, bypassing the
 * admin API, as anyone who can write etcd could.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { ConfigStore, type ConfigState, type RawKeyValue } from '../../data-plane/config/config-state.ts';
import { RebuildThrottle } from '../../data-plane/config/rebuild-throttle.ts';
import { buildSnapshot } from '../../data-plane/config/snapshots.ts';
import type { DataPlane } from '../../data-plane/data-plane.ts';
import { StatusPhase, startStatusServer } from '../../data-plane/status-server.ts';
import { GrpcStatus } from '../../shared/grpc-status.ts';
import { silentLogger } from '../../shared/logger.ts';
import { spawnChildGateway, putEtcdJson, type ChildGateway } from '../flow/child-gateway.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { startStatusDataPlane } from '../helpers/status-data-plane.ts';
import { waitUntil } from '../helpers/fake-upstream.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';

const TEST_TIMEOUT_MS = 90_000;
const WAIT_MS = 30_000;
/** The issue's value: deep enough that JSON.stringify overflows the stack. */
const DEPTH = 10_000;
const POLL_MS = 100;

/** A route to `node` for `/<service>/*` whose one node carries metadata nested `depth` levels deep (raw JSON). */
function routeJson(service: string, node: string, depth = 0): string {
  const metadata = depth === 0 ? '{}' : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
  const [host = '', port = '0'] = node.split(':');
  return `{"uri":"/${service}/*","upstream":{"type":"roundrobin","nodes":[{"host":"${host}","port":${port},"weight":1,"metadata":${metadata}}]}}`;
}

const kv = (id: string, json: string, revision: number): RawKeyValue => ({
  key: Buffer.from(`/apisix/routes/${id}`),
  value: Buffer.from(json),
  mod_revision: String(revision),
});

/**
 * `state` with route `id` replaced by the deep value as if it had passed validation (it no longer does): what a gap in
 * the schema checks would let through to the build.
 */
function withUnbuildableRoute(state: ConfigState, id: string, modRevision: number): ConfigState {
  const value = JSON.parse(routeJson('deep.Svc', '127.0.0.1:1', DEPTH)) as never;
  return withRoute(state, { id, value, modRevision: String(modRevision) });
}

/** `state` with `item` in place of its route of the same id (the same object, as an unchanged etcd value stays). */
function withRoute(state: ConfigState, item: ConfigState['routes'] extends ReadonlyMap<string, infer I> ? I : never): ConfigState {
  return { ...state, routes: new Map(state.routes).set(item.id, item) };
}

function snapshotState(store: ConfigStore): ConfigState {
  const state = store.current();
  assert.ok(state !== undefined);
  return state;
}

/** A pino logger whose lines (parsed) land in `lines`. */
function capturingLogger(lines: Record<string, unknown>[]): ReturnType<typeof silentLogger> {
  return pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
}

describe('snapshot builds', () => {
  test('a route that cannot be built is skipped with its key and revision logged, and the other routes apply', () => {
    const lines: Record<string, unknown>[] = [];
    const store = new ConfigStore('/apisix', silentLogger());
    const state = withUnbuildableRoute(store.replaceAll([kv('good', routeJson('good.Svc', '127.0.0.1:2'), 6)], '6'), 'deep', 5);
    const snapshot = buildSnapshot(state, undefined, capturingLogger(lines));
    assert.equal(snapshot.targets.has('good'), true);
    assert.equal(snapshot.targets.has('deep'), false);
    assert.equal(snapshot.failed.size, 1);
    const logged = lines.find((l) => l['key'] === 'routes/deep');
    assert.ok(logged !== undefined, `no log line names the route: ${JSON.stringify(lines)}`);
    assert.equal(logged['modRevision'], '5');
  });

  test('incremental rebuilds keep applying changes after a route failed, without retrying it while it is unchanged', () => {
    const lines: Record<string, unknown>[] = [];
    const log = capturingLogger(lines);
    const store = new ConfigStore('/apisix', silentLogger());
    let snapshot = buildSnapshot(store.replaceAll([kv('deep', routeJson('deep.Svc', '127.0.0.1:1'), 5)], '5'), undefined, log);
    assert.equal(snapshot.targets.has('deep'), true, 'the route applied while it was buildable');
    const broken = withUnbuildableRoute(snapshotState(store), 'deep', 6);
    const brokenItem = broken.routes.get('deep');
    assert.ok(brokenItem !== undefined);
    snapshot = buildSnapshot(broken, snapshot, log);
    assert.equal(snapshot.targets.get('deep')?.upstream.nodes[0]?.key, 'grpc://127.0.0.1:1', 'its last good build stays in service');
    for (let revision = 7; revision < 10; revision++) {
      store.applyPut(kv(`later-${revision}`, routeJson(`later${revision}.Svc`, '127.0.0.1:3'), revision));
      const next = store.commit(String(revision));
      assert.ok(next !== undefined);
      snapshot = buildSnapshot(withRoute(next, brokenItem), snapshot, log);
      assert.equal(snapshot.targets.has(`later-${revision}`), true, `the change at revision ${revision} applied`);
    }
    assert.equal(lines.filter((l) => l['key'] === 'routes/deep').length, 1, 'the unchanged failure is logged once, not per rebuild');
  });

  test('a rebuild that throws is reported, never thrown, and the next state still builds', async () => {
    const built: number[] = [];
    const errors: number[] = [];
    const throttle = new RebuildThrottle<number>(
      (n) => {
        if (n === 2) throw new Error('cannot build');
        built.push(n);
      },
      undefined,
      (_err, n) => errors.push(n),
    );
    try {
      throttle.push(1);
      throttle.push(2); // within the interval: built from the throttle's timer, where a throw was uncaught
      await waitUntil(() => errors.length === 1, WAIT_MS, () => 'the failed build was not reported');
      throttle.push(3);
      await waitUntil(() => built.includes(3), WAIT_MS, () => `state 3 never built: ${JSON.stringify(built)}`);
      assert.deepEqual(errors, [2]);
    } finally {
      throttle.close();
    }
  });
});

test('/readyz of a data plane that cannot apply the newest config stays 200 but says config_stale with the error', async () => {
  const server = await startStatusServer({
    listen: { ip: '127.0.0.1', port: 0 },
    log: silentLogger(),
    report: () => ({
      phase: StatusPhase.serving,
      revision: '7',
      routes: 3,
      watch: { connected: true, since: Date.now() },
      config: { error: 'revision 9: cannot build', skipped: 0 },
    }),
  });
  try {
    const res = await fetch(`http://${server.address.host}:${server.address.port}/readyz`);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(res.status, 200, 'it still serves its last good config');
    assert.equal(body['config_stale'], true, 'the config in service lags behind etcd');
    assert.equal(body['config_error'], 'revision 9: cannot build');
    assert.equal(body['revision'], '7', 'the revision in service, not the one that failed');
  } finally {
    await server.close();
  }
});

/** The /readyz body once it answers 200, polled within WAIT_MS; fails early if the process exits. */
async function readyBody(gateway: ChildGateway): Promise<Record<string, unknown>> {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline && !gateway.exited) {
    const res = await fetch(`http://${gateway.statusAddress}/readyz`).catch(() => undefined);
    if (res?.status === 200) return (await res.json()) as Record<string, unknown>;
    await res?.body?.cancel();
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error(`the data plane never became ready (exited: ${String(gateway.exited)}): ${gateway.output()}`);
}

describe('a data plane fed a value nested 10,000 levels deep', () => {
  let etcd: EtcdProcess;
  let greeter: GreeterNode;
  let dataPlane: DataPlane;
  let child: ChildGateway | undefined;

  before(async () => {
    etcd = await startEtcd();
    greeter = await startGreeterNode({ id: 'isolation' });
    await putEtcdJson(etcd.endpoint, '/apisix/routes/before', JSON.parse(routeJson('helloworld.Greeter', greeter.address)) as unknown);
    dataPlane = await startStatusDataPlane(etcd.endpoint);
  });

  after(async () => {
    await child?.stop();
    await dataPlane.close();
    await greeter.close();
    await etcd.close();
  });

  test('the other routes still apply and serve, the deep one is skipped, and /readyz stays ready without a config error', { timeout: TEST_TIMEOUT_MS }, async () => {
    // The raw put: etcd3's put takes a string, and JSON.stringify cannot even write this value.
    const { Etcd3 } = await import('etcd3');
    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      await client.put('/apisix/routes/deep').value(routeJson('deep.Svc', greeter.address, DEPTH));
      await client.put('/apisix/routes/after').value(routeJson('after.Svc', greeter.address));
    } finally {
      client.close();
    }
    await waitUntil(() => dataPlane.snapshots.current().targets.has('after'), WAIT_MS, () => 'the route written after the bad one never applied');
    const grpc = greeterClient(`127.0.0.1:${dataPlane.addresses[0]?.port ?? 0}`);
    try {
      const outcome = await sayHello(grpc, 'beside');
      assert.equal(outcome.status.code, GrpcStatus.OK, outcome.status.details);
    } finally {
      grpc.close();
    }
    const status = dataPlane.statusAddress;
    assert.ok(status !== undefined);
    const res = await fetch(`http://${status.host}:${status.port}/readyz`);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(res.status, 200, 'a data plane serving its config stays ready');
    assert.equal(dataPlane.snapshots.current().targets.has('deep'), false, 'the deep route is skipped as invalid');
    assert.equal(body['config_error'], null, JSON.stringify(body));
    assert.equal(body['config_stale'], false, JSON.stringify(body));
  });

  test('a data plane (with workers) started while the bad value is in etcd starts and serves the other routes', { timeout: TEST_TIMEOUT_MS }, async () => {
    child = await spawnChildGateway(etcd.endpoint, { workers: 2 });
    const started = child;
    const body = await readyBody(started);
    assert.equal(started.exited, false, `the data plane exited: ${started.output()}`);
    assert.equal(body['config_error'], null, JSON.stringify(body));
    assert.equal(body['routes'], 2, `the two valid routes are in service: ${JSON.stringify(body)}`);
    const grpc = greeterClient(started.h2cAddress);
    try {
      const outcome = await sayHello(grpc, 'after restart');
      assert.equal(outcome.status.code, GrpcStatus.OK, outcome.status.details);
    } finally {
      grpc.close();
    }
  });
});
