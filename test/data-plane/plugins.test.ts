/**
 * The plugins' decisions in process, where time and chance can be set: limit-count's fixed window and its bounded
 * key table, fault-injection's percentage, ip-restriction's matching of IPv4, IPv6 and IPv4-mapped addresses, the
 * limit key's variables, and the pipeline's order and gathering of response fields.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GrpcStatus } from '../../shared/grpc-status.ts';
import { IpMatcher, parseIpBlock } from '../../shared/ip-match.ts';
import { parseLimitKey } from '../../shared/limit-key.ts';
import { compileFaultInjection } from '../../data-plane/plugins/fault-injection.ts';
import { compileLimitCount, MAX_KEYS } from '../../data-plane/plugins/limit-count.ts';
import { compilePlugins } from '../../data-plane/plugins/pipeline.ts';
import type { PluginRequest } from '../../data-plane/plugins/request.ts';
import { NO_CONSUMERS } from '../../data-plane/plugins/consumers.ts';

function request(overrides: Partial<PluginRequest> & { headers?: Record<string, string> } = {}): PluginRequest {
  const headers = overrides.headers ?? {};
  return {
    routeId: overrides.routeId ?? 'r1',
    path: overrides.path ?? '/a.B/C',
    host: overrides.host ?? 'gw.example',
    remoteAddress: overrides.remoteAddress ?? '10.0.0.1',
    remotePort: overrides.remotePort ?? 40000,
    localAddress: overrides.localAddress ?? '10.0.0.254',
    localPort: overrides.localPort ?? 9081,
    consumers: NO_CONSUMERS,
    consumer: undefined,
    header: (name) => headers[name],
    setUpstreamHeader: () => undefined,
    removeUpstreamHeader: () => undefined,
    addUpstreamHeader: () => undefined,
  };
}

describe('limit-count', () => {
  test('a fixed window of time_window seconds from the first call, then a new one', () => {
    let now = 1_000_000;
    const plugin = compileLimitCount({ count: 2, time_window: 10 }, () => now);
    assert.equal(plugin.access(request())?.error, undefined);
    now += 9_000;
    assert.equal(plugin.access(request())?.error, undefined);
    const refused = plugin.access(request());
    assert.equal(refused?.error?.grpcStatus, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.deepEqual(refused.fields, ['x-ratelimit-limit', '2', 'x-ratelimit-remaining', '0', 'x-ratelimit-reset', '1']);
    now += 1_000; // the window that began at the first call ended
    const fresh = plugin.access(request());
    assert.equal(fresh?.error, undefined);
    assert.deepEqual(fresh?.fields, ['x-ratelimit-limit', '2', 'x-ratelimit-remaining', '1', 'x-ratelimit-reset', '10']);
  });

  test('keeps at most MAX_KEYS windows: expired ones go first, then the one that ends first', () => {
    let now = 0;
    const plugin = compileLimitCount({ count: 1, time_window: 60, key: 'http_x_user', show_limit_quota_header: false }, () => now);
    for (let i = 0; i < MAX_KEYS; i++) assert.equal(plugin.access(request({ headers: { 'x-user': `u${i}` } })), undefined);
    assert.equal(plugin.access(request({ headers: { 'x-user': 'u1' } }))?.error?.code, 'RATE_LIMITED', 'u1 is still counted');
    now += 1; // one more key: the oldest window (u0's) is evicted, u0 starts afresh
    assert.equal(plugin.access(request({ headers: { 'x-user': 'new' } })), undefined);
    assert.equal(plugin.access(request({ headers: { 'x-user': 'u0' } })), undefined, 'u0 was evicted');
    assert.equal(plugin.access(request({ headers: { 'x-user': 'u1' } })), undefined, 'u1 was evicted to make room for u0');
    assert.equal(plugin.access(request({ headers: { 'x-user': 'u3' } }))?.error?.code, 'RATE_LIMITED', 'u3 is still counted');
    now += 61_000; // every window ended: the next new key clears them all
    assert.equal(plugin.access(request({ headers: { 'x-user': 'late' } })), undefined);
    assert.equal(plugin.access(request({ headers: { 'x-user': 'u5' } })), undefined);
  });

  test('keys: a variable, a combination of variables and text, a constant, and the address when the value is empty', () => {
    const combo = compileLimitCount({ count: 1, time_window: 60, key_type: 'var_combination', key: '$route_id:$http_x_user', show_limit_quota_header: false });
    assert.equal(combo.access(request({ headers: { 'x-user': 'a' } })), undefined);
    assert.ok(combo.access(request({ headers: { 'x-user': 'a' } }))?.error);
    assert.equal(combo.access(request({ routeId: 'r2', headers: { 'x-user': 'a' } })), undefined, 'r2:a is another key');
    const constant = compileLimitCount({ count: 1, time_window: 60, key_type: 'constant', key: 'all', show_limit_quota_header: false });
    assert.equal(constant.access(request({ remoteAddress: '10.0.0.1' })), undefined);
    assert.ok(constant.access(request({ remoteAddress: '10.0.0.2' }))?.error, 'one quota for every client');
    const header = compileLimitCount({ count: 1, time_window: 60, key: 'http_x_user', show_limit_quota_header: false });
    assert.equal(header.access(request({ remoteAddress: '10.0.0.1' })), undefined);
    assert.equal(header.access(request({ remoteAddress: '10.0.0.2' })), undefined, 'no header: each address its own quota');
    assert.deepEqual(parseLimitKey('http_X_Trace_Id', false), [{ header: 'x-trace-id' }]);
    assert.equal(typeof parseLimitKey('text only', true), 'string', 'a combination needs a $variable');
  });
});

describe('fault-injection', () => {
  test('aborts percentage out of 100 calls', () => {
    let next = 0;
    const plugin = compileFaultInjection({ abort: { grpc_status: 14, percentage: 30 } }, () => next);
    next = 0.29;
    assert.equal(plugin.access(request())?.error?.grpcStatus, GrpcStatus.UNAVAILABLE);
    next = 0.3;
    assert.equal(plugin.access(request()), undefined);
    const always = compileFaultInjection({ abort: { http_status: 404, body: 'gone' } }, () => 0.999);
    const verdict = always.access(request());
    assert.equal(verdict?.error?.grpcStatus, GrpcStatus.UNIMPLEMENTED);
    assert.equal(verdict.error.publicMessage, 'gone');
  });
});

describe('ip-restriction matching', () => {
  test('IPv4 and IPv6 blocks, single addresses, and IPv4-mapped IPv6 peers', () => {
    const matcher = new IpMatcher(['10.0.0.0/8', '192.168.1.7', '2001:db8::/32']);
    assert.equal(matcher.has('10.200.3.4'), true);
    assert.equal(matcher.has('::ffff:10.1.1.1'), true);
    assert.equal(matcher.has('192.168.1.7'), true);
    assert.equal(matcher.has('192.168.1.8'), false);
    assert.equal(matcher.has('2001:db8:1::5'), true);
    assert.equal(matcher.has('2001:db9::1'), false);
    assert.equal(matcher.has(''), false);
    assert.equal(parseIpBlock('10.0.0.0/33'), undefined);
    assert.equal(parseIpBlock('::/129'), undefined);
    assert.equal(parseIpBlock('1.2.3.4/0x8'), undefined);
    assert.deepEqual(parseIpBlock('::1'), { address: '::1', prefix: 128, family: 'ipv6' });
  });
});

describe('the pipeline', () => {
  test('no chain for a route without policy plugins; refusals keep the fields gathered before them', () => {
    assert.equal(compilePlugins(undefined), undefined);
    assert.equal(compilePlugins({ 'grpc-limits': { max_request_message_bytes: 10 } }), undefined);
    const chain = compilePlugins({ 'limit-count': { count: 1, time_window: 60 }, 'ip-restriction': { whitelist: ['10.0.0.0/8'] } });
    assert.ok(chain);
    assert.deepEqual(chain.plugins.map((p) => p.name), ['ip-restriction', 'limit-count']);
    assert.deepEqual(chain.access(request())?.fields?.slice(0, 2), ['x-ratelimit-limit', '1']);
    assert.equal(chain.access(request({ remoteAddress: '192.0.2.1' }))?.error?.code, 'ACCESS_DENIED');
  });
});
