/**
 * A route's `timeout {connect, send, read}` (APISIX route.timeout, which overrides upstream.timeout):
 *
 * - connect: a node that accepts TCP but never completes the HTTP/2 (or TLS) handshake fails the call with
 *   UNAVAILABLE once the connect timeout has passed (the status is asserted, not the time);
 * - read: an idle stream (response headers, then silence) fails with UNAVAILABLE and a message naming
 *   timeout.read, and the upstream stream is reset;
 * - read is an idle timeout, not a total one: a stream that keeps sending a message every 100 ms for 1.5 s is not
 *   cut by a 0.5 s read timeout.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startGateway, type GatewayFixture } from '../e2e/gateway-fixture.ts';
import { decodeHelloMessage, startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { describeResult, finish, startRawCall } from '../faults/fault-kit.ts';
import { DEFAULT_LIMIT_MS, TEST_TIMEOUT_MS, gatewaySession, putRoute, startSilentServer, waitUntil, type SilentServer } from './flow-kit.ts';

const UNAVAILABLE = 14;
const SERVER_STREAM = '/helloworld.Greeter/SayHelloServerStream';
const TICKS = 15;
const TICK_MS = 100;

describe('route timeouts', { timeout: TEST_TIMEOUT_MS * 6 }, () => {
  let gw: GatewayFixture;
  let fakes: FakeUpstream[] = [];
  let silent: SilentServer[] = [];
  const sessions: { destroy(): void }[] = [];

  before(async () => {
    gw = await startGateway();
  });
  afterEach(async () => {
    for (const session of sessions.splice(0)) session.destroy();
    await Promise.all([...fakes.map((f) => f.close()), ...silent.map((s) => s.close())]);
    fakes = [];
    silent = [];
  });
  after(async () => gw.close());

  for (const scheme of ['grpc', 'grpcs'] as const) {
    test(`a ${scheme} node that accepts TCP and never completes the handshake fails the call with UNAVAILABLE (connect 0.3 s)`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const server = await startSilentServer();
      silent.push(server);
      await putRoute(gw, 'timeouts', {
        uri: '/helloworld.Greeter/*',
        timeout: { connect: 0.3, send: 5, read: 5 },
        upstream: { scheme, nodes: { [`127.0.0.1:${server.port}`]: 1 } },
      });
      const session = await gatewaySession(gw, 'h2c');
      sessions.push(session);
      const result = await finish(startRawCall(session), 'call to a silent node');
      assert.equal(result.grpcStatus, UNAVAILABLE, describeResult(result));
      assert.equal(server.accepted, 1, 'the gateway did not connect to the node exactly once');
    });
  }

  test('an upstream that answers headers and then goes silent fails the call with UNAVAILABLE naming timeout.read (read 0.3 s)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const fake = await startFakeUpstream();
    fakes.push(fake);
    fake.onStream(async (_stream, _headers, ctl) => {
      await ctl.requestEnded();
      ctl.respond();
      await ctl.closed(); // silence until the gateway gives up
    });
    await putRoute(gw, 'timeouts', {
      uri: '/helloworld.Greeter/*',
      timeout: { connect: 1, send: 1, read: 0.3 },
      upstream: { scheme: 'grpc', nodes: { [fake.address]: 1 } },
    });
    const session = await gatewaySession(gw, 'h2c');
    sessions.push(session);
    const result = await finish(startRawCall(session, { path: SERVER_STREAM }), 'idle server stream');
    assert.equal(result.grpcStatus, UNAVAILABLE, describeResult(result));
    assert.match(decodeURIComponent(result.grpcMessage ?? ''), /timeout\.read/, describeResult(result));
    const [upstream] = fake.streams;
    await waitUntil(() => upstream?.closed === true, DEFAULT_LIMIT_MS, () => 'the idle upstream stream was left open');
    assert.equal(upstream?.resetByPeer, true, 'the gateway did not reset the idle upstream stream');
  });

  test(`a stream with a message every ${TICK_MS} ms for ${(TICKS * TICK_MS) / 1000} s is not cut by a 0.5 s read timeout`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const fake = await startFakeUpstream();
    fakes.push(fake);
    fake.onStream(async (_stream, _headers, ctl) => {
      await ctl.requestEnded();
      ctl.respond();
      for (let i = 0; i < TICKS; i++) {
        await sleep(TICK_MS);
        if (ctl.record.closed) return;
        await ctl.writeMessage(`tick ${i}`);
      }
      ctl.sendTrailers();
    });
    await putRoute(gw, 'timeouts', {
      uri: '/helloworld.Greeter/*',
      timeout: { connect: 1, send: 1, read: 0.5 },
      upstream: { scheme: 'grpc', nodes: { [fake.address]: 1 } },
    });
    const session = await gatewaySession(gw, 'h2c');
    sessions.push(session);
    const result = await finish(startRawCall(session, { path: SERVER_STREAM }), 'slow but steady stream', DEFAULT_LIMIT_MS);
    assert.equal(result.grpcStatus, 0, describeResult(result));
    assert.equal(result.messages.length, TICKS, describeResult(result));
    assert.equal(decodeHelloMessage(result.messages[TICKS - 1] ?? Buffer.alloc(0)), `tick ${TICKS - 1}`);
  });
});
