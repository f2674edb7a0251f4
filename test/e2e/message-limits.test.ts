/**
 * Per-route message size caps (`plugins.grpc-limits`): off by default, RESOURCE_EXHAUSTED when a message crosses one,
 * in either direction; unknown plugins are refused at the admin API as APISIX does.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status as GrpcCode, type Client } from '@grpc/grpc-js';
import { greeterClient, sayHello, sayHelloServerStream, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { startGateway, type GatewayFixture } from './gateway-fixture.ts';

describe('grpc-limits', () => {
  let gw: GatewayFixture;
  let node: GreeterNode;
  let client: Client;

  before(async () => {
    gw = await startGateway();
    node = await startGreeterNode({ id: 'n' });
    client = greeterClient(gw.h2cAddress);
  });

  after(async () => {
    client.close();
    await gw.close();
    await node.close();
  });

  const putLimits = async (limits: Record<string, number>): Promise<void> => {
    const route = {
      uri: '/helloworld.Greeter/*',
      plugins: { 'grpc-limits': limits },
      upstream: { nodes: { [`127.0.0.1:${node.port}`]: 1 } },
    };
    const res = await gw.admin('PUT', '/routes/limits', route);
    assert.ok(res.status === 200 || res.status === 201, JSON.stringify(res.body));
    const wanted = JSON.stringify(limits);
    await gw.waitForSnapshot((snap) => {
      const entry = snap.router.match({ path: '/helloworld.Greeter/SayHello', method: 'POST', authority: undefined });
      const t = entry?.target;
      return JSON.stringify({ ...(t?.maxRequestMessageBytes === undefined ? {} : { max_request_message_bytes: t.maxRequestMessageBytes }), ...(t?.maxResponseMessageBytes === undefined ? {} : { max_response_message_bytes: t.maxResponseMessageBytes }) }) === wanted;
    }, `limits ${wanted}`);
  };

  test('a request message over max_request_message_bytes is RESOURCE_EXHAUSTED; one within passes', async () => {
    await putLimits({ max_request_message_bytes: 64 });
    const ok = await sayHello(client, 'x'.repeat(40));
    assert.equal(ok.status.code, GrpcCode.OK, ok.status.details);
    const big = await sayHello(client, 'x'.repeat(100));
    assert.equal(big.status.code, GrpcCode.RESOURCE_EXHAUSTED);
    assert.match(big.status.details, /request message of \d+ bytes exceeds the route's limit of 64 bytes/);
  });

  test('a response message over max_response_message_bytes ends the call RESOURCE_EXHAUSTED', async () => {
    await putLimits({ max_response_message_bytes: 20 });
    const small = await sayHello(client, 'ab');
    assert.equal(small.status.code, GrpcCode.OK, small.status.details);
    const large = await sayHelloServerStream(client, 'a-name-long-enough-to-cross-the-cap');
    assert.equal(large.status.code, GrpcCode.RESOURCE_EXHAUSTED);
    assert.match(large.status.details, /response message of \d+ bytes exceeds the route's limit of 20 bytes/);
  });

  test('an unknown plugin is refused with APISIX wording and nothing is written', async () => {
    const res = await gw.admin('PUT', '/routes/unknown-plugin', {
      uri: '/a/b',
      plugins: { 'no-such-plugin': {} },
      upstream: { nodes: { '127.0.0.1:1': 1 } },
    });
    assert.equal(res.status, 400);
    assert.deepEqual(res.body, { error_msg: 'invalid configuration: property "plugins" validation failed: unknown plugin [no-such-plugin]' });
    assert.equal((await gw.admin('GET', '/routes/unknown-plugin')).status, 404);
  });
});
