/**
 * limit-req's leaky bucket and limit-conn's count of calls in flight, in process with the time set by the test and
 * the holds recorded instead of waited (issue #16): which calls pass, which wait and for how long, which are
 * refused; the bounded key table; limit-conn's release through the request's onDone, once per call; and the
 * pipeline's order of the three limiting plugins. The engines' side (a release on every way a call ends) is
 * test/e2e/limit-req-conn.test.ts.
 */
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { describe, test } from 'node:test';
import { GrpcStatus } from '../../shared/grpc-status.ts';
import { validateResource } from '../../shared/validate.ts';
import { compileLimitConn, MAX_LEARNT_UNIT_MS } from '../../data-plane/plugins/limit-conn.ts';
import { compileLimitReq } from '../../data-plane/plugins/limit-req.ts';
import { MAX_KEYS, type Hold } from '../../data-plane/plugins/limit-common.ts';
import { compilePlugins, type CompiledPlugin } from '../../data-plane/plugins/pipeline.ts';
import { HeaderListRequest } from '../../data-plane/plugins/header-list-request.ts';
import { NO_CONSUMERS } from '../../data-plane/plugins/consumers.ts';
import type { AccessVerdict, PluginRequest } from '../../data-plane/plugins/request.ts';
import { testRequest, type TestRequest } from '../helpers/plugin-request.ts';

function request(headers: Record<string, string> = {}, remoteAddress = '10.0.0.1'): TestRequest {
  return testRequest({ headers, remoteAddress });
}

/** A hold that records its delay and lets the call go on at once. */
function recorder(): { hold: Hold; delays: number[] } {
  const delays: number[] = [];
  return { delays, hold: (ms) => (delays.push(ms), Promise.resolve(undefined)) };
}

type Outcome = 'pass' | 'held' | 'refused';

/** What a plugin answered: passed at once, held (a promise), or refused (asserted to be RESOURCE_EXHAUSTED). */
function outcome(plugin: CompiledPlugin, req: PluginRequest, message?: string): Outcome {
  const verdict = plugin.access(req);
  if (verdict === undefined) return 'pass';
  if (verdict instanceof Promise) return 'held';
  assertRefused(verdict, message);
  return 'refused';
}

function assertRefused(verdict: AccessVerdict, message?: string): void {
  assert.equal(verdict.error?.code, 'RATE_LIMITED');
  assert.equal(verdict.error.grpcStatus, GrpcStatus.RESOURCE_EXHAUSTED);
  if (message !== undefined) assert.equal(verdict.error.publicMessage, message);
}

describe('limit-req', () => {
  test('a key\'s first call passes, calls within the burst wait excess / rate, and the one beyond is refused', () => {
    const { hold, delays } = recorder();
    const now = 1_000_000;
    const plugin = compileLimitReq({ rate: 2, burst: 2, key: 'remote_addr' }, () => now, hold);
    assert.equal(outcome(plugin, request()), 'pass');
    assert.equal(outcome(plugin, request()), 'held');
    assert.equal(outcome(plugin, request()), 'held');
    assert.equal(outcome(plugin, request(), 'rate limit exceeded'), 'refused');
    assert.deepEqual(delays, [500, 1000], 'one then two calls ahead at 2 per second: at most burst / rate');
  });

  test('the bucket drains at the rate, and a refused call takes no place in it', () => {
    const { hold, delays } = recorder();
    let now = 0;
    const plugin = compileLimitReq({ rate: 2, burst: 1, key: 'remote_addr' }, () => now, hold);
    assert.equal(outcome(plugin, request()), 'pass');
    assert.equal(outcome(plugin, request()), 'held'); // excess 1
    assert.equal(outcome(plugin, request()), 'refused'); // would be 2
    assert.equal(outcome(plugin, request()), 'refused', 'the refusals did not add to the excess either');
    now += 500; // one call drained: excess 1 - 1 + 1 = 1
    assert.equal(outcome(plugin, request()), 'held');
    now += 1000; // both drained: a fresh start
    assert.equal(outcome(plugin, request()), 'pass');
    now += 250; // excess 0 - 0.5 + 1 = 0.5
    assert.equal(outcome(plugin, request()), 'held');
    assert.deepEqual(delays, [500, 500, 250]);
  });

  test('burst 0 admits one call per 1 / rate seconds and refuses the rest at once', () => {
    const { hold, delays } = recorder();
    let now = 0;
    const plugin = compileLimitReq({ rate: 10, burst: 0, key: 'remote_addr' }, () => now, hold);
    assert.equal(outcome(plugin, request()), 'pass');
    assert.equal(outcome(plugin, request()), 'refused');
    now += 100;
    assert.equal(outcome(plugin, request()), 'pass');
    now += 50;
    assert.equal(outcome(plugin, request()), 'refused');
    assert.deepEqual(delays, [], 'nothing waits: there is no burst to wait in');
  });

  test('nodelay lets the burst through at once and still refuses beyond it, with rejected_msg and rejected_code', () => {
    const { hold, delays } = recorder();
    const plugin = compileLimitReq({ rate: 1, burst: 3, nodelay: true, key: 'remote_addr', rejected_msg: 'slow down', rejected_code: 429 }, () => 0, hold);
    for (let i = 0; i < 4; i++) assert.equal(outcome(plugin, request()), 'pass');
    const refused = plugin.access(request());
    assert.ok(refused !== undefined && !(refused instanceof Promise));
    assertRefused(refused, 'slow down');
    assert.equal(refused.error?.httpStatus, 429);
    assert.deepEqual(delays, []);
  });

  test('counts per key: a header, a combination, and the client address when the header is absent', () => {
    const plugin = compileLimitReq({ rate: 1, burst: 0, key: 'http_x_user' }, () => 0, recorder().hold);
    assert.equal(outcome(plugin, request({ 'x-user': 'alice' })), 'pass');
    assert.equal(outcome(plugin, request({ 'x-user': 'alice' })), 'refused');
    assert.equal(outcome(plugin, request({ 'x-user': 'bob' })), 'pass', 'another key, its own bucket');
    assert.equal(outcome(plugin, request({}, '10.0.0.7')), 'pass', 'no header: the address');
    assert.equal(outcome(plugin, request({}, '10.0.0.7')), 'refused');
    const combo = compileLimitReq({ rate: 1, burst: 0, key_type: 'var_combination', key: '$remote_addr:$http_x_user' }, () => 0, recorder().hold);
    assert.equal(outcome(combo, request({ 'x-user': 'a' })), 'pass');
    assert.equal(outcome(combo, request({ 'x-user': 'a' }, '10.0.0.2')), 'pass', '10.0.0.2:a is another key');
    assert.equal(outcome(combo, request({ 'x-user': 'a' })), 'refused');
  });

  test('keeps at most MAX_KEYS buckets: drained ones go first, then the one closest to drained', () => {
    const { hold, delays } = recorder();
    let now = 0;
    const plugin = compileLimitReq({ rate: 1, burst: 5, key: 'http_x_user' }, () => now, hold);
    const as = (user: string): Outcome => outcome(plugin, request({ 'x-user': user }));
    for (let i = 0; i < MAX_KEYS; i++) {
      as(`u${i}`);
      as(`u${i}`); // excess 1: a second to drain
    }
    now += 1;
    assert.equal(as('new'), 'pass', 'the table was full: the bucket closest to drained (u0, the first of equals) made room');
    delays.length = 0;
    assert.equal(as('u0'), 'pass', 'u0 starts afresh: no wait');
    assert.equal(as('u1'), 'held', 'u1 kept its excess ("new", drained at once, made room for u0)');
    assert.equal(delays.length, 1);
    assert.ok((delays[0] ?? 0) > 1000, `u1 waits behind its excess: ${String(delays[0])} ms`);
  });

  test('the real hold settles with no verdict, so the call goes on', async () => {
    const keepAlive = setTimeout(() => undefined, 10_000); // the hold's timer is unref'd
    try {
      const plugin = compileLimitReq({ rate: 100, burst: 1, key: 'remote_addr' });
      assert.equal(plugin.access(request()), undefined);
      const held = plugin.access(request());
      assert.ok(held instanceof Promise);
      assert.equal(await held, undefined);
    } finally {
      clearTimeout(keepAlive);
    }
  });
});

describe('limit-conn', () => {
  test('over conn a call waits default_conn_delay, over conn + burst it is refused, and each end releases its place', () => {
    const { hold, delays } = recorder();
    const plugin = compileLimitConn({ conn: 2, burst: 1, default_conn_delay: 0.5, only_use_default_delay: true, key: 'remote_addr' }, () => 0, hold);
    const calls = [request(), request(), request(), request()];
    const [a, b, c, d] = calls as [TestRequest, TestRequest, TestRequest, TestRequest];
    assert.equal(outcome(plugin, a), 'pass');
    assert.equal(outcome(plugin, b), 'pass');
    assert.equal(outcome(plugin, c), 'held');
    assert.equal(outcome(plugin, d, 'too many concurrent calls'), 'refused');
    assert.deepEqual(delays, [500]);
    assert.equal(d.releases.length, 0, 'a refused call is not counted: nothing to release');
    for (const release of a.releases) release(0);
    const e = request();
    assert.equal(outcome(plugin, e), 'held', 'a place over conn again, within the burst');
    assert.equal(outcome(plugin, request()), 'refused');
    for (const done of [b, c, e]) for (const release of done.releases) release(0);
    assert.equal(outcome(plugin, request()), 'pass');
    assert.equal(outcome(plugin, request()), 'pass', 'every place was given back');
  });

  test('the wait grows with the calls ahead, as APISIX counts it: unit × ⌊(n − 1) / conn⌋', () => {
    const { hold, delays } = recorder();
    const plugin = compileLimitConn({ conn: 2, burst: 5, default_conn_delay: 0.1, only_use_default_delay: true, key: 'remote_addr' }, () => 0, hold);
    for (let i = 0; i < 7; i++) assert.notEqual(outcome(plugin, request()), 'refused');
    assert.equal(outcome(plugin, request()), 'refused');
    assert.deepEqual(delays, [100, 100, 200, 200, 300]);
  });

  test('counts per key, and a key with no call in flight is forgotten', () => {
    const plugin = compileLimitConn({ conn: 1, burst: 0, default_conn_delay: 1, key: 'http_x_user' }, () => 0, recorder().hold);
    const alice = request({ 'x-user': 'alice' });
    assert.equal(outcome(plugin, alice), 'pass');
    assert.equal(outcome(plugin, request({ 'x-user': 'alice' })), 'refused');
    assert.equal(outcome(plugin, request({ 'x-user': 'bob' })), 'pass', 'bob has his own count');
    for (const release of alice.releases) release(0);
    assert.equal(outcome(plugin, request({ 'x-user': 'alice' })), 'pass');
  });

  test('without only_use_default_delay the unit follows how long calls last, capped', () => {
    const { hold, delays } = recorder();
    let now = 0;
    const plugin = compileLimitConn({ conn: 1, burst: 1, default_conn_delay: 1, key: 'remote_addr' }, () => now, hold);
    const first = request();
    assert.equal(outcome(plugin, first), 'pass');
    now += 3000;
    for (const release of first.releases) release(0); // unit (1 s + 3 s) / 2 = 2 s
    const second = request();
    assert.equal(outcome(plugin, second), 'pass');
    assert.equal(outcome(plugin, request()), 'held');
    assert.deepEqual(delays, [2000]);
    now += 3_600_000; // an hour-long stream ends: the unit is capped
    for (const release of second.releases) release(0);
    assert.equal(outcome(plugin, request()), 'held');
    assert.deepEqual(delays, [2000, MAX_LEARNT_UNIT_MS]);
    const fixed = recorder();
    const steady = compileLimitConn({ conn: 1, burst: 1, default_conn_delay: 1, only_use_default_delay: true, key: 'remote_addr' }, () => now, fixed.hold);
    const long = request();
    assert.equal(outcome(steady, long), 'pass');
    now += 3000;
    for (const release of long.releases) release(0);
    assert.equal(outcome(steady, request()), 'pass');
    assert.equal(outcome(steady, request()), 'held');
    assert.deepEqual(fixed.delays, [1000], 'only_use_default_delay: always default_conn_delay');
  });

  test('an engine\'s request releases once however often it is told the call is over, and at once once it is', () => {
    const socket = new Socket(); // never connected: its calls all share the key ''
    const plugin = compileLimitConn({ conn: 1, burst: 0, default_conn_delay: 1, key: 'remote_addr' }, () => 0, recorder().hold);
    const make = (): HeaderListRequest => new HeaderListRequest('r1', '/a.B/C', 'gw', NO_CONSUMERS, [], socket);
    const first = make();
    assert.equal(plugin.access(first), undefined);
    assert.ok(first.releases !== undefined, 'the engine sees that a plugin waits for the end');
    first.finished();
    first.finished();
    const second = make();
    assert.equal(plugin.access(second), undefined, 'released');
    assert.equal(outcome(plugin, make()), 'refused', 'released once: the count is 1, not below');
    second.finished();
    const late = make();
    late.finished(); // its client went while an earlier plugin was answering
    assert.equal(plugin.access(late), undefined);
    assert.equal(late.releases, undefined, 'registered after the end: released at once');
    assert.equal(plugin.access(make()), undefined, 'nothing leaked');
  });
});

describe('the limiting plugins in the pipeline', () => {
  test('run in APISIX\'s order: limit-conn (1003), limit-count (1002), limit-req (1001)', () => {
    const chain = compilePlugins({
      'limit-req': { rate: 1, burst: 0, key: 'remote_addr' },
      'limit-count': { count: 1, time_window: 60 },
      'limit-conn': { conn: 1, burst: 0, default_conn_delay: 1, key: 'remote_addr' },
    });
    assert.deepEqual(chain?.plugins.map((p) => [p.name, p.priority]), [
      ['limit-conn', 1003],
      ['limit-count', 1002],
      ['limit-req', 1001],
    ]);
  });

  test('the schemas take APISIX\'s fields and refuse what APISIX refuses, and keys are checked', () => {
    const route = (plugins: unknown): { ok: boolean; error?: string } => validateResource('routes', { uri: '/a.B/C', upstream: { nodes: { '127.0.0.1:1': 1 } }, plugins });
    assert.equal(route({ 'limit-req': { rate: 0.5, burst: 0, key: 'remote_addr', nodelay: true, allow_degradation: true, policy: 'local', rejected_code: 429, rejected_msg: 'x' } }).ok, true);
    assert.equal(route({ 'limit-conn': { conn: 2, burst: 0, default_conn_delay: 0.1, only_use_default_delay: true, key_type: 'var_combination', key: '$remote_addr $http_x_user' } }).ok, true);
    assert.match(route({ 'limit-req': { rate: 0, burst: 0, key: 'remote_addr' } }).error ?? '', /"rate" validation failed: expected 0 to be greater than 0/);
    assert.match(route({ 'limit-req': { rate: 1, key: 'remote_addr' } }).error ?? '', /"burst" is required/);
    assert.match(route({ 'limit-req': { rate: 1, burst: 0, key: 'remote_addr', policy: 'redis' } }).error ?? '', /"policy" validation failed: must be one of \["local"\]/);
    assert.match(route({ 'limit-req': { rate: 1, burst: 0, key_type: 'constant', key: 'x' } }).error ?? '', /"key_type" validation failed/);
    assert.match(route({ 'limit-req': { rate: 1, burst: 0, key: 'no_such_var' } }).error ?? '', /^failed to check the configuration of plugin limit-req err: unknown variable "no_such_var"/);
    assert.match(route({ 'limit-conn': { conn: 0, burst: 0, default_conn_delay: 1, key: 'remote_addr' } }).error ?? '', /"conn" validation failed/);
    assert.match(route({ 'limit-conn': { conn: 1, burst: 0, key: 'remote_addr' } }).error ?? '', /"default_conn_delay" is required/);
    assert.match(route({ 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 1, key_type: 'var_combination', key: 'no variable' } }).error ?? '', /^failed to check the configuration of plugin limit-conn err: "key" of key_type var_combination names no \$variable/);
  });
});
