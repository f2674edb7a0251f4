/**
 * Retries the gateway may make, and tells the upstream about (forward.ts rules; gRFC A6 `grpc-previous-rpc-attempts`):
 *
 * - a node that refuses the connection: the call moves to the next node, which sees grpc-previous-rpc-attempts 1;
 * - a stream the upstream refused (RST_STREAM REFUSED_STREAM, never processed, RFC 9113 §8.7): retried once on the
 *   same node, the second stream carries grpc-previous-rpc-attempts 1;
 * - a request larger than REPLAY_LIMIT_BYTES cannot be replayed, so a refused stream is the call's end: UNAVAILABLE;
 * - `retry_timeout` bounds the attempts on an upstream whose nodes all refuse connections: the call ends
 *   UNAVAILABLE (the status is asserted, not the time).
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { constants } from 'node:http2';
import { status as GrpcCode } from '@grpc/grpc-js';
import { REPLAY_LIMIT_BYTES } from '../../data-plane/proxy/forward.ts';
import { startGateway, type GatewayFixture } from '../e2e/gateway-fixture.ts';
import { startFakeUpstream } from '../helpers/fake-upstream.ts';
import { greeterClient, sayHello, startGreeterNode } from '../helpers/greeter.ts';
import { describeResult, finish, startRawCall } from '../faults/fault-kit.ts';
import { closedPort, DEFAULT_LIMIT_MS, gatewaySession, TEST_TIMEOUT_MS, startSilentServer, testResources, putRoute, within } from './flow-kit.ts';

const ATTEMPTS_HEADER = 'grpc-previous-rpc-attempts';
const SAY_HELLO = '/helloworld.Greeter/SayHello';

describe('retries and grpc-previous-rpc-attempts', { timeout: TEST_TIMEOUT_MS * 6 }, () => {
  let gw: GatewayFixture;
  const { clients, sessions, fakes, nodes, release } = testResources();

  before(async () => {
    gw = await startGateway();
  });
  afterEach(release);
  after(async () => gw.close());

  test('a call to a node that refuses the connection succeeds on the next node, which sees grpc-previous-rpc-attempts 1', { timeout: TEST_TIMEOUT_MS }, async () => {
    const node = await startGreeterNode({ id: 'second' });
    nodes.push(node);
    const refused = await closedPort();
    // The closed port has the higher priority, so every call tries it first (APISIX priority groups).
    await putRoute(gw, 'retry', {
      uri: '/helloworld.Greeter/*',
      upstream: {
        scheme: 'grpc',
        nodes: [
          { host: '127.0.0.1', port: refused, weight: 1, priority: 1 },
          { host: '127.0.0.1', port: node.port, weight: 1, priority: 0 },
        ],
      },
    });
    const client = greeterClient(gw.h2cAddress);
    clients.push(client);
    const outcome = await within(sayHello(client, 'retry'), DEFAULT_LIMIT_MS, 'SayHello with a refusing first node');
    assert.equal(outcome.status.code, GrpcCode.OK, outcome.status.details);
    assert.equal(outcome.servedBy, 'second');
    assert.equal(node.counts.SayHello, 1);
    assert.equal(node.lastCall?.metadata[ATTEMPTS_HEADER], '1', `metadata at the node: ${JSON.stringify(node.lastCall?.metadata)}`);
  });

  test('a stream refused with REFUSED_STREAM is retried on the same node, and the retry carries grpc-previous-rpc-attempts 1', { timeout: TEST_TIMEOUT_MS }, async () => {
    const fake = await startFakeUpstream();
    fakes.push(fake);
    let seen = 0;
    fake.onStream(async (_stream, _headers, ctl) => {
      seen++;
      if (seen === 1) return ctl.reset(constants.NGHTTP2_REFUSED_STREAM);
      await ctl.requestEnded();
      await ctl.writeMessage('second attempt');
      ctl.sendTrailers();
    });
    await putRoute(gw, 'retry', { uri: '/helloworld.Greeter/*', upstream: { scheme: 'grpc', nodes: { [fake.address]: 1 } } });
    const session = await gatewaySession(gw, 'h2c');
    sessions.push(session);
    const result = await finish(startRawCall(session, { path: SAY_HELLO, messages: ['x'] }), 'refused-then-retried call');
    assert.equal(result.grpcStatus, 0, describeResult(result));
    assert.equal(fake.streams.length, 2, 'the refused stream was not retried exactly once');
    const [first, second] = fake.streams;
    assert.equal(first?.headers[ATTEMPTS_HEADER], undefined, 'the first attempt claimed to be a retry');
    assert.equal(second?.headers[ATTEMPTS_HEADER], '1');
    assert.equal(second.messages.length, 1, 'the retry did not replay the request');
    assert.equal(second.endStreamReceived, true);
  });

  test('a request larger than the replay limit is not retried after REFUSED_STREAM: UNAVAILABLE', { timeout: TEST_TIMEOUT_MS }, async () => {
    const fake = await startFakeUpstream();
    fakes.push(fake);
    fake.onStream(async (_stream, _headers, ctl) => {
      // Refuse only once the whole request went through the gateway, so it can no longer hold it for a replay.
      await ctl.requestEnded();
      ctl.reset(constants.NGHTTP2_REFUSED_STREAM);
    });
    await putRoute(gw, 'retry', { uri: '/helloworld.Greeter/*', upstream: { scheme: 'grpc', nodes: { [fake.address]: 1 } } });
    const session = await gatewaySession(gw, 'h2c');
    sessions.push(session);
    const big = Buffer.alloc(REPLAY_LIMIT_BYTES * 2, 0x61);
    const result = await finish(startRawCall(session, { path: SAY_HELLO, messages: [big] }), 'large refused call');
    assert.equal(result.grpcStatus, GrpcCode.UNAVAILABLE, describeResult(result));
    assert.equal(fake.streams.length, 1, 'a request beyond the replay limit was retried');
    assert.equal(fake.streams[0]?.bytesReceived, big.length + 5, 'the upstream did not get the whole request');
  });

  test('retry_timeout 0.2 s on an upstream whose nodes all refuse connections ends UNAVAILABLE', { timeout: TEST_TIMEOUT_MS }, async () => {
    const ports = [await closedPort(), await closedPort(), await closedPort(), await closedPort()];
    await putRoute(gw, 'retry', {
      uri: '/helloworld.Greeter/*',
      upstream: { scheme: 'grpc', retry_timeout: 0.2, nodes: Object.fromEntries(ports.map((p) => [`127.0.0.1:${p}`, 1])) },
    });
    const client = greeterClient(gw.h2cAddress);
    clients.push(client);
    const outcome = await within(sayHello(client, 'nobody home'), DEFAULT_LIMIT_MS, 'SayHello to refusing nodes');
    assert.equal(outcome.status.code, GrpcCode.UNAVAILABLE, outcome.status.details);
  });

  test('no further node is tried once retry_timeout has passed: one connect timeout of 0.3 s outlasts retry_timeout 0.2 s', { timeout: TEST_TIMEOUT_MS }, async () => {
    const silent = [await startSilentServer(), await startSilentServer(), await startSilentServer()];
    try {
      await putRoute(gw, 'retry', {
        uri: '/helloworld.Greeter/*',
        timeout: { connect: 0.3, send: 5, read: 5 },
        upstream: { scheme: 'grpc', retry_timeout: 0.2, nodes: Object.fromEntries(silent.map((s) => [`127.0.0.1:${s.port}`, 1])) },
      });
      const client = greeterClient(gw.h2cAddress);
      clients.push(client);
      const outcome = await within(sayHello(client, 'silence'), DEFAULT_LIMIT_MS, 'SayHello to silent nodes');
      assert.equal(outcome.status.code, GrpcCode.UNAVAILABLE, outcome.status.details);
      const tried = silent.map((s) => s.accepted);
      assert.equal(tried.reduce((a, b) => a + b, 0), 1, `connections per node ${JSON.stringify(tried)}: retry_timeout did not stop the retries`);
    } finally {
      await Promise.all(silent.map((s) => s.close()));
    }
  });
});
