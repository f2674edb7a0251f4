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
import { compilePlugins, PluginChain, runAccess, type CompiledPlugin } from '../../data-plane/plugins/pipeline.ts';
import { RateLimited } from '../../shared/errors.ts';
import type { AccessVerdict } from '../../data-plane/plugins/request.ts';
import { accessNow, testRequest } from '../helpers/plugin-request.ts';

const request = testRequest;

describe('limit-count', () => {
  test('a fixed window of time_window seconds from the first call, then a new one', () => {
    let now = 1_000_000;
    const plugin = compileLimitCount({ count: 2, time_window: 10 }, undefined, () => now);
    assert.equal(accessNow(plugin, request())?.error, undefined);
    now += 9_000;
    assert.equal(accessNow(plugin, request())?.error, undefined);
    const refused = accessNow(plugin, request());
    assert.equal(refused?.error?.grpcStatus, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.deepEqual(refused.fields, ['x-ratelimit-limit', '2', 'x-ratelimit-remaining', '0', 'x-ratelimit-reset', '1']);
    now += 1_000; // the window that began at the first call ended
    const fresh = accessNow(plugin, request());
    assert.equal(fresh?.error, undefined);
    assert.deepEqual(fresh?.fields, ['x-ratelimit-limit', '2', 'x-ratelimit-remaining', '1', 'x-ratelimit-reset', '10']);
  });

  test('keeps at most MAX_KEYS windows: expired ones go first, then the one that ends first', () => {
    let now = 0;
    const plugin = compileLimitCount({ count: 1, time_window: 60, key: 'http_x_user', show_limit_quota_header: false }, undefined, () => now);
    for (let i = 0; i < MAX_KEYS; i++) assert.equal(accessNow(plugin, request({ headers: { 'x-user': `u${i}` } })), undefined);
    assert.equal(accessNow(plugin, request({ headers: { 'x-user': 'u1' } }))?.error?.code, 'RATE_LIMITED', 'u1 is still counted');
    now += 1; // one more key: the oldest window (u0's) is evicted, u0 starts afresh
    assert.equal(accessNow(plugin, request({ headers: { 'x-user': 'new' } })), undefined);
    assert.equal(accessNow(plugin, request({ headers: { 'x-user': 'u0' } })), undefined, 'u0 was evicted');
    assert.equal(accessNow(plugin, request({ headers: { 'x-user': 'u1' } })), undefined, 'u1 was evicted to make room for u0');
    assert.equal(accessNow(plugin, request({ headers: { 'x-user': 'u3' } }))?.error?.code, 'RATE_LIMITED', 'u3 is still counted');
    now += 61_000; // every window ended: the next new key clears them all
    assert.equal(accessNow(plugin, request({ headers: { 'x-user': 'late' } })), undefined);
    assert.equal(accessNow(plugin, request({ headers: { 'x-user': 'u5' } })), undefined);
  });

  test('keys: a variable, a combination of variables and text, a constant, and the address when the value is empty', () => {
    const combo = compileLimitCount({ count: 1, time_window: 60, key_type: 'var_combination', key: '$route_id:$http_x_user', show_limit_quota_header: false });
    assert.equal(accessNow(combo, request({ headers: { 'x-user': 'a' } })), undefined);
    assert.ok(accessNow(combo, request({ headers: { 'x-user': 'a' } }))?.error);
    assert.equal(accessNow(combo, request({ routeId: 'r2', headers: { 'x-user': 'a' } })), undefined, 'r2:a is another key');
    const constant = compileLimitCount({ count: 1, time_window: 60, key_type: 'constant', key: 'all', show_limit_quota_header: false });
    assert.equal(accessNow(constant, request({ remoteAddress: '10.0.0.1' })), undefined);
    assert.ok(accessNow(constant, request({ remoteAddress: '10.0.0.2' }))?.error, 'one quota for every client');
    const header = compileLimitCount({ count: 1, time_window: 60, key: 'http_x_user', show_limit_quota_header: false });
    assert.equal(accessNow(header, request({ remoteAddress: '10.0.0.1' })), undefined);
    assert.equal(accessNow(header, request({ remoteAddress: '10.0.0.2' })), undefined, 'no header: each address its own quota');
    assert.deepEqual(parseLimitKey('http_X_Trace_Id', false), [{ header: 'x-trace-id' }]);
    assert.equal(typeof parseLimitKey('text only', true), 'string', 'a combination needs a $variable');
  });
});

describe('fault-injection', () => {
  test('aborts percentage out of 100 calls', () => {
    let next = 0;
    const plugin = compileFaultInjection({ abort: { grpc_status: 14, percentage: 30 } }, () => next);
    next = 0.29;
    assert.equal(accessNow(plugin, request())?.error?.grpcStatus, GrpcStatus.UNAVAILABLE);
    next = 0.3;
    assert.equal(accessNow(plugin, request()), undefined);
    const always = compileFaultInjection({ abort: { http_status: 404, body: 'gone' } }, () => 0.999);
    const verdict = accessNow(always, request());
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
    assert.deepEqual(accessNow(chain, request())?.fields?.slice(0, 2), ['x-ratelimit-limit', '1']);
    assert.equal(accessNow(chain, request({ remoteAddress: '192.0.2.1' }))?.error?.code, 'ACCESS_DENIED');
  });

  test('a plugin that answers later: the phase goes on after it, in order, across chains, with the fields gathered', async () => {
    const seen: string[] = [];
    const plugin = (name: string, priority: number, answer: () => AccessVerdict | undefined, later = false): CompiledPlugin => ({
      name,
      priority,
      access: () => {
        seen.push(name);
        return later ? new Promise((resolve) => setTimeout(() => resolve(answer()), 5)) : answer();
      },
    });
    const global = new PluginChain([plugin('g-sync', 10, () => ({ fields: ['a', '1'] })), plugin('g-later', 5, () => ({ fields: ['b', '2'] }), true)]);
    const refuse = { error: new RateLimited('no') };
    const route = new PluginChain([plugin('r-later', 9, () => undefined, true), plugin('r-sync', 1, () => ({ fields: ['c', '3'] }))]);
    const passed = runAccess([global], route, request());
    assert.ok(passed instanceof Promise, 'the phase answers later once a plugin does');
    assert.deepEqual(await passed, { error: undefined, fields: ['a', '1', 'b', '2', 'c', '3'] });
    assert.deepEqual(seen, ['g-sync', 'g-later', 'r-later', 'r-sync']);

    seen.length = 0;
    const refusing = new PluginChain([plugin('r-later', 9, () => ({ error: refuse.error, fields: ['d', '4'] }), true), plugin('r-sync', 1, () => undefined)]);
    assert.deepEqual(await runAccess([global], refusing, request()), { error: refuse.error, fields: ['a', '1', 'b', '2', 'd', '4'] });
    assert.deepEqual(seen, ['g-sync', 'g-later', 'r-later'], 'nothing runs after a refusal');

    seen.length = 0;
    const synchronous = runAccess([], new PluginChain([plugin('only', 1, () => undefined)]), request());
    assert.equal(synchronous, undefined, 'no promise when every plugin answers at once');
  });
});
