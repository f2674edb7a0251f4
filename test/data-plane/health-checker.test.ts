/**
 * The checker's counters and states (upstream/health/checker.ts), driven through its passive and remote inputs
 * with explicit clocks: lua-resty-healthcheck's thresholds, passive-only ejection by time, quiet remote changes,
 * one log line per change, and the pickers' view of it (upstream.ts): unhealthy nodes skipped, priority groups
 * falling back, every node used when none is healthy.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pino from 'pino';
import type { UpstreamConf } from '../../shared/schema/upstream.ts';
import { HealthChecker, type HealthChange } from '../../data-plane/upstream/health/checker.ts';
import { healthPolicy } from '../../data-plane/upstream/health/policy.ts';
import { HealthRegistry } from '../../data-plane/upstream/health/registry.ts';
import { resolveUpstream } from '../../data-plane/upstream/upstream.ts';
import { Writable } from 'node:stream';

/** A logger whose lines are kept (JSON objects), so tests can count them. */
function recordingLog(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

const NODES = [
  { key: 'grpc://a:1', host: 'a', port: 1 },
  { key: 'grpc://b:1', host: 'b', port: 1 },
];

function checker(checks: UpstreamConf['checks'], publish?: (c: HealthChange) => void) {
  const { log, lines } = recordingLog();
  const c = new HealthChecker('id-1', 'upstreams/1', healthPolicy(checks ?? {}), (n) => ({ host: n.host, port: n.port, scheme: 'grpc', tls: undefined }), {
    log,
    prober: undefined,
    publish,
  });
  c.setNodes(NODES);
  return { c, lines };
}

describe('health checker counters (lua-resty-healthcheck semantics)', () => {
  test('tcp failures eject at their threshold; a success in between starts the count again', () => {
    const { c, lines } = checker({ passive: { unhealthy: { tcp_failures: 3 } } });
    c.passive('grpc://a:1', 'tcp_failure', 'connect failed');
    c.passive('grpc://a:1', 'tcp_failure', 'connect failed');
    c.passive('grpc://a:1', 'success', 'ok');
    c.passive('grpc://a:1', 'tcp_failure', 'connect failed');
    c.passive('grpc://a:1', 'tcp_failure', 'connect failed');
    assert.equal(c.isHealthy('grpc://a:1'), true, 'the success cleared the failures');
    c.passive('grpc://a:1', 'tcp_failure', 'connect failed');
    assert.equal(c.isHealthy('grpc://a:1'), false);
    assert.equal(c.isHealthy('grpc://b:1'), true);
    assert.equal(c.unhealthyCount, 1);
    const changes = lines.filter((l) => l['msg'] === 'upstream node is unhealthy: calls go to other nodes');
    assert.equal(changes.length, 1, 'logged once');
    assert.equal(changes[0]?.['node'], 'grpc://a:1');
    assert.equal(changes[0]['upstream'], 'upstreams/1');
    assert.match(String(changes[0]['reason']), /connect failed \(3 tcp failures, passive\)/);
    // More failures of an unhealthy node change nothing and log nothing.
    c.passive('grpc://a:1', 'tcp_failure', 'connect failed');
    assert.equal(lines.filter((l) => l['msg'] === 'upstream node is unhealthy: calls go to other nodes').length, 1);
  });

  test("each kind has its own threshold: APISIX's passive defaults (http 5, tcp 2, timeouts 7)", () => {
    const { c } = checker({ passive: {} });
    for (let i = 0; i < 6; i++) c.passive('grpc://a:1', 'timeout', 't');
    assert.equal(c.isHealthy('grpc://a:1'), true);
    c.passive('grpc://a:1', 'timeout', 't');
    assert.equal(c.isHealthy('grpc://a:1'), false);
    for (let i = 0; i < 4; i++) c.passive('grpc://b:1', 'http_failure', 'grpc-status 14');
    assert.equal(c.isHealthy('grpc://b:1'), true);
    c.passive('grpc://b:1', 'http_failure', 'grpc-status 14');
    assert.equal(c.isHealthy('grpc://b:1'), false);
  });

  test('passive-only: an ejected node comes back after base_ejection_time, not by successes', () => {
    const { c, lines } = checker({ passive: { base_ejection_time: 5, unhealthy: { tcp_failures: 1 } } });
    const t0 = Date.now();
    c.passive('grpc://a:1', 'tcp_failure', 'refused');
    assert.equal(c.isHealthy('grpc://a:1'), false);
    for (let i = 0; i < 10; i++) c.passive('grpc://a:1', 'success', 'ok');
    assert.equal(c.isHealthy('grpc://a:1'), false, 'successes do not end a timed ejection');
    c.tick(t0 + 4_000);
    assert.equal(c.isHealthy('grpc://a:1'), false);
    c.tick(t0 + 5_500);
    assert.equal(c.isHealthy('grpc://a:1'), true);
    assert.equal(lines.filter((l) => l['msg'] === 'upstream node is healthy again').length, 1);
  });

  test('with an active check, passive ejection lasts until probes bring the node back (no timed return)', () => {
    const { c } = checker({ active: { type: 'tcp' }, passive: { unhealthy: { tcp_failures: 1 } } });
    c.passive('grpc://a:1', 'tcp_failure', 'refused');
    c.tick(Date.now() + 3_600_000);
    assert.equal(c.isHealthy('grpc://a:1'), false);
  });

  test('a change is published once; a remote change applies quietly and is not published again', () => {
    const published: HealthChange[] = [];
    const { c, lines } = checker({ passive: { unhealthy: { tcp_failures: 1 } } }, (change) => published.push(change));
    c.passive('grpc://a:1', 'tcp_failure', 'refused');
    assert.equal(published.length, 1);
    assert.deepEqual({ ...published[0], reason: undefined }, { checker: 'id-1', node: 'grpc://a:1', healthy: false, reason: undefined });
    const before = lines.length;
    const version = c.version;
    c.applyRemote('grpc://b:1', false);
    assert.equal(c.isHealthy('grpc://b:1'), false);
    assert.equal(c.version, version + 1);
    assert.equal(lines.length, before, 'no log line for a change made elsewhere');
    assert.equal(published.length, 1);
  });

  test('a passive ejection made in another process ends here quietly: one log line and one publish per replica, from its origin', () => {
    const published: HealthChange[] = [];
    const { c, lines } = checker({ passive: { base_ejection_time: 1, unhealthy: { tcp_failures: 1 } } }, (change) => published.push(change));
    const t0 = Date.now();
    c.applyRemote('grpc://a:1', false, t0);
    c.tick(t0 + 1_500);
    assert.equal(c.isHealthy('grpc://a:1'), true);
    assert.equal(published.length, 0);
    assert.equal(lines.filter((l) => String(l['msg']).startsWith('upstream node is')).length, 0);
  });

  test('report: APISIX control API shape, mostly_healthy while failures are counted', () => {
    const { c } = checker({ active: { type: 'grpc' }, passive: { unhealthy: { tcp_failures: 2 } } });
    c.passive('grpc://a:1', 'tcp_failure', 'x');
    const report = c.report();
    assert.equal(report.name, '/apisix/upstreams/1');
    assert.equal(report.type, 'grpc');
    const a = report.nodes.find((n) => n.key === 'grpc://a:1');
    assert.deepEqual(a, { key: 'grpc://a:1', ip: 'a', port: 1, hostname: 'a', status: 'mostly_healthy', counter: { success: 0, http_failure: 0, tcp_failure: 1, timeout_failure: 0 } });
    assert.equal(report.nodes.find((n) => n.key === 'grpc://b:1')?.status, 'healthy');
  });

  test('a node removed from the upstream is forgotten (and counts as healthy)', () => {
    const { c } = checker({ passive: { unhealthy: { tcp_failures: 1 } } });
    c.passive('grpc://a:1', 'tcp_failure', 'x');
    assert.equal(c.unhealthyCount, 1);
    c.setNodes([NODES[1] as (typeof NODES)[number]]);
    assert.equal(c.unhealthyCount, 0);
    assert.equal(c.size, 1);
    assert.equal(c.report().nodes.length, 1);
  });
});

describe('picking with health (upstream.ts)', () => {
  const conf = (extra: Partial<UpstreamConf>): UpstreamConf => ({
    nodes: [
      { host: 'p1', port: 1, weight: 1, priority: 1 },
      { host: 'p2', port: 1, weight: 1, priority: 1 },
      { host: 'b1', port: 1, weight: 1, priority: 0 },
    ],
    checks: { passive: { unhealthy: { tcp_failures: 1 } } },
    ...extra,
  });

  test('unhealthy nodes are skipped; a lower priority group is used only when the higher one has no healthy node', async () => {
    const registry = new HealthRegistry({ log: recordingLog().log, probes: false, upstreamTls: { ca: undefined } });
    try {
      const up = resolveUpstream('upstreams/1', conf({}), undefined, undefined, registry);
      const seen = (n: number): Set<string> => {
        const out = new Set<string>();
        for (let i = 0; i < n; i++) out.add(up.pick()?.host ?? '-');
        return out;
      };
      assert.deepEqual([...seen(10)].sort(), ['p1', 'p2']);
      up.checker?.passive('grpc://p1:1', 'tcp_failure', 'x');
      assert.deepEqual([...seen(10)], ['p2']);
      up.checker?.passive('grpc://p2:1', 'tcp_failure', 'x');
      assert.deepEqual([...seen(10)], ['b1'], 'the backup group once every higher node is down');
      up.checker?.passive('grpc://b1:1', 'tcp_failure', 'x');
      assert.deepEqual([...seen(10)].sort(), ['p1', 'p2'], 'no node healthy: every node is used again, highest priority first (APISIX)');
      up.checker?.applyRemote('grpc://b1:1', true);
      assert.deepEqual([...seen(10)], ['b1']);
      // A retry that tried b1 finds nothing healthy left, and falls to... nothing: the tried node is excluded.
      assert.equal(up.pick(new Set(['grpc://b1:1'])), undefined);
    } finally {
      await registry.close();
    }
  });

  test('healthy nodes of weight 0 do not keep the all-unhealthy fallback off', async () => {
    const registry = new HealthRegistry({ log: recordingLog().log, probes: false, upstreamTls: { ca: undefined } });
    try {
      const up = resolveUpstream(
        'upstreams/w',
        { nodes: [{ host: 'a', port: 1, weight: 1 }, { host: 'z', port: 1, weight: 0 }], checks: { passive: { unhealthy: { tcp_failures: 1 } } } },
        undefined,
        undefined,
        registry,
      );
      up.checker?.passive('grpc://a:1', 'tcp_failure', 'x');
      assert.equal(up.pick()?.host, 'a', 'the only node with weight is used although unhealthy');
    } finally {
      await registry.close();
    }
  });

  test('routes sharing an upstream object share its checker; an edited checks block is a new checker; retain stops the old', async () => {
    const registry = new HealthRegistry({ log: recordingLog().log, probes: false, upstreamTls: { ca: undefined } });
    try {
      const a = resolveUpstream('upstreams/1', conf({}), undefined, undefined, registry);
      const b = resolveUpstream('upstreams/1', conf({}), { connect: 1, send: 1, read: 1 }, undefined, registry);
      assert.ok(a.checker !== undefined && a.checker === b.checker);
      a.checker.passive('grpc://p1:1', 'tcp_failure', 'x');
      assert.equal(b.pick()?.host, 'p2', 'the other route sees the state');
      const edited = resolveUpstream('upstreams/1', conf({ checks: { passive: { unhealthy: { tcp_failures: 2 } } } }), undefined, undefined, registry);
      assert.notEqual(edited.checker, a.checker);
      assert.equal(registry.size, 2);
      registry.retain(new Set([edited.checker?.id ?? '']));
      assert.equal(registry.size, 1);
      assert.equal(resolveUpstream('upstreams/2', { nodes: { 'x:1': 1 } }, undefined, undefined, registry).checker, undefined, 'no checks, no checker');
    } finally {
      await registry.close();
    }
  });

  test('a change for a checker this process has not built yet is applied when it is built', async () => {
    const registry = new HealthRegistry({ log: recordingLog().log, probes: false, upstreamTls: { ca: undefined } });
    try {
      const probe = resolveUpstream('upstreams/1', conf({}), undefined, undefined, registry);
      const id = probe.checker?.id ?? '';
      await registry.close();
      const later = new HealthRegistry({ log: recordingLog().log, probes: false, upstreamTls: { ca: undefined } });
      later.applyRemote({ checker: id, node: 'grpc://p1:1', healthy: false, reason: 'remote' });
      const up = resolveUpstream('upstreams/1', conf({}), undefined, undefined, later);
      assert.equal(up.checker?.isHealthy('grpc://p1:1'), false);
      await later.close();
    } finally {
      await registry.close();
    }
  });
});
