/**
 * `timeout.send`: how long a request write may wait for the upstream's flow-control window. An upstream that
 * answers headers and then never reads the request body stalls the gateway's writes once the HTTP/2 windows fill;
 * after `send` seconds the call ends UNAVAILABLE naming timeout.send, and the upstream stream is reset.
 */
import assert from 'node:assert/strict';
import http2, { type ServerHttp2Stream } from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { startGateway, type GatewayFixture } from '../e2e/gateway-fixture.ts';
import { describeResult, finish, startRawCall } from '../faults/fault-kit.ts';
import { DEFAULT_LIMIT_MS, TEST_TIMEOUT_MS, gatewaySession, putRoute, waitUntil } from './flow-kit.ts';

const UNAVAILABLE = 14;
/** Well past the default 64 KiB stream windows on both legs, so the upstream's refusal to read stalls writes. */
const REQUEST_BYTES = 4 * 1024 * 1024;

describe('timeout.send', { timeout: TEST_TIMEOUT_MS * 2 }, () => {
  let gw: GatewayFixture;
  let upstream: http2.Http2Server;
  let port = 0;
  const streams: ServerHttp2Stream[] = [];

  before(async () => {
    gw = await startGateway();
    upstream = http2.createServer();
    upstream.on('stream', (stream) => {
      streams.push(stream);
      stream.on('error', () => undefined);
      // Headers, then never a read: the request body piles up against flow control.
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const address = upstream.address();
    port = address !== null && typeof address === 'object' ? address.port : 0;
  });

  after(async () => {
    for (const stream of streams) stream.destroy();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
    await gw.close();
  });

  test('an upstream that stops reading the request fails the call with UNAVAILABLE naming timeout.send (send 0.3 s)', { timeout: TEST_TIMEOUT_MS }, async () => {
    await putRoute(gw, 'send-timeout', {
      uri: '/helloworld.Greeter/*',
      timeout: { connect: 1, send: 0.3, read: 10 },
      upstream: { scheme: 'grpc', nodes: { [`127.0.0.1:${port}`]: 1 } },
    });
    const session = await gatewaySession(gw, 'h2c');
    try {
      const call = startRawCall(session, { messages: [Buffer.alloc(REQUEST_BYTES, 7)] });
      const result = await finish(call, 'call to an upstream that never reads', DEFAULT_LIMIT_MS);
      assert.equal(result.grpcStatus, UNAVAILABLE, describeResult(result));
      assert.match(decodeURIComponent(result.grpcMessage ?? ''), /timeout\.send/, describeResult(result));
      await waitUntil(() => streams[0]?.closed === true, DEFAULT_LIMIT_MS, () => 'the stalled upstream stream was left open');
      assert.equal(streams[0]?.rstCode, http2.constants.NGHTTP2_CANCEL);
    } finally {
      session.destroy();
    }
  });
});
