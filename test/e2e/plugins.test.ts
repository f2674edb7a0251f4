/**
 * Issue #16: the plugin pipeline, the traffic-policy plugins (`ip-restriction`, `fault-injection`'s abort,
 * `limit-count` with `policy: local`) and consumers with `key-auth` and `consumer-restriction`, through the admin
 * API, etcd and the data plane, with real grpc-js clients and a raw HTTP/2 client. Each refusal is asserted by its exact status,
 * message and trailers-only shape (response headers with END_STREAM, no body), and calls on a route without
 * plugins are asserted to go on succeeding beside them.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { constants, type ClientHttp2Session } from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { Metadata, status as GrpcCode, type Client } from '@grpc/grpc-js';
import { greeterClient, greeterMethod, messageOf, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { type GatewayFixture, gatewaySession, putRouteAndWait, startGateway } from './gateway-fixture.ts';

const SAY_HELLO = '/helloworld.Greeter/SayHello';
const EMPTY_REQUEST = Buffer.from([0, 0, 0, 0, 0]);

interface RawAnswer {
  headers: Record<string, unknown>;
  /** The response headers carried END_STREAM: a trailers-only answer. */
  trailersOnly: boolean;
  bodyBytes: number;
}

/** One unary call with a raw HTTP/2 client: what came back, as sent. */
function rawCall(session: ClientHttp2Session, path: string, extra: Record<string, string> = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...extra });
    let headers: Record<string, unknown> = {};
    let trailersOnly = false;
    let bodyBytes = 0;
    stream.on('response', (h, flags) => {
      headers = h;
      trailersOnly = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    stream.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
    stream.on('error', reject);
    stream.on('close', () => resolve({ headers, trailersOnly, bodyBytes }));
    stream.end(EMPTY_REQUEST);
  });
}

describe('route plugins', () => {
  let gw: GatewayFixture;
  let node: GreeterNode;
  let client: Client;
  let raw: ClientHttp2Session;
  let routes = 0;

  before(async () => {
    gw = await startGateway();
    node = await startGreeterNode({ id: 'node' });
    client = greeterClient(gw.h2cAddress);
    raw = await gatewaySession(gw, 'h2c');
    // A route without plugins, called beside every refusal below.
    await putRoute('plain', { uri: '/helloworld.Greeter/SayHelloServerStream' });
  });

  after(async () => {
    raw.close();
    client.close();
    await gw.close();
    await node.close();
  });

  const upstream = (): unknown => ({ scheme: 'grpc', type: 'roundrobin', nodes: { [`127.0.0.1:${node.port}`]: 1 } });

  /** PUTs a route (with the test node as upstream unless given) and waits until the data plane has rebuilt it. */
  async function putRoute(id: string, body: Record<string, unknown>): Promise<void> {
    routes++;
    await putRouteAndWait(gw, id, { upstream: upstream(), ...body });
  }

  async function assertPlainRouteServes(): Promise<void> {
    const res = await rawCall(raw, '/helloworld.Greeter/SayHelloServerStream');
    assert.equal(res.headers['grpc-status'], undefined, 'a streaming answer: status in the trailers');
    assert.equal(res.headers[':status'], 200);
    assert.ok(res.bodyBytes > 0, 'the route without plugins is served');
  }

  describe('admin validation', () => {
    const refused = async (plugins: unknown, message: RegExp): Promise<void> => {
      const res = await gw.admin('PUT', '/routes/bad', { uri: SAY_HELLO, upstream: upstream(), plugins });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.match((res.body as { error_msg: string }).error_msg, message);
      assert.equal((await gw.admin('GET', '/routes/bad')).status, 404, 'nothing was written');
    };

    test('refuses ip-restriction with both lists, with neither, and with an entry that is no IP or CIDR block', async () => {
      await refused({ 'ip-restriction': { whitelist: ['127.0.0.1'], blacklist: ['10.0.0.0/8'] } }, /plugin ip-restriction err: exactly one of "whitelist" or "blacklist"/);
      await refused({ 'ip-restriction': { message: 'no' } }, /plugin ip-restriction err: exactly one of/);
      await refused({ 'ip-restriction': { whitelist: ['10.0.0.0/33'] } }, /"10.0.0.0\/33" is not an IP address or CIDR block/);
      await refused({ 'ip-restriction': { blacklist: ['example.com'] } }, /"example.com" is not an IP address or CIDR block/);
    });

    test('refuses a fault-injection abort with no status, one with neither abort nor delay, and vars naming an unknown variable', async () => {
      await refused({ 'fault-injection': { abort: { body: 'x' } } }, /plugin fault-injection err: abort needs "http_status" or "grpc_status"/);
      await refused({ 'fault-injection': {} }, /plugin fault-injection err: at least one of "abort" or "delay" is required/);
      await refused({ 'fault-injection': { delay: { duration: 1, vars: [[['arg_x', '==', '1']]] } } }, /plugin fault-injection err: delay\.vars\[0\]\[0\]: unknown variable "arg_x"/);
    });

    test('refuses a limit-count key naming an unknown variable, and a Redis policy without its server', async () => {
      await refused({ 'limit-count': { count: 1, time_window: 1, key: 'no_such_var' } }, /plugin limit-count err: unknown variable "no_such_var"/);
      await refused({ 'limit-count': { count: 1, time_window: 1, key_type: 'var_combination', key: '$remote_addr $bogus' } }, /unknown variable "\$bogus"/);
      await refused({ 'limit-count': { count: 1, time_window: 1, policy: 'redis' } }, /"redis_host" is required when "policy" is "redis"/);
      await refused({ 'limit-count': { count: 0, time_window: 1 } }, /count/);
    });
  });

  describe('ip-restriction', () => {
    test('a client outside the whitelist gets PERMISSION_DENIED with the message, trailers-only, and reaches no node', async () => {
      await putRoute('ip', { uri: SAY_HELLO, plugins: { 'ip-restriction': { whitelist: ['10.1.0.0/16'], message: 'not from here' } } });
      const callsBefore = node.totalCalls;
      const result = await sayHello(client, 'x');
      assert.equal(result.status.code, GrpcCode.PERMISSION_DENIED);
      assert.equal(result.status.details, 'not from here');
      assert.equal(result.headers, undefined, 'trailers-only');
      const res = await rawCall(raw, SAY_HELLO);
      assert.equal(res.trailersOnly, true);
      assert.equal(res.headers[':status'], 200);
      assert.equal(res.headers['content-type'], 'application/grpc');
      assert.equal(res.headers['grpc-status'], '7');
      assert.equal(res.headers['grpc-message'], 'not from here');
      assert.equal(res.bodyBytes, 0);
      assert.equal(node.totalCalls, callsBefore, 'no call reached the node');
      await assertPlainRouteServes();
    });

    test('a whitelisted client passes; a blacklisted one is refused with APISIX\'s default message', async () => {
      await putRoute('ip', { uri: SAY_HELLO, plugins: { 'ip-restriction': { whitelist: ['127.0.0.0/8', '::1'] } } });
      const ok = await sayHello(client, 'x');
      assert.equal(ok.status.code, GrpcCode.OK, ok.status.details);
      assert.equal(ok.message, 'Hello x');
      await putRoute('ip', { uri: SAY_HELLO, plugins: { 'ip-restriction': { blacklist: ['127.0.0.1'] } } });
      const denied = await sayHello(client, 'x');
      assert.equal(denied.status.code, GrpcCode.PERMISSION_DENIED);
      assert.equal(denied.status.details, 'Your IP address is not allowed');
      await gw.admin('DELETE', '/routes/ip');
    });
  });

  describe('fault-injection', () => {
    test('abort answers with grpc_status and body, trailers-only, without reaching the node', async () => {
      await putRoute('fault', { uri: SAY_HELLO, plugins: { 'fault-injection': { abort: { grpc_status: 14, body: 'chaos: node down' } } } });
      const callsBefore = node.totalCalls;
      const result = await sayHello(client, 'x');
      assert.equal(result.status.code, GrpcCode.UNAVAILABLE);
      assert.equal(result.status.details, 'chaos: node down');
      const res = await rawCall(raw, SAY_HELLO);
      assert.equal(res.trailersOnly, true);
      assert.equal(res.headers['grpc-status'], '14');
      assert.equal(node.totalCalls, callsBefore);
      await assertPlainRouteServes();
    });

    test('http_status maps to its gRPC status (403 → PERMISSION_DENIED); percentage 0 lets every call through', async () => {
      await putRoute('fault', { uri: SAY_HELLO, plugins: { 'fault-injection': { abort: { http_status: 403 } } } });
      const denied = await sayHello(client, 'x');
      assert.equal(denied.status.code, GrpcCode.PERMISSION_DENIED);
      assert.equal(denied.status.details, 'fault injected');
      await putRoute('fault', { uri: SAY_HELLO, plugins: { 'fault-injection': { abort: { http_status: 503, percentage: 0 } } } });
      for (let i = 0; i < 5; i++) assert.equal((await sayHello(client, 'x')).status.code, GrpcCode.OK);
      await gw.admin('DELETE', '/routes/fault');
    });
  });

  describe('limit-count', () => {
    test('admits count calls per window with the quota in the response headers, then RESOURCE_EXHAUSTED trailers-only', async () => {
      await putRoute('limit', { uri: SAY_HELLO, plugins: { 'limit-count': { count: 3, time_window: 60, rejected_msg: 'quota used up' } } });
      for (const remaining of ['2', '1', '0']) {
        const res = await rawCall(raw, SAY_HELLO);
        assert.equal(res.trailersOnly, false, 'a served call');
        assert.equal(res.headers['x-ratelimit-limit'], '3');
        assert.equal(res.headers['x-ratelimit-remaining'], remaining);
        const reset = Number(res.headers['x-ratelimit-reset']);
        assert.ok(reset > 0 && reset <= 60, `x-ratelimit-reset ${String(reset)}`);
      }
      const refused = await rawCall(raw, SAY_HELLO);
      assert.equal(refused.trailersOnly, true);
      assert.equal(refused.headers['grpc-status'], '8');
      assert.equal(refused.headers['grpc-message'], 'quota used up');
      assert.equal(refused.headers['x-ratelimit-remaining'], '0');
      const viaGrpcJs = await sayHello(client, 'x');
      assert.equal(viaGrpcJs.status.code, GrpcCode.RESOURCE_EXHAUSTED);
      assert.equal(viaGrpcJs.status.details, 'quota used up');
      await assertPlainRouteServes();
    });

    test('plugin metadata renames the quota headers; a plugin without metadata is refused; deleting it restores the names', async () => {
      const meta = await gw.admin('PUT', '/plugin_metadata/limit-count', { limit_header: 'X-Quota-Limit', remaining_header: 'X-Quota-Remaining', reset_header: 'X-Quota-Reset' });
      assert.equal(meta.status, 201, JSON.stringify(meta.body));
      assert.equal((meta.body as { key: string }).key, '/apisix/plugin_metadata/limit-count');
      const refused = await gw.admin('PUT', '/plugin_metadata/key-auth', { limit_header: 'x' });
      assert.equal(refused.status, 400);
      assert.match((refused.body as { error_msg: string }).error_msg, /key-auth takes no metadata/);
      assert.equal((await gw.admin('PUT', '/plugin_metadata/limit-count', { limit_header: 'bad header' })).status, 400, 'not a header name');
      const before = gw.dataPlane.snapshots.current().targets.get('limit');
      await putRoute('limit', { uri: SAY_HELLO, plugins: { 'limit-count': { count: 5, time_window: 60 } } });
      assert.notEqual(gw.dataPlane.snapshots.current().targets.get('limit'), before);
      const renamed = await rawCall(raw, SAY_HELLO);
      assert.equal(renamed.headers['x-quota-limit'], '5');
      assert.equal(renamed.headers['x-quota-remaining'], '4');
      assert.ok(Number(renamed.headers['x-quota-reset']) > 0);
      assert.equal(renamed.headers['x-ratelimit-limit'], undefined);
      // The metadata is gone: the route, which read it, is rebuilt with APISIX's names.
      const withMeta = gw.dataPlane.snapshots.current().targets.get('limit');
      assert.equal((await gw.admin('DELETE', '/plugin_metadata/limit-count')).status, 200);
      await gw.waitForSnapshot((snapshot) => snapshot.targets.get('limit') !== withMeta, 'route rebuilt without the metadata');
      const restored = await rawCall(raw, SAY_HELLO);
      assert.equal(restored.headers['x-ratelimit-limit'], '5');
      assert.equal(restored.headers['x-quota-limit'], undefined);
    });

    test('counts per header value (key http_x_user), falling back to the client address when the header is absent', async () => {
      await putRoute('limit', { uri: SAY_HELLO, plugins: { 'limit-count': { count: 1, time_window: 60, key: 'http_x_user', show_limit_quota_header: false } } });
      const as = (user: string | undefined): Promise<number> => {
        const metadata = new Metadata();
        if (user !== undefined) metadata.set('x-user', user);
        return sayHello(client, 'x', metadata).then((r) => r.status.code);
      };
      assert.equal(await as('alice'), GrpcCode.OK);
      assert.equal(await as('alice'), GrpcCode.RESOURCE_EXHAUSTED);
      assert.equal(await as('bob'), GrpcCode.OK, 'another key, its own quota');
      assert.equal(await as(undefined), GrpcCode.OK, 'no header: counted by address');
      assert.equal(await as(undefined), GrpcCode.RESOURCE_EXHAUSTED);
      const res = await rawCall(raw, SAY_HELLO, { 'x-user': 'carol' });
      assert.equal(res.headers['x-ratelimit-limit'], undefined, 'show_limit_quota_header: false');
      await gw.admin('DELETE', '/routes/limit');
    });
  });

  describe('consumers, key-auth and consumer-restriction', () => {
    /** PUTs a consumer and waits until the data plane's consumer table is rebuilt. */
    async function putConsumer(username: string, key: string): Promise<void> {
      const previous = gw.dataPlane.snapshots.current().consumers;
      const res = await gw.admin('PUT', '/consumers', { username, plugins: { 'key-auth': { key } } });
      assert.ok(res.status === 200 || res.status === 201, `PUT consumer ${username}: ${res.status} ${JSON.stringify(res.body)}`);
      await gw.waitForSnapshot((snapshot) => snapshot.consumers !== previous, `consumer ${username} applied`);
    }
    const withKey = (key: string | undefined, name = 'apikey', extra: Record<string, string> = {}): Metadata => {
      const metadata = new Metadata();
      if (key !== undefined) metadata.set(name, key);
      for (const [header, value] of Object.entries(extra)) metadata.set(header, value);
      return metadata;
    };

    before(async () => {
      await putConsumer('jack', 'jack-key');
      await putConsumer('jill', 'jill-key');
    });

    test('no key: UNAUTHENTICATED, trailers-only; an unknown key likewise; a consumer\'s key passes with its name upstream', async () => {
      await putRoute('auth', { uri: SAY_HELLO, plugins: { 'key-auth': {} } });
      const callsBefore = node.totalCalls;
      const missing = await sayHello(client, 'x');
      assert.equal(missing.status.code, GrpcCode.UNAUTHENTICATED);
      assert.equal(missing.status.details, 'Missing API key in request');
      const raw401 = await rawCall(raw, SAY_HELLO);
      assert.equal(raw401.trailersOnly, true);
      assert.equal(raw401.headers['grpc-status'], '16');
      const invalid = await sayHello(client, 'x', withKey('not-a-key'));
      assert.equal(invalid.status.code, GrpcCode.UNAUTHENTICATED);
      assert.equal(invalid.status.details, 'Invalid API key in request');
      assert.equal(node.totalCalls, callsBefore, 'no refused call reached the node');
      // A client cannot claim a consumer by sending the header itself: the gateway's value replaces it.
      const ok = await sayHello(client, 'x', withKey('jack-key', 'apikey', { 'x-consumer-username': 'mallory' }));
      assert.equal(ok.status.code, GrpcCode.OK, ok.status.details);
      assert.equal(node.lastCall?.metadata['x-consumer-username'], 'jack');
      assert.equal(node.lastCall.metadata['apikey'], 'jack-key', 'hide_credentials is off by default');
      await assertPlainRouteServes();
    });

    test('hide_credentials keeps the key from the upstream; header names another metadata key', async () => {
      await putRoute('auth', { uri: SAY_HELLO, plugins: { 'key-auth': { header: 'X-Api-Key', hide_credentials: true } } });
      assert.equal((await sayHello(client, 'x', withKey('jill-key'))).status.code, GrpcCode.UNAUTHENTICATED, 'apikey is not the header any more');
      const ok = await sayHello(client, 'x', withKey('jill-key', 'x-api-key'));
      assert.equal(ok.status.code, GrpcCode.OK, ok.status.details);
      assert.equal(node.lastCall?.metadata['x-consumer-username'], 'jill');
      assert.equal(node.lastCall.metadata['x-api-key'], undefined, 'the key was not forwarded');
    });

    test('a consumer whose key changes: the old key is refused at once, the new one admitted', async () => {
      await putRoute('auth', { uri: SAY_HELLO, plugins: { 'key-auth': {} } });
      await putConsumer('jack', 'jack-key-2');
      assert.equal((await sayHello(client, 'x', withKey('jack-key'))).status.code, GrpcCode.UNAUTHENTICATED);
      assert.equal((await sayHello(client, 'x', withKey('jack-key-2'))).status.code, GrpcCode.OK);
      await putConsumer('jack', 'jack-key');
    });

    test('consumer-restriction admits the whitelisted consumer only, and needs an authentication plugin', async () => {
      await putRoute('auth', { uri: SAY_HELLO, plugins: { 'key-auth': {}, 'consumer-restriction': { whitelist: ['jack'] } } });
      assert.equal((await sayHello(client, 'x', withKey('jack-key'))).status.code, GrpcCode.OK);
      const jill = await sayHello(client, 'x', withKey('jill-key'));
      assert.equal(jill.status.code, GrpcCode.PERMISSION_DENIED);
      assert.equal(jill.status.details, 'The consumer_name is forbidden.');
      await putRoute('auth', { uri: SAY_HELLO, plugins: { 'consumer-restriction': { blacklist: ['jill'] } } });
      const anonymous = await sayHello(client, 'x', withKey('jack-key'));
      assert.equal(anonymous.status.code, GrpcCode.UNAUTHENTICATED);
      assert.equal(anonymous.status.details, 'Missing authentication or identity verification.');
    });

    test('jwt-auth admits a token signed with a consumer\'s secret and names the consumer; others are UNAUTHENTICATED', async () => {
      const previous = gw.dataPlane.snapshots.current().consumers;
      const res = await gw.admin('PUT', '/consumers', { username: 'jwt-user', plugins: { 'jwt-auth': { key: 'user-key', secret: 'user-secret' } } });
      assert.ok(res.status === 200 || res.status === 201, JSON.stringify(res.body));
      const stored = (res.body as { value: { plugins: { 'jwt-auth': Record<string, unknown> } } }).value.plugins['jwt-auth'];
      assert.equal(stored['secret'], undefined, 'the secret is never returned');
      await gw.waitForSnapshot((snapshot) => snapshot.consumers !== previous, 'jwt consumer applied');
      await putRoute('auth', { uri: SAY_HELLO, plugins: { 'jwt-auth': {} } });
      const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
      const sign = (payload: unknown, secret: string): string => {
        const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(payload)}`;
        return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
      };
      const withToken = (jwt: string | undefined): Metadata => {
        const metadata = new Metadata();
        if (jwt !== undefined) metadata.set('authorization', `Bearer ${jwt}`);
        return metadata;
      };
      const exp = Math.floor(Date.now() / 1000) + 3600;
      const ok = await sayHello(client, 'x', withToken(sign({ key: 'user-key', exp }, 'user-secret')));
      assert.equal(ok.status.code, GrpcCode.OK, ok.status.details);
      assert.equal(node.lastCall?.metadata['x-consumer-username'], 'jwt-user');
      const missing = await sayHello(client, 'x', withToken(undefined));
      assert.equal(missing.status.code, GrpcCode.UNAUTHENTICATED);
      assert.equal(missing.status.details, 'Missing JWT token in request');
      const forged = await sayHello(client, 'x', withToken(sign({ key: 'user-key', exp }, 'guessed-secret')));
      assert.equal(forged.status.code, GrpcCode.UNAUTHENTICATED);
      assert.equal(forged.status.details, 'failed to verify jwt');
      const expired = await sayHello(client, 'x', withToken(sign({ key: 'user-key', exp: exp - 7200 }, 'user-secret')));
      assert.equal(expired.status.details, 'failed to verify jwt');
    });

    test('limit-count keyed by consumer_name gives each consumer its own quota', async () => {
      await putRoute('auth', { uri: SAY_HELLO, plugins: { 'key-auth': {}, 'limit-count': { count: 1, time_window: 60, key: 'consumer_name' } } });
      assert.equal((await sayHello(client, 'x', withKey('jack-key'))).status.code, GrpcCode.OK);
      assert.equal((await sayHello(client, 'x', withKey('jack-key'))).status.code, GrpcCode.RESOURCE_EXHAUSTED);
      assert.equal((await sayHello(client, 'x', withKey('jill-key'))).status.code, GrpcCode.OK, "jill's own quota");
      await gw.admin('DELETE', '/routes/auth');
    });
  });

  describe('proxy-rewrite', () => {
    /** A SayHello call sent to `path` (a method the upstream may not have), with its status and reply. */
    function callAt(path: string, metadata: Metadata = new Metadata()): Promise<{ code: number; message: string | undefined }> {
      const { requestSerialize, responseDeserialize } = greeterMethod('SayHello');
      return new Promise((resolve) => {
        client.makeUnaryRequest(path, requestSerialize, responseDeserialize, { name: 'rw' }, metadata, {}, (err, reply) => {
          resolve({ code: err?.code ?? GrpcCode.OK, message: reply === undefined ? undefined : messageOf(reply) });
        });
      });
    }

    test("uri renames the method the upstream is called with; the client's path still routes and is logged", async () => {
      await putRoute('rw', { uri: '/legacy.Greeter/*', plugins: { 'proxy-rewrite': { uri: SAY_HELLO } } });
      const result = await callAt('/legacy.Greeter/Hello');
      assert.equal(result.code, GrpcCode.OK);
      assert.equal(result.message, 'Hello rw');
      assert.equal(node.lastCall?.path, SAY_HELLO);
    });

    test('headers are set, added and removed, and host replaces the authority the upstream sees', async () => {
      await putRoute('rw', {
        uri: '/legacy.Greeter/*',
        plugins: {
          'proxy-rewrite': {
            uri: SAY_HELLO,
            host: 'rewritten.example',
            headers: { set: { 'X-Version': 'v2' }, add: { 'x-tag': 'gateway' }, remove: ['x-secret'] },
          },
        },
      });
      const metadata = new Metadata();
      metadata.set('x-version', 'v1');
      metadata.set('x-tag', 'client');
      metadata.set('x-secret', 's3cr3t');
      assert.equal((await callAt('/legacy.Greeter/Hello', metadata)).code, GrpcCode.OK);
      const seen = node.lastCall;
      assert.ok(seen !== undefined);
      assert.equal(seen.metadata['x-version'], 'v2', 'set replaces the client value');
      assert.equal(seen.metadata['x-tag'], 'client, gateway', 'add keeps the client value beside');
      assert.equal(seen.metadata['x-secret'], undefined, 'removed');
      assert.equal(seen.authority, 'rewritten.example');
      // The older flat map form sets.
      await putRoute('rw', { uri: '/legacy.Greeter/*', plugins: { 'proxy-rewrite': { uri: SAY_HELLO, headers: { 'x-version': 'flat' } } } });
      assert.equal((await callAt('/legacy.Greeter/Hello', metadata)).code, GrpcCode.OK);
      assert.equal(node.lastCall?.metadata['x-version'], 'flat');
      await gw.admin('DELETE', '/routes/rw');
      await assertPlainRouteServes();
    });

    test('refuses pseudo-headers, connection-specific fields and unknown $variables, writing nothing', async () => {
      for (const plugin of [{ headers: { set: { ':path': '/x' } } }, { headers: { te: 'x' } }, { uri: '/$no_such_var' }, { headers: { add: { 'x-a': '$no_such_var' } } }, {}]) {
        const res = await gw.admin('PUT', '/routes/bad-rw', { uri: SAY_HELLO, upstream: upstream(), plugins: { 'proxy-rewrite': plugin } });
        assert.equal(res.status, 400, JSON.stringify(plugin));
        assert.match((res.body as { error_msg: string }).error_msg, /plugin proxy-rewrite err:/);
      }
    });
  });

  describe('global rules and plugin configs', () => {
    test('a global rule applies to every routed call, before the route\'s plugins, until it is deleted', async () => {
      await putRoute('g', { uri: SAY_HELLO });
      const previous = gw.dataPlane.snapshots.current().globalPlugins;
      const res = await gw.admin('PUT', '/global_rules/1', { plugins: { 'ip-restriction': { blacklist: ['127.0.0.1', '::1'], message: 'global says no' } } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      await gw.waitForSnapshot((snapshot) => snapshot.globalPlugins !== previous, 'global rule applied');
      const denied = await sayHello(client, 'x');
      assert.equal(denied.status.code, GrpcCode.PERMISSION_DENIED);
      assert.equal(denied.status.details, 'global says no');
      const stream = await rawCall(raw, '/helloworld.Greeter/SayHelloServerStream');
      assert.equal(stream.headers['grpc-status'], '7', 'the route without plugins is refused too');
      await putRoute('g', { uri: SAY_HELLO, plugins: { 'fault-injection': { abort: { grpc_status: 14 } } } });
      assert.equal((await sayHello(client, 'x')).status.details, 'global says no', "global rules run before the route's plugins, whatever their priority");
      const after = gw.dataPlane.snapshots.current().globalPlugins;
      await gw.admin('DELETE', '/global_rules/1');
      await gw.waitForSnapshot((snapshot) => snapshot.globalPlugins !== after, 'global rule removed');
      await putRoute('g', { uri: SAY_HELLO });
      assert.equal((await sayHello(client, 'x')).status.code, GrpcCode.OK);
      await assertPlainRouteServes();
      await gw.admin('DELETE', '/routes/g');
    });

    test("a plugin config's plugins apply to the routes naming it; the route's own configuration of a plugin wins", async () => {
      const res = await gw.admin('PUT', '/plugin_configs/pc1', { plugins: { 'fault-injection': { abort: { grpc_status: 9, body: 'from the plugin config' } } } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      await putRoute('pc', { uri: SAY_HELLO, plugin_config_id: 'pc1' });
      const aborted = await sayHello(client, 'x');
      assert.equal(aborted.status.code, GrpcCode.FAILED_PRECONDITION);
      assert.equal(aborted.status.details, 'from the plugin config');
      await putRoute('pc', { uri: SAY_HELLO, plugin_config_id: 'pc1', plugins: { 'fault-injection': { abort: { grpc_status: 9, percentage: 0 } } } });
      assert.equal((await sayHello(client, 'x')).status.code, GrpcCode.OK, "the route's fault-injection (0 %) replaces the plugin config's");
      // A change to the plugin config reaches the routes naming it.
      await putRoute('pc', { uri: SAY_HELLO, plugin_config_id: 'pc1' });
      const before = gw.dataPlane.snapshots.current().targets.get('pc');
      await gw.admin('PUT', '/plugin_configs/pc1', { plugins: { 'fault-injection': { abort: { grpc_status: 10, body: 'changed' } } } });
      await gw.waitForSnapshot((snapshot) => snapshot.targets.get('pc') !== before, 'route pc rebuilt');
      assert.equal((await sayHello(client, 'x')).status.code, GrpcCode.ABORTED);
      await gw.admin('DELETE', '/routes/pc');
      await gw.admin('DELETE', '/plugin_configs/pc1');
    });
  });

  describe('the pipeline', () => {
    test("a service's plugins apply to its routes, and a route's own configuration of a plugin wins", async () => {
      const res = await gw.admin('PUT', '/services/s1', { upstream: upstream(), plugins: { 'ip-restriction': { blacklist: ['127.0.0.1', '::1'], message: 'service says no' } } });
      assert.ok(res.status === 200 || res.status === 201);
      await putRoute('svc', { uri: SAY_HELLO, service_id: 's1', upstream: undefined });
      const denied = await sayHello(client, 'x');
      assert.equal(denied.status.code, GrpcCode.PERMISSION_DENIED);
      assert.equal(denied.status.details, 'service says no');
      await putRoute('svc', { uri: SAY_HELLO, service_id: 's1', upstream: undefined, plugins: { 'ip-restriction': { whitelist: ['127.0.0.1', '::1'] } } });
      assert.equal((await sayHello(client, 'x')).status.code, GrpcCode.OK);
      await gw.admin('DELETE', '/routes/svc');
      await gw.admin('DELETE', '/services/s1');
    });

    test("plugins run in APISIX's priority order: fault-injection before ip-restriction before limit-count", async () => {
      await putRoute('order', {
        uri: SAY_HELLO,
        plugins: {
          'limit-count': { count: 1, time_window: 60 },
          'ip-restriction': { blacklist: ['127.0.0.1', '::1'] },
          'fault-injection': { abort: { grpc_status: 14, body: 'fault first' } },
        },
      });
      assert.equal((await sayHello(client, 'x')).status.details, 'fault first');
      await putRoute('order', {
        uri: SAY_HELLO,
        plugins: { 'limit-count': { count: 1, time_window: 60 }, 'ip-restriction': { blacklist: ['127.0.0.1', '::1'] } },
      });
      for (let i = 0; i < 3; i++) {
        const denied = await sayHello(client, 'x');
        assert.equal(denied.status.code, GrpcCode.PERMISSION_DENIED, 'refused before any quota is counted');
      }
      await putRoute('order', { uri: SAY_HELLO, plugins: { 'limit-count': { count: 1, time_window: 60 } } });
      assert.equal((await sayHello(client, 'x')).status.code, GrpcCode.OK, 'a fresh quota: the refused calls were not counted');
      await gw.admin('DELETE', '/routes/order');
      assert.ok(routes > 0);
    });
  });
});
