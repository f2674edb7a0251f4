/**
 * Issue #16: `fault-injection`'s `delay` and `vars`, `proxy-rewrite`'s `regex_uri` and `$variables`, through the
 * admin API, etcd and the data plane, with real grpc-js clients and the Greeter, which records what reached it.
 * No assertion is on time: a delayed call is asserted to succeed and to reach the node, with what it sent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Metadata, status as GrpcCode, type Client } from '@grpc/grpc-js';
import { greeterClient, greeterMethod, messageOf, sayHello, sayHelloClientStream, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { type GatewayFixture, gatewaySession, putRouteAndWait, startGateway } from './gateway-fixture.ts';

const SAY_HELLO = '/helloworld.Greeter/SayHello';

describe('fault-injection delay and vars, proxy-rewrite regex_uri and $variables', () => {
  let gw: GatewayFixture;
  let node: GreeterNode;
  let client: Client;

  before(async () => {
    gw = await startGateway();
    node = await startGreeterNode({ id: 'node' });
    client = greeterClient(gw.h2cAddress);
  });

  after(async () => {
    client.close();
    await gw.close();
    await node.close();
  });

  const upstream = (): unknown => ({ scheme: 'grpc', type: 'roundrobin', nodes: { [`127.0.0.1:${node.port}`]: 1 } });

  /** PUTs a route with the test node as upstream and waits until the data plane has rebuilt it. */
  const putRoute = (id: string, body: Record<string, unknown>): Promise<void> => putRouteAndWait(gw, id, { upstream: upstream(), ...body });

  const withHeaders = (headers: Record<string, string>): Metadata => {
    const metadata = new Metadata();
    for (const [name, value] of Object.entries(headers)) metadata.set(name, value);
    return metadata;
  };

  /** A SayHello call sent to `path` (a method the upstream may not have), with its status and reply. */
  function callAt(path: string, metadata: Metadata = new Metadata()): Promise<{ code: number; details: string; message: string | undefined }> {
    const { requestSerialize, responseDeserialize } = greeterMethod('SayHello');
    return new Promise((resolve) => {
      client.makeUnaryRequest(path, requestSerialize, responseDeserialize, { name: 'rw' }, metadata, {}, (err, reply) => {
        resolve({ code: err?.code ?? GrpcCode.OK, details: err?.details ?? '', message: reply === undefined ? undefined : messageOf(reply) });
      });
    });
  }

  describe('fault-injection', () => {
    test('a delayed call goes on to the node and succeeds, a unary call and a client stream whose messages were held', async () => {
      await putRoute('delay', { uri: '/helloworld.Greeter/*', plugins: { 'fault-injection': { delay: { duration: 0.2 } } } });
      const callsBefore = node.totalCalls;
      const unary = await sayHello(client, 'delayed');
      assert.equal(unary.status.code, GrpcCode.OK, unary.status.details);
      assert.equal(unary.message, 'Hello delayed');
      assert.equal(node.lastCall?.path, SAY_HELLO);
      const stream = await sayHelloClientStream(client, ['a', 'b', 'c']);
      assert.equal(stream.status.code, GrpcCode.OK, stream.status.details);
      assert.equal(stream.message, 'Hello a!Hello b!Hello c!', 'the messages sent while the call was held reached the node in order');
      assert.equal(node.totalCalls, callsBefore + 2, 'both calls reached the node');
    });

    test("the call's deadline runs through the hold: a grpc-timeout shorter than the delay is DEADLINE_EXCEEDED at the gateway", async () => {
      await putRoute('delay', { uri: SAY_HELLO, plugins: { 'fault-injection': { delay: { duration: 0.5 } } } });
      const callsBefore = node.totalCalls;
      // A raw client: it sends grpc-timeout and waits for the gateway's answer (grpc-js would cancel on its own).
      const session = await gatewaySession(gw, 'h2c');
      try {
        const answer = await new Promise<Record<string, unknown>>((resolve, reject) => {
          const stream = session.request({ ':method': 'POST', ':path': SAY_HELLO, 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '100m' });
          let headers: Record<string, unknown> = {};
          stream.on('response', (h) => (headers = { ...h }));
          stream.on('trailers', (t: Record<string, unknown>) => (headers = { ...headers, ...t }));
          stream.on('error', reject);
          stream.on('close', () => resolve(headers));
          stream.end(Buffer.from([0, 0, 0, 0, 0]));
        });
        assert.equal(answer['grpc-status'], String(GrpcCode.DEADLINE_EXCEEDED), JSON.stringify(answer));
        assert.equal(node.totalCalls, callsBefore, 'the call was over before it reached the node');
      } finally {
        session.close();
      }
    });

    test('delay and abort together: the call is held, then answered with the abort status without reaching the node', async () => {
      await putRoute('delay', { uri: SAY_HELLO, plugins: { 'fault-injection': { delay: { duration: 0.1 }, abort: { grpc_status: 14, body: 'slow, then down' } } } });
      const callsBefore = node.totalCalls;
      const result = await sayHello(client, 'x');
      assert.equal(result.status.code, GrpcCode.UNAVAILABLE);
      assert.equal(result.status.details, 'slow, then down');
      assert.equal(result.headers, undefined, 'trailers-only');
      assert.equal(node.totalCalls, callsBefore, 'no call reached the node');
      await gw.admin('DELETE', '/routes/delay');
    });

    test('abort applies only to calls whose headers match its vars', async () => {
      await putRoute('vars', {
        uri: SAY_HELLO,
        plugins: { 'fault-injection': { abort: { grpc_status: 14, body: 'chaos for testers', vars: [[['http_x_chaos', '==', 'on'], ['http_x_user', '~~', '^tester-']]] } } },
      });
      const callsBefore = node.totalCalls;
      const plain = await sayHello(client, 'x');
      assert.equal(plain.status.code, GrpcCode.OK, 'no header: no fault');
      const aborted = await sayHello(client, 'x', withHeaders({ 'x-chaos': 'on', 'x-user': 'tester-7' }));
      assert.equal(aborted.status.code, GrpcCode.UNAVAILABLE);
      assert.equal(aborted.status.details, 'chaos for testers');
      const partly = await sayHello(client, 'x', withHeaders({ 'x-chaos': 'on', 'x-user': 'alice' }));
      assert.equal(partly.status.code, GrpcCode.OK, 'both expressions of the rule must match');
      assert.equal(node.totalCalls, callsBefore + 2, 'the two calls without the fault reached the node, the aborted one did not');
      await gw.admin('DELETE', '/routes/vars');
    });
  });

  describe('proxy-rewrite', () => {
    test('regex_uri renames a service and method: /legacy.Greeter/Hello reaches /helloworld.Greeter/SayHello', async () => {
      await putRoute('rw', { uri: '/legacy.Greeter/*', plugins: { 'proxy-rewrite': { regex_uri: ['^/legacy\\.Greeter/(\\w+)$', '/helloworld.Greeter/Say$1'] } } });
      const result = await callAt('/legacy.Greeter/Hello');
      assert.equal(result.code, GrpcCode.OK, result.details);
      assert.equal(result.message, 'Hello rw');
      assert.equal(node.lastCall?.path, SAY_HELLO);
    });

    test('$consumer_name, $remote_addr and $http_x_user are substituted into an upstream header', async () => {
      const consumers = gw.dataPlane.snapshots.current().consumers;
      const res = await gw.admin('PUT', '/consumers', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } });
      assert.ok(res.status === 200 || res.status === 201, JSON.stringify(res.body));
      await gw.waitForSnapshot((snapshot) => snapshot.consumers !== consumers, 'consumer jack applied');
      await putRoute('rw', {
        uri: '/legacy.Greeter/*',
        plugins: {
          'key-auth': {},
          'proxy-rewrite': {
            regex_uri: ['^/legacy\\.Greeter/(\\w+)$', '/helloworld.Greeter/Say$1'],
            headers: { set: { 'x-caller': '$consumer_name from $remote_addr as $http_x_user', 'x-legacy-method': '$1' } },
          },
        },
      });
      const result = await callAt('/legacy.Greeter/Hello', withHeaders({ apikey: 'jack-key', 'x-user': 'alice', 'x-caller': 'forged' }));
      assert.equal(result.code, GrpcCode.OK, result.details);
      const seen = node.lastCall;
      assert.equal(seen?.path, SAY_HELLO);
      assert.equal(seen.metadata['x-caller'], 'jack from 127.0.0.1 as alice', "the gateway's value replaces the client's");
      assert.equal(seen.metadata['x-legacy-method'], 'Hello', "regex_uri's capture");
    });

    test('a rewritten path that is no gRPC path is answered INTERNAL, without reaching the node', async () => {
      await putRoute('rw', { uri: '/legacy.Greeter/*', plugins: { 'proxy-rewrite': { regex_uri: ['^/legacy\\.Greeter/(\\w+)$', '$1'] } } });
      const callsBefore = node.totalCalls;
      const result = await callAt('/legacy.Greeter/Hello');
      assert.equal(result.code, GrpcCode.INTERNAL);
      assert.equal(result.details, 'the gateway could not rewrite the request path');
      assert.equal(node.totalCalls, callsBefore);
      await gw.admin('DELETE', '/routes/rw');
    });

    test('refuses a regex that does not compile, one that backtracks exponentially, and an unknown variable, writing nothing', async () => {
      const refused = async (plugin: unknown, message: RegExp): Promise<void> => {
        const res = await gw.admin('PUT', '/routes/bad-rw', { uri: SAY_HELLO, upstream: upstream(), plugins: { 'proxy-rewrite': plugin } });
        assert.equal(res.status, 400, JSON.stringify(plugin));
        assert.match((res.body as { error_msg: string }).error_msg, message);
        assert.equal((await gw.admin('GET', '/routes/bad-rw')).status, 404, 'nothing was written');
      };
      await refused({ regex_uri: ['^/(.*$', '/$1'] }, /plugin proxy-rewrite err: invalid regex_uri\(\^\/\(\.\*\$, \/\$1\): invalid regex/);
      await refused({ regex_uri: ['^/(a+)+$', '/x'] }, /plugin proxy-rewrite err: .*exponential backtracking/);
      await refused({ headers: { set: { 'x-a': '$http_x_user $nobody' } } }, /plugin proxy-rewrite err: unknown variable "\$nobody" in header "x-a"/);
    });
  });
});
