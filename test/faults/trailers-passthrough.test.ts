/**
 * Trailers and trailers-only responses pass through exactly (apache/apisix#12202: a
 * server stream that fails at once, is mishandled by nginx-family proxies). A trailers-only response is ONE
 * HEADERS frame with END_STREAM carrying grpc-status; the gateway must not split it into headers + trailers, and
 * must not touch grpc-message (percent-encoded UTF-8) or `-bin` values.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import { sayHello, sayHelloServerStream } from '../helpers/greeter.ts';
import { decodeHelloMessage } from '../helpers/fake-upstream.ts';
import {
  ALL_LEGS,
  DEFAULT_LIMIT_MS,
  describeResult,
  finish,
  legName,
  SAY_HELLO,
  SERVER_STREAM,
  startRawCall,
  TEST_TIMEOUT_MS,
  useBench,
  within,
} from './fault-kit.ts';

/** "café ✓ 100%" as PROTOCOL-HTTP2.md's Percent-Encoded form: UTF-8, bytes outside 0x20–0x7E and '%' encoded. */
const ENCODED_MESSAGE = 'caf%C3%A9 %E2%9C%93 100%25';
const DECODED_MESSAGE = 'café ✓ 100%';
const DETAILS = Buffer.from([0x08, 0x09, 0x12, 0x03, 0x00, 0xff, 0x7f]);
/** Padded base64, as many servers send it; the proxy must not normalise it. */
const DETAILS_B64 = DETAILS.toString('base64');
const TRACE_B64 = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x01]).toString('base64');

describe('trailers and trailers-only responses pass through unchanged', { timeout: TEST_TIMEOUT_MS * 40 }, () => {
  const bench = useBench();

  for (const leg of ALL_LEGS) {
    describe(legName(leg), () => {
      for (const [kind, path] of [
        ['unary', SAY_HELLO],
        ['server-streaming', SERVER_STREAM],
      ] as const) {
        test(`a trailers-only error on a ${kind} call stays one HEADERS frame with END_STREAM`, { timeout: TEST_TIMEOUT_MS }, async () => {
          const fake = await bench().fake(leg);
          fake.onStream(async (_s, _h, ctl) => {
            await ctl.requestEnded();
            ctl.trailersOnly(GrpcCode.FAILED_PRECONDITION, ENCODED_MESSAGE, {
              'grpc-status-details-bin': DETAILS_B64,
              'x-reason': 'quota',
            });
          });
          const session = await bench().downSession(leg);
          const result = await finish(startRawCall(session, { path }), `${kind} trailers-only`);
          assert.equal(result.trailersOnly, true, `not trailers-only: ${describeResult(result)}`);
          assert.equal(result.trailers, undefined, 'a separate trailers frame was sent');
          assert.equal(result.data.length, 0, 'DATA was sent');
          assert.equal(result.headers?.[':status'], 200);
          assert.equal(result.headers['content-type'], 'application/grpc');
          assert.equal(result.headers['grpc-status'], String(GrpcCode.FAILED_PRECONDITION));
          assert.equal(result.headers['grpc-message'], ENCODED_MESSAGE);
          assert.equal(result.headers['grpc-status-details-bin'], DETAILS_B64);
          assert.equal(result.headers['x-reason'], 'quota');
          assert.equal(result.rstCode, 0, 'the stream was reset instead of ended');
        });
      }

      test('a grpc-js unary call reads the trailers-only status, message and -bin details', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream(async (_s, _h, ctl) => {
          await ctl.requestEnded();
          ctl.trailersOnly(GrpcCode.FAILED_PRECONDITION, ENCODED_MESSAGE, { 'grpc-status-details-bin': DETAILS_B64 });
        });
        const result = await within(sayHello(bench().grpcClient(leg), 'x'), DEFAULT_LIMIT_MS, 'grpc-js SayHello');
        assert.equal(result.status.code, GrpcCode.FAILED_PRECONDITION);
        assert.equal(result.status.details, DECODED_MESSAGE);
        assert.equal(result.headers, undefined, 'grpc-js saw response headers: not trailers-only');
        assert.deepEqual(result.status.metadata.get('grpc-status-details-bin')[0], DETAILS);
      });

      test('a grpc-js server stream that fails at once gets the status and no message', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream(async (_s, _h, ctl) => {
          await ctl.requestEnded();
          ctl.trailersOnly(GrpcCode.PERMISSION_DENIED, ENCODED_MESSAGE);
        });
        const result = await within(sayHelloServerStream(bench().grpcClient(leg), 'x'), DEFAULT_LIMIT_MS, 'grpc-js server stream');
        assert.equal(result.status.code, GrpcCode.PERMISSION_DENIED);
        assert.equal(result.status.details, DECODED_MESSAGE);
        assert.deepEqual(result.messages, []);
      });

      test('trailers after messages keep grpc-message and -bin values byte for byte', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream(async (_s, _h, ctl) => {
          await ctl.requestEnded();
          ctl.respond({ 'x-trace-bin': TRACE_B64 });
          await ctl.writeMessage('one');
          await ctl.writeMessage('two');
          ctl.sendTrailers({
            'grpc-status': String(GrpcCode.INVALID_ARGUMENT),
            'grpc-message': ENCODED_MESSAGE,
            'grpc-status-details-bin': DETAILS_B64,
            'x-trace-bin': TRACE_B64,
          });
        });
        const session = await bench().downSession(leg);
        const result = await finish(startRawCall(session, { path: SERVER_STREAM }), 'server stream with trailers');
        assert.equal(result.trailersOnly, false);
        assert.equal(result.headers?.['x-trace-bin'], TRACE_B64);
        assert.deepEqual(result.messages.map(decodeHelloMessage), ['one', 'two']);
        assert.equal(result.trailers?.['grpc-status'], String(GrpcCode.INVALID_ARGUMENT), describeResult(result));
        assert.equal(result.trailers['grpc-message'], ENCODED_MESSAGE);
        assert.equal(result.trailers['grpc-status-details-bin'], DETAILS_B64);
        assert.equal(result.trailers['x-trace-bin'], TRACE_B64);
      });

      test('a grpc-js server stream gets its messages, then the status and -bin trailers', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream(async (_s, _h, ctl) => {
          await ctl.requestEnded();
          await ctl.writeMessage('one');
          await ctl.writeMessage('two');
          ctl.sendTrailers({ 'grpc-status': '0', 'x-trace-bin': TRACE_B64 });
        });
        const result = await within(sayHelloServerStream(bench().grpcClient(leg), 'x'), DEFAULT_LIMIT_MS, 'grpc-js server stream');
        assert.equal(result.status.code, GrpcCode.OK, result.status.details);
        assert.deepEqual(result.messages, ['one', 'two']);
        assert.deepEqual(result.status.metadata.get('x-trace-bin')[0], Buffer.from(TRACE_B64, 'base64'));
      });
    });
  }
});
