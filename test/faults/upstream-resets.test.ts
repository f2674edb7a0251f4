/**
 * An upstream that breaks the call: RST_STREAM before or after response headers, a body that ends without
 * trailers, a non-200 or non-gRPC answer. The client must always get a definite non-OK status, promptly, and the
 * messages sent before the failure (seen behind other proxies: "No status received", RST_STREAM(NO_ERROR) read
 * as a clean end, connectrpc/connect-es#1751). Statuses follow PROTOCOL-HTTP2.md ("Errors") for RST_STREAM codes
 * and doc/http-grpc-status-mapping.md for HTTP statuses; docs/proxying.md for what the gateway itself answers.
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
  H2_ERRORS,
  legName,
  type RawResult,
  SERVER_STREAM,
  startRawCall,
  TEST_TIMEOUT_MS,
  useBench,
  within,
} from './fault-kit.ts';

/** PROTOCOL-HTTP2.md "Errors": the status a client reports for an RST_STREAM from the server. */
const RST_BEFORE_HEADERS: readonly [keyof typeof H2_ERRORS, number][] = [
  ['REFUSED_STREAM', GrpcCode.UNAVAILABLE],
  ['CANCEL', GrpcCode.CANCELLED],
  ['INTERNAL_ERROR', GrpcCode.INTERNAL],
  ['ENHANCE_YOUR_CALM', GrpcCode.RESOURCE_EXHAUSTED],
];

/** doc/http-grpc-status-mapping.md. */
const HTTP_STATUSES: readonly [number, number][] = [
  [503, GrpcCode.UNAVAILABLE],
  [502, GrpcCode.UNAVAILABLE],
  [429, GrpcCode.UNAVAILABLE],
  [404, GrpcCode.UNIMPLEMENTED],
  [401, GrpcCode.UNAUTHENTICATED],
];

/** A failure the client can see: a non-zero grpc-status, or (after headers) a reset of the downstream stream. */
function assertNotOk(result: RawResult, what: string): void {
  const failed = (result.grpcStatus !== undefined && result.grpcStatus !== 0) || (result.grpcStatus === undefined && result.rstCode !== 0);
  assert.ok(failed, `${what} looked like a success or ended without a status: ${describeResult(result)}`);
}

describe('upstream resets and protocol breaks', { timeout: TEST_TIMEOUT_MS * 80 }, () => {
  const bench = useBench();

  for (const leg of ALL_LEGS) {
    describe(legName(leg), () => {
      for (const [code, expected] of RST_BEFORE_HEADERS) {
        test(`an upstream RST_STREAM ${code} before response headers becomes a trailers-only status ${expected}`, { timeout: TEST_TIMEOUT_MS }, async () => {
          const fake = await bench().fake(leg);
          fake.onStream((_s, _h, ctl) => ctl.reset(H2_ERRORS[code]));
          const session = await bench().downSession(leg);
          const result = await finish(startRawCall(session), `RST ${code}`);
          assert.equal(result.trailersOnly, true, describeResult(result));
          assert.equal(result.headers?.['content-type'], 'application/grpc');
          assert.equal(result.grpcStatus, expected, describeResult(result));
        });
      }

      test('a grpc-js call whose stream the upstream refuses gets UNAVAILABLE', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream((_s, _h, ctl) => ctl.reset(H2_ERRORS.REFUSED_STREAM));
        const result = await within(sayHello(bench().grpcClient(leg), 'x'), DEFAULT_LIMIT_MS, 'grpc-js SayHello');
        assert.equal(result.status.code, GrpcCode.UNAVAILABLE, result.status.details);
      });

      for (const code of ['INTERNAL_ERROR', 'CANCEL', 'NO_ERROR'] as const) {
        test(`an upstream RST_STREAM ${code} after two messages is a failure, with both messages delivered`, { timeout: TEST_TIMEOUT_MS }, async (t) => {
          const fake = await bench().fake(leg);
          fake.onStream(async (_s, _h, ctl) => {
            await ctl.requestEnded();
            await ctl.writeMessage('one');
            await ctl.writeMessage('two');
            ctl.reset(H2_ERRORS[code]);
          });
          const session = await bench().downSession(leg);
          const result = await finish(startRawCall(session, { path: SERVER_STREAM }), `RST ${code} mid-stream`);
          t.diagnostic(`client saw ${describeResult(result)}`);
          assert.deepEqual(result.messages.map(decodeHelloMessage), ['one', 'two'], describeResult(result));
          assertNotOk(result, `RST ${code} mid-stream`);
        });
      }

      test('a grpc-js server stream reset mid-way by the upstream never reports OK', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream(async (_s, _h, ctl) => {
          await ctl.requestEnded();
          await ctl.writeMessage('one');
          await ctl.writeMessage('two');
          ctl.reset(H2_ERRORS.NO_ERROR);
        });
        const result = await within(sayHelloServerStream(bench().grpcClient(leg), 'x'), DEFAULT_LIMIT_MS, 'grpc-js server stream');
        assert.notEqual(result.status.code, GrpcCode.OK, 'RST_STREAM(NO_ERROR) mid-stream was reported as success');
        assert.deepEqual(result.messages, ['one', 'two']);
      });

      test('an upstream that ends the body without trailers is a failure, with the message delivered', { timeout: TEST_TIMEOUT_MS }, async (t) => {
        const fake = await bench().fake(leg);
        fake.onStream(async (_s, _h, ctl) => {
          await ctl.requestEnded();
          ctl.respond({}, { trailers: false });
          await ctl.writeMessage('one');
          ctl.endWithoutTrailers();
        });
        const session = await bench().downSession(leg);
        const result = await finish(startRawCall(session, { path: SERVER_STREAM }), 'END_STREAM without trailers');
        t.diagnostic(`client saw ${describeResult(result)}`);
        assert.deepEqual(result.messages.map(decodeHelloMessage), ['one']);
        assertNotOk(result, 'END_STREAM without trailers');
        const grpcJs = await within(sayHelloServerStream(bench().grpcClient(leg), 'x'), DEFAULT_LIMIT_MS, 'grpc-js server stream');
        assert.notEqual(grpcJs.status.code, GrpcCode.OK, 'a body without trailers was reported as success');
      });

      test('an upstream that answers headers and then END_STREAM with nothing else is a failure', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream(async (_s, _h, ctl) => {
          await ctl.requestEnded();
          ctl.endWithoutTrailers();
        });
        const result = await within(sayHello(bench().grpcClient(leg), 'x'), DEFAULT_LIMIT_MS, 'grpc-js SayHello');
        assert.notEqual(result.status.code, GrpcCode.OK);
        assert.equal(result.message, undefined);
      });

      for (const [httpStatus, expected] of HTTP_STATUSES) {
        test(`an upstream HTTP ${httpStatus} with a text body becomes a trailers-only status ${expected}`, { timeout: TEST_TIMEOUT_MS }, async () => {
          const fake = await bench().fake(leg);
          fake.onStream(async (_s, _h, ctl) => {
            await ctl.requestEnded();
            ctl.respondHttp(httpStatus, 'text/html', '<html><body>upstream error</body></html>');
          });
          const session = await bench().downSession(leg);
          const result = await finish(startRawCall(session), `HTTP ${httpStatus}`);
          assert.equal(result.trailersOnly, true, describeResult(result));
          assert.equal(result.headers?.[':status'], 200);
          assert.equal(result.headers['content-type'], 'application/grpc');
          assert.equal(result.grpcStatus, expected, describeResult(result));
        });
      }

      test('an upstream HTTP 200 with a non-gRPC content type is a gRPC error, not relayed HTML', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream(async (_s, _h, ctl) => {
          await ctl.requestEnded();
          ctl.respondHttp(200, 'text/html; charset=utf-8', '<html><body>not grpc</body></html>');
        });
        const session = await bench().downSession(leg);
        const result = await finish(startRawCall(session), 'HTTP 200 text/html');
        // docs/proxying.md: "upstream answered 200 with a non-gRPC content type (an HTML error page) → INTERNAL (13)"
        // (http-grpc-status-mapping.md has no gRPC status for a 200, so a client would say UNKNOWN).
        assert.equal(result.headers?.['content-type'], 'application/grpc', `non-gRPC headers relayed: ${describeResult(result)}`);
        assert.ok(
          result.grpcStatus === GrpcCode.INTERNAL || result.grpcStatus === GrpcCode.UNKNOWN,
          `expected INTERNAL or UNKNOWN: ${describeResult(result)}`,
        );
        assert.equal(result.data.length, 0, `the HTML body was relayed as gRPC data: ${result.data.toString('latin1')}`);
        const grpcJs = await within(sayHello(bench().grpcClient(leg), 'x'), DEFAULT_LIMIT_MS, 'grpc-js SayHello');
        assert.notEqual(grpcJs.status.code, GrpcCode.OK);
      });
    });
  }
});
