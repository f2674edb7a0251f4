/**
 * A call that ends on the client's side must end on the upstream's side: a client RST_STREAM(CANCEL), a dropped
 * client connection, or an expired `grpc-timeout` resets the upstream stream with CANCEL (PROTOCOL-HTTP2.md: CANCEL
 * "mapped to call cancellation when sent by a client"), and no upstream stream outlives its downstream one. This
 * is Envoy's `GlobalTimeout` assertion (`upstream_request_->waitForReset()` in its timeout tests) and the fix for the
 * idle-stream leaks users report of other gateways.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { status as GrpcCode, type ClientDuplexStream } from '@grpc/grpc-js';
import { openBidirectionalStream, sayHello } from '../helpers/greeter.ts';
import {
  ALL_LEGS,
  DEFAULT_LIMIT_MS,
  describeResult,
  finish,
  H2_ERRORS,
  legName,
  SERVER_STREAM,
  startRawCall,
  TEST_TIMEOUT_MS,
  useBench,
  within,
} from './fault-kit.ts';

/** The deadline of the deadline tests: 200 ms, as `grpc-timeout: 200m` (PROTOCOL-HTTP2.md TimeoutValue + unit). */
const DEADLINE_MS = 200;

describe('cancellation and deadlines reach the upstream', { timeout: TEST_TIMEOUT_MS * 30 }, () => {
  const bench = useBench();

  for (const leg of ALL_LEGS) {
    describe(legName(leg), () => {
      test('a client RST_STREAM CANCEL before response headers resets the upstream stream with CANCEL', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream((_s, _h, ctl) => ctl.closed()); // never answers
        const session = await bench().downSession(leg);
        const call = startRawCall(session, { end: false });
        const [upstream] = await fake.waitForStreams(1);
        call.stream.close(H2_ERRORS.CANCEL);
        await finish(call, 'cancelled call');
        await within(upstream?.closedPromise ?? Promise.resolve(), DEFAULT_LIMIT_MS, 'upstream stream closing after the client cancelled');
        assert.equal(upstream?.resetByPeer, true, 'the gateway did not reset the upstream stream');
        assert.equal(upstream.rstCode, H2_ERRORS.CANCEL);
        assert.equal(upstream.aborted, true);
        await fake.waitForAllClosed();
      });

      test('a client RST_STREAM CANCEL mid-stream resets the upstream stream with CANCEL', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream(async (_s, _h, ctl) => {
          await ctl.writeMessage('one');
          await ctl.closed();
        });
        const session = await bench().downSession(leg);
        const call = startRawCall(session, { path: SERVER_STREAM, end: false });
        await within(
          new Promise<void>((resolve) => call.stream.once('data', () => resolve())),
          DEFAULT_LIMIT_MS,
          'the first message through the gateway',
        );
        const [upstream] = await fake.waitForStreams(1);
        call.stream.close(H2_ERRORS.CANCEL);
        await finish(call, 'cancelled call');
        await within(upstream?.closedPromise ?? Promise.resolve(), DEFAULT_LIMIT_MS, 'upstream stream closing after the client cancelled');
        assert.equal(upstream?.resetByPeer, true, 'the gateway did not reset the upstream stream');
        assert.equal(upstream.rstCode, H2_ERRORS.CANCEL);
      });

      test('a grpc-js bidi call cancelled by the client leaves no upstream stream open', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream(async (_s, _h, ctl) => {
          ctl.respond();
          await ctl.closed();
        });
        const call: ClientDuplexStream<object, object> = openBidirectionalStream(bench().grpcClient(leg));
        const status = new Promise<number>((resolve) => call.on('status', (s: { code: number }) => resolve(s.code)));
        call.on('error', () => undefined);
        call.write({ name: 'x' });
        const [upstream] = await fake.waitForStreams(1);
        call.cancel();
        assert.equal(await within(status, DEFAULT_LIMIT_MS, 'status of the cancelled call'), GrpcCode.CANCELLED);
        await fake.waitForAllClosed();
        assert.equal(upstream?.rstCode, H2_ERRORS.CANCEL);
        assert.equal(upstream.resetByPeer, true);
      });

      test('a client connection dropped mid-call resets the upstream stream with CANCEL', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream(async (_s, _h, ctl) => {
          ctl.respond();
          await ctl.closed();
        });
        const session = await bench().downSession(leg);
        startRawCall(session, { end: false });
        startRawCall(session, { path: SERVER_STREAM });
        const upstreams = await fake.waitForStreams(2);
        session.destroy();
        await fake.waitForAllClosed();
        for (const upstream of upstreams) {
          assert.equal(upstream.resetByPeer, true, `stream ${upstream.id} was not reset by the gateway`);
          assert.equal(upstream.rstCode, H2_ERRORS.CANCEL);
        }
      });

      test('a grpc-js deadline of 200 ms against a silent upstream: DEADLINE_EXCEEDED and the upstream stream reset with CANCEL', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream((_s, _h, ctl) => ctl.closed());
        const result = await within(
          sayHello(bench().grpcClient(leg), 'x', undefined, { deadline: Date.now() + DEADLINE_MS }),
          DEFAULT_LIMIT_MS,
          'grpc-js call with a deadline',
        );
        assert.equal(result.status.code, GrpcCode.DEADLINE_EXCEEDED, result.status.details);
        const [upstream] = await fake.waitForStreams(1);
        await fake.waitForAllClosed();
        assert.equal(upstream?.rstCode, H2_ERRORS.CANCEL);
        assert.equal(upstream.resetByPeer, true);
      });

      test('grpc-timeout 200m from a client that does not enforce it: the gateway answers DEADLINE_EXCEEDED and cancels upstream', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream((_s, _h, ctl) => ctl.closed());
        const session = await bench().downSession(leg);
        // A raw client sends the header and then simply waits, as a client with a broken clock would: only the
        // gateway can end this call.
        const call = startRawCall(session, { headers: { 'grpc-timeout': `${DEADLINE_MS}m` } });
        const [upstream] = await fake.waitForStreams(1);
        const result = await finish(call, 'the gateway did not enforce grpc-timeout', DEFAULT_LIMIT_MS);
        assert.equal(result.grpcStatus, GrpcCode.DEADLINE_EXCEEDED, describeResult(result));
        await within(upstream?.closedPromise ?? Promise.resolve(), DEFAULT_LIMIT_MS, 'upstream stream reset after the deadline');
        assert.equal(upstream?.rstCode, H2_ERRORS.CANCEL);
        assert.equal(upstream.resetByPeer, true);
      });
    });
  }
});
