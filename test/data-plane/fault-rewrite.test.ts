/**
 * Issue #16, in process where chance and time can be set: fault-injection's `vars` (APISIX's lua-resty-expr
 * expressions), its `delay` and `abort` together, proxy-rewrite's `regex_uri` and `$variables`, the guard on
 * regexes from configuration, and the admin-time refusals of what cannot work.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileFaultInjection } from '../../data-plane/plugins/fault-injection.ts';
import { compileProxyRewrite } from '../../data-plane/plugins/proxy-rewrite.ts';
import { BasePluginRequest } from '../../data-plane/plugins/request.ts';
import { NO_CONSUMERS } from '../../data-plane/plugins/consumers.ts';
import { GrpcStatus } from '../../shared/grpc-status.ts';
import { compileSafeRegex, safeTest } from '../../shared/safe-regex.ts';
import { applyRegexUri, parseRegexUri } from '../../shared/regex-uri.ts';
import { compileVars, matchVars, type CompiledVars } from '../../shared/vars-expr.ts';
import { validateResource } from '../../shared/validate.ts';
import type { ProxyRewriteConf } from '../../shared/schema/plugin-policies.ts';
import { accessNow } from '../helpers/plugin-request.ts';

/** A call as a plugin sees it, recording the changes to the upstream request. */
class TestRequest extends BasePluginRequest {
  readonly remoteAddress: string;
  readonly remotePort = 40000;
  readonly localAddress = '10.0.0.254';
  readonly localPort = 9081;
  readonly #headers: Record<string, string>;

  constructor(options: { path?: string; headers?: Record<string, string>; remoteAddress?: string; consumer?: string } = {}) {
    super('r1', options.path ?? '/a.B/C', 'gw.example', NO_CONSUMERS);
    this.#headers = options.headers ?? {};
    this.remoteAddress = options.remoteAddress ?? '10.0.0.1';
    if (options.consumer !== undefined) this.consumer = { username: options.consumer };
  }

  header(name: string): string | undefined {
    return this.#headers[name];
  }

  /** The (name, value) pairs set or added for the upstream, in order. */
  get upstreamFields(): string[] {
    return this.added ?? [];
  }

  /** The value set or added for `name` (the first), undefined when none. */
  sent(name: string): string | undefined {
    const added = this.upstreamFields;
    for (let i = 0; i < added.length; i += 2) if (added[i] === name) return added[i + 1];
    return undefined;
  }
}

function vars(rules: unknown[][]): CompiledVars {
  const compiled = compileVars(rules, 'vars');
  assert.ok(typeof compiled !== 'string', typeof compiled === 'string' ? compiled : '');
  return compiled;
}

function matches(rules: unknown[][], request: TestRequest): boolean {
  return matchVars(vars(rules), (ref) => ('header' in ref ? request.header(ref.header) : ref.variable === 'remote_addr' ? request.remoteAddress : request.path));
}

describe('vars expressions', () => {
  const call = new TestRequest({ headers: { 'x-user': 'alice', 'x-n': '42', 'x-tags': 'a, beta ,c', 'user-agent': 'grpc-go/1.60' } });

  test('== and ~= compare text, a number as a number, and null as absence', () => {
    assert.equal(matches([[['http_x_user', '==', 'alice']]], call), true);
    assert.equal(matches([[['http_x_user', '==', 'bob']]], call), false);
    assert.equal(matches([[['http_x_user', '~=', 'bob']]], call), true);
    assert.equal(matches([[['http_x_n', '==', 42]]], call), true, '"42" == 42');
    assert.equal(matches([[['http_x_user', '==', 42]]], call), false, 'not a number');
    assert.equal(matches([[['http_x_user', '~=', 42]]], call), true);
    assert.equal(matches([[['http_x_absent', '==', null]]], call), true, 'absent');
    assert.equal(matches([[['http_x_user', '==', null]]], call), false);
    assert.equal(matches([[['http_x_user', '~=', null]]], call), true, 'present');
    assert.equal(matches([[['http_x_user', 'alice']]], call), true, '[variable, value] is ==');
    assert.equal(matches([[['http_x_absent', '==', '']]], call), false, 'an absent header is not empty text');
  });

  test('>, >=, <, <= compare numbers and are false for text or absence', () => {
    assert.equal(matches([[['http_x_n', '>', 41]]], call), true);
    assert.equal(matches([[['http_x_n', '>=', '42']]], call), true, 'a numeric string bound');
    assert.equal(matches([[['http_x_n', '<', 42]]], call), false);
    assert.equal(matches([[['http_x_n', '<=', 42.5]]], call), true);
    assert.equal(matches([[['http_x_user', '>', 0]]], call), false, 'text is no number');
    assert.equal(matches([[['http_x_absent', '<', 100]]], call), false);
  });

  test('~~ and ~* match regexes, in and has test membership, ipmatch tests addresses', () => {
    assert.equal(matches([[['http_user_agent', '~~', '^grpc-go/']]], call), true);
    assert.equal(matches([[['http_user_agent', '~~', '^GRPC-GO/']]], call), false);
    assert.equal(matches([[['http_user_agent', '~*', '^GRPC-GO/']]], call), true);
    assert.equal(matches([[['http_x_absent', '~~', '.*']]], call), false, 'an absent header matches no regex');
    assert.equal(matches([[['http_x_user', 'in', ['bob', 'alice']]]], call), true);
    assert.equal(matches([[['http_x_n', 'IN', [1, 42]]]], call), true, 'operators in any case; numbers as text');
    assert.equal(matches([[['http_x_user', 'in', ['bob']]]], call), false);
    assert.equal(matches([[['http_x_tags', 'has', 'beta']]], call), true, 'a comma-separated list, trimmed');
    assert.equal(matches([[['http_x_tags', 'has', 'b']]], call), false);
    assert.equal(matches([[['remote_addr', 'ipmatch', ['192.168.0.0/16', '10.0.0.0/8']]]], call), true);
    assert.equal(matches([[['remote_addr', 'ipmatch', '192.168.0.0/16']]], call), false);
  });

  test('"!" negates; a rule ANDs its expressions; vars OR their rules; an empty rule matches, empty vars do not', () => {
    assert.equal(matches([[['http_x_user', '!', '==', 'alice']]], call), false);
    assert.equal(matches([[['http_x_user', '!', 'in', ['bob']]]], call), true);
    assert.equal(matches([[['http_x_user', '==', 'alice'], ['http_x_n', '>', 100]]], call), false, 'AND');
    assert.equal(matches([[['http_x_user', '==', 'alice'], ['http_x_n', '>', 1]]], call), true);
    assert.equal(matches([[['http_x_user', '==', 'bob']], [['http_x_n', '==', 42]]], call), true, 'OR');
    assert.equal(matches([[]], call), true);
    assert.equal(matches([], call), false);
  });

  test('refuses, naming the expression: unknown variable, bad operator, bad value, invalid regex, nested logic', () => {
    const refused = (rules: unknown[][], message: RegExp): void => {
      const compiled = compileVars(rules, 'abort.vars');
      assert.equal(typeof compiled, 'string', JSON.stringify(rules));
      assert.match(compiled as string, message);
    };
    refused([[['arg_name', '==', 'x']]], /^abort\.vars\[0\]\[0\]: unknown variable "arg_name"/);
    refused([[['http_x', '==', 'a'], ['http_x', '=~', 'a']]], /^abort\.vars\[0\]\[1\]: invalid operator "=~"/);
    refused([[['http_x', '~~', '([a-z']]], /invalid regex "\(\[a-z"/);
    refused([[['http_x', '~~', '\\A']]], /invalid regex/);
    refused([[['http_x', '>', 'many']]], />: the value must be a number/);
    refused([[['http_x', 'in', 'a']]], /in: the value must be an array/);
    refused([[['http_x', '==', true]]], /the value must be a string, a number or null/);
    refused([[['http_x', 'not', '==', 'a']]], /bad 'not' expression/);
    refused([[['remote_addr', 'ipmatch', ['10.0.0.0/33']]]], /is not an IP address or CIDR block/);
    refused([['OR', ['http_x', '==', 'a'], ['http_x', '==', 'b']]], /logical operators .* are not supported/);
    refused([['http_x', '==', 'a']], /rule should be wrapped inside brackets/);
    refused([[['http_x', '==', 'a'], 'http_x == a']], /^abort\.vars\[0\]\[1\]: an expression is an array/);
  });
});

describe('regexes from configuration', () => {
  test('patterns that backtrack exponentially are refused: repeated groups with quantifiers or alternations, backreferences', () => {
    for (const pattern of ['(a+)+$', '(a*)*b', '(?:a|aa)+$', '^(\\w+\\s?)*$', '(a)\\1', '(?<x>a)\\k<x>', '((ab)*c)+']) {
      const compiled = compileSafeRegex(pattern);
      assert.equal(typeof compiled, 'string', pattern);
    }
    for (const pattern of ['^/legacy\\.Greeter/(.*)$', '(ab)+', '(?:a|b)?c', '[a-z]+\\.[a-z]+', '^(\\d{1,3})\\.(\\d{1,3})$', '\\p{L}+']) {
      const compiled = compileSafeRegex(pattern);
      assert.ok(typeof compiled !== 'string', `${pattern}: ${typeof compiled === 'string' ? compiled : ''}`);
    }
  });

  test('the polynomial cost is bounded: at most 3 variable quantifiers with ^, 2 without, and a cap on the text', () => {
    assert.ok(typeof compileSafeRegex('^/(.*)/(.*)/(.*)$') !== 'string');
    assert.match(compileSafeRegex('\\d+\\d+\\d+x') as string, /may backtrack too long: 3 variable quantifiers/);
    assert.match(compileSafeRegex('^(.*)(.*)(.*)(.*)$') as string, /may backtrack too long/);
    const cubic = compileSafeRegex('\\d+\\d+x');
    assert.ok(typeof cubic !== 'string');
    assert.equal(cubic.maxSubject, 256);
    assert.equal(safeTest(cubic, `${'1'.repeat(200)}x`), true);
    assert.equal(safeTest(cubic, `${'1'.repeat(300)}x`), false, 'a text longer than the cap does not match');
    const linear = compileSafeRegex('^/a/(.*)$');
    assert.ok(typeof linear !== 'string');
    assert.equal(linear.maxSubject, 4096);
  });
});

describe('fault-injection', () => {
  /** A wait that records what it was asked and resolves at once. */
  function recordingWait(): { waits: number[]; wait: (ms: number) => Promise<void> } {
    const waits: number[] = [];
    return { waits, wait: (ms) => (waits.push(ms), Promise.resolve()) };
  }

  test('delay holds the call for duration seconds (fractions allowed), then lets it go on', async () => {
    const { waits, wait } = recordingWait();
    const plugin = compileFaultInjection({ delay: { duration: 1.5 } }, () => 0.5, wait);
    const verdict = plugin.access(new TestRequest());
    assert.ok(verdict instanceof Promise, 'the call is held');
    assert.equal(await verdict, undefined, 'then it goes on');
    assert.deepEqual(waits, [1500]);
  });

  test('delay and abort together: delayed first, then aborted; chance is drawn for the delay, then the abort', async () => {
    const { waits, wait } = recordingWait();
    const draws = [0.1, 0.9]; // delay: 10 < 50, delayed; abort: 90 >= 50, not aborted
    const plugin = compileFaultInjection({ delay: { duration: 0.2, percentage: 50 }, abort: { grpc_status: 14, body: 'chaos', percentage: 50 } }, () => draws.shift() ?? 0, wait);
    assert.equal(await plugin.access(new TestRequest()), undefined, 'delayed, not aborted');
    assert.deepEqual(waits, [200]);

    draws.push(0.9, 0.1); // not delayed; aborted at once
    const aborted = accessNow(plugin, new TestRequest());
    assert.equal(aborted?.error?.grpcStatus, GrpcStatus.UNAVAILABLE);
    assert.equal(aborted.error.publicMessage, 'chaos');
    assert.equal(waits.length, 1);

    draws.push(0.1, 0.1); // both: the abort comes after the delay
    const both = plugin.access(new TestRequest());
    assert.ok(both instanceof Promise);
    assert.equal((await both)?.error?.publicMessage, 'chaos');
    assert.deepEqual(waits, [200, 200]);
  });

  test('abort applies only to calls its vars match; the delay keeps its own vars', async () => {
    const { waits, wait } = recordingWait();
    const plugin = compileFaultInjection(
      {
        abort: { grpc_status: 9, vars: [[['http_x_chaos', '==', 'abort']]] },
        delay: { duration: 1, vars: [[['http_x_chaos', '==', 'delay']], [['http_x_slow', '~=', null]]] },
      },
      () => 0,
      wait,
    );
    assert.equal(accessNow(plugin, new TestRequest()), undefined, 'no header: neither');
    assert.equal(accessNow(plugin, new TestRequest({ headers: { 'x-chaos': 'abort' } }))?.error?.grpcStatus, GrpcStatus.FAILED_PRECONDITION);
    assert.equal(await plugin.access(new TestRequest({ headers: { 'x-chaos': 'delay' } })), undefined);
    assert.equal(await plugin.access(new TestRequest({ headers: { 'x-slow': '' } })), undefined, "the delay's second rule");
    assert.deepEqual(waits, [1000, 1000]);
  });

  test('the real timer holds the call and settles with the verdict', async () => {
    const plugin = compileFaultInjection({ delay: { duration: 0.01 }, abort: { http_status: 503 } });
    const verdict = plugin.access(new TestRequest());
    assert.ok(verdict instanceof Promise);
    assert.equal((await verdict)?.error?.code, 'FAULT_INJECTED');
  });
});

describe('proxy-rewrite', () => {
  const rewrite = (conf: ProxyRewriteConf, request: TestRequest): TestRequest => {
    const verdict = accessNow(compileProxyRewrite(conf), request);
    assert.equal(verdict, undefined, JSON.stringify(verdict?.error?.message));
    return request;
  };

  test('regex_uri renames a service and method with the first pair that matches, with $n captures', () => {
    const conf = { regex_uri: ['^/v1\\.(\\w+)/Get$', '/v2.$1/Fetch', '^/legacy\\.Greeter/(\\w+)$', '/helloworld.Greeter/Say${1}'] };
    assert.equal(rewrite(conf, new TestRequest({ path: '/legacy.Greeter/Hello' })).sent(':path'), '/helloworld.Greeter/SayHello');
    assert.equal(rewrite(conf, new TestRequest({ path: '/v1.Users/Get' })).sent(':path'), '/v2.Users/Fetch');
    assert.equal(rewrite(conf, new TestRequest({ path: '/other.S/M' })).sent(':path'), undefined, 'no match: the path as sent');
    const rules = parseRegexUri(['o', '0$$']);
    assert.ok(typeof rules !== 'string');
    const result = applyRegexUri(rules, '/foo');
    assert.ok(result !== undefined && result !== 'too long');
    assert.equal(result.path, '/f0$o', 'the first match only; $$ is a $');
  });

  test('uri wins over regex_uri, and $variables in it are substituted per call', () => {
    const both = rewrite({ uri: '/fixed.S/M', regex_uri: ['^/(.*)$', '/x/$1'] }, new TestRequest({ path: '/a.B/C' }));
    assert.equal(both.sent(':path'), '/fixed.S/M');
    const templated = rewrite({ uri: '/$http_x_service/${http_x_method ?? Default}' }, new TestRequest({ headers: { 'x-service': 'pkg.Svc' } }));
    assert.equal(templated.sent(':path'), '/pkg.Svc/Default', 'an absent variable takes its default');
    const escaped = rewrite({ uri: '/s.S/$http_x_m' }, new TestRequest({ headers: { 'x-m': 'a?b' } }));
    assert.equal(escaped.sent(':path'), '/s.S/a%3Fb', 'a ? in a value starts no query');
  });

  test('header values take $remote_addr, $consumer_name, $http_<name> and regex_uri captures', () => {
    const conf: ProxyRewriteConf = {
      regex_uri: ['^/(\\w+)\\.Greeter/(\\w+)$', '/helloworld.Greeter/$2'],
      headers: { set: { 'X-Who': '$consumer_name@$remote_addr as $http_x_user' }, add: { 'x-from': 'pkg $1, $9!' } },
    };
    const request = rewrite(conf, new TestRequest({ path: '/legacy.Greeter/SayHello', consumer: 'jack', headers: { 'x-user': 'alice' } }));
    assert.equal(request.sent(':path'), '/helloworld.Greeter/SayHello');
    assert.equal(request.sent('x-who'), 'jack@10.0.0.1 as alice');
    assert.equal(request.sent('x-from'), 'pkg legacy, !', 'a group the match did not make is empty');
    const anonymous = rewrite({ headers: { 'x-who': '[$consumer_name] \\$literal $ 5' } }, new TestRequest());
    assert.equal(anonymous.sent('x-who'), '[] \\$literal $ 5', 'no consumer: empty; an escaped or lone $ stays');
  });

  test('a rewritten path that is no gRPC path, or a path too long for the regex, is refused with INTERNAL', () => {
    const refusal = (conf: ProxyRewriteConf, request: TestRequest): string | undefined => {
      const verdict = accessNow(compileProxyRewrite(conf), request);
      assert.equal(verdict?.error?.grpcStatus, GrpcStatus.INTERNAL);
      assert.equal(verdict.error.publicMessage, 'the gateway could not rewrite the request path');
      assert.equal(request.sent(':path'), undefined, 'nothing was sent upstream');
      return verdict.error.code;
    };
    assert.equal(refusal({ regex_uri: ['^/(.*)$', '$1'] }, new TestRequest({ path: '/a.B/C' })), 'REWRITE_FAILED');
    refusal({ uri: '/s.S/$http_x_m' }, new TestRequest({ headers: { 'x-m': 'a b' } }));
    refusal({ regex_uri: ['(\\w+)\\.(\\w+)', '/x'] }, new TestRequest({ path: `/${'a'.repeat(300)}` }));
  });
});

describe('admin-time checks', () => {
  const route = (plugins: unknown): { ok: boolean; error?: string } => {
    const result = validateResource('routes', { uri: '/a.B/C', upstream: { nodes: { '127.0.0.1:1': 1 } }, plugins });
    return result.ok ? { ok: true } : { ok: false, error: result.error };
  };
  const refused = (plugins: unknown, message: RegExp): void => {
    const result = route(plugins);
    assert.equal(result.ok, false, JSON.stringify(plugins));
    assert.match(result.error ?? '', message);
  };

  test('fault-injection: delay and vars are accepted; what cannot work is refused in APISIX words', () => {
    assert.equal(route({ 'fault-injection': { delay: { duration: 0.5, percentage: 10 } } }).ok, true);
    assert.equal(route({ 'fault-injection': { abort: { grpc_status: 14, vars: [[['http_x_chaos', '==', '1']]] }, delay: { duration: 60 } } }).ok, true);
    refused({ 'fault-injection': {} }, /plugin fault-injection err: at least one of "abort" or "delay" is required/);
    refused({ 'fault-injection': { delay: { duration: 61 } } }, /duration/);
    refused({ 'fault-injection': { delay: { duration: 0 } } }, /duration/);
    refused({ 'fault-injection': { abort: { grpc_status: 14, vars: [[['no_such_var', '==', '1']]] } } }, /^failed to check the configuration of plugin fault-injection err: abort\.vars\[0\]\[0\]: unknown variable "no_such_var"$/);
    refused({ 'fault-injection': { delay: { duration: 1, vars: [[['http_x', '=~', '1']]] } } }, /plugin fault-injection err: delay\.vars\[0\]\[0\]: invalid operator "=~"/);
    refused({ 'fault-injection': { delay: { duration: 1, vars: [[['http_x', '~~', '(a+)+$']]] } } }, /plugin fault-injection err: .*exponential/);
  });

  test('proxy-rewrite: regex_uri and $variables are accepted; unknown variables and bad regexes are refused', () => {
    assert.equal(route({ 'proxy-rewrite': { regex_uri: ['^/legacy\\.Greeter/(.*)$', '/helloworld.Greeter/$1'], headers: { set: { 'x-a': '$1 $remote_addr' } } } }).ok, true);
    assert.equal(route({ 'proxy-rewrite': { uri: '/$http_x_svc/M' } }).ok, true);
    refused({ 'proxy-rewrite': { uri: '/$bogus/M' } }, /^failed to check the configuration of plugin proxy-rewrite err: unknown variable "\$bogus" in "uri"$/);
    refused({ 'proxy-rewrite': { uri: '/$1/M' } }, /unknown variable "\$1" in "uri"/);
    refused({ 'proxy-rewrite': { uri: '/$remote_addr.x/M' } }, /unknown variable "\$remote_addr\.x" in "uri" \(write \$\{name\}/);
    refused({ 'proxy-rewrite': { headers: { add: { 'x-a': '${nope}' } } } }, /unknown variable "\$\{nope\}" in header "x-a"/);
    refused({ 'proxy-rewrite': { uri: '/a b' } }, /"uri" must be a path of visible ASCII/);
    refused({ 'proxy-rewrite': { uri: '/${http_x ?? a b}' } }, /"uri" must be a path of visible ASCII/);
    refused({ 'proxy-rewrite': { regex_uri: ['^/(.*)$', '/$1', '^/x'] } }, /The length of regex_uri should be an even number/);
    refused({ 'proxy-rewrite': { regex_uri: ['^/(.*$', '/$1'] } }, /invalid regex_uri\(\^\/\(\.\*\$, \/\$1\): invalid regex/);
    refused({ 'proxy-rewrite': { regex_uri: ['^/(.*)$', '/$2'] } }, /names group \$2, the regex has 1/);
    refused({ 'proxy-rewrite': { regex_uri: ['^/(.*)$', '/$name'] } }, /"\$" at 1 must be followed by a group number/);
    refused({ 'proxy-rewrite': { regex_uri: ['^/(a|b)*$', '/x'] } }, /exponential/);
  });
});
