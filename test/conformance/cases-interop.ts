/**
 * grpc's interop cases (doc/interop-test-descriptions.md) that concern a transparent proxy, with the spec's sizes,
 * headers and messages, run against the grpc-js TestService upstream through the gateway.
 *
 * Beyond the spec's client-side checks, each case also looks at what the upstream observed where that is what a
 * proxy can get wrong: that the call reached the routed upstream with its payloads, and for the cancel and
 * deadline cases that the upstream stream was reset, which only happens if the gateway propagated the client's
 * RST_STREAM.
 */
import assert from 'node:assert/strict';
import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  callMetadata,
  emptyCall,
  fullDuplexCall,
  newCallId,
  streamingInputCall,
  streamingOutputCall,
  unaryCall,
  type Outcome,
} from '../helpers/interop-client.ts';
import {
  ECHO_INITIAL_HEADER,
  ECHO_TRAILING_HEADER,
  HOLD_OPEN_HEADER,
  payloadSize,
  zeroPayload,
  type SimpleRequest,
} from '../helpers/interop-proto.ts';
import { cancelledFromOutside, summary } from '../helpers/interop-server.ts';
import { assertOk, assertStatus, assertZeros, eventually, waitForReady } from './checks.ts';
import type { ConformanceCase } from './context.ts';

export const LARGE_REQUEST = 271_828;
export const LARGE_RESPONSE = 314_159;
export const CLIENT_STREAM_SIZES = [27_182, 8, 1_828, 45_904] as const;
const CLIENT_STREAM_TOTAL = 74_922;
const SERVER_STREAM_SIZES = [31_415, 9, 2_653, 58_979] as const;
const ECHO_INITIAL_VALUE = 'test_initial_metadata_value';
const ECHO_TRAILING_VALUE = Buffer.from([0xab, 0xab, 0xab]);
const STATUS_MESSAGE = 'test status message';
const SPECIAL_STATUS_MESSAGE = '\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n';
/** cancel_after_first_response and timeout_on_sleeping_server. */
export const DUPLEX_REQUEST = 27_182;
export const DUPLEX_RESPONSE = 31_415;
/**
 * timeout_on_sleeping_server's second call: long enough for the call to reach the upstream on a ready connection
 * (well under a millisecond through the gateway on loopback), short enough to keep the case quick.
 */
const SLEEPING_DEADLINE_MS = 300;
/** RFC 9113 §7 CANCEL: the code of a reset towards the upstream when the client gave up. */
const NGHTTP2_CANCEL = 0x8;

function echoMetadata(callId: string): ReturnType<typeof callMetadata> {
  return callMetadata(callId, { [ECHO_INITIAL_HEADER]: ECHO_INITIAL_VALUE, [ECHO_TRAILING_HEADER]: ECHO_TRAILING_VALUE });
}

function assertEchoed(outcome: Outcome<unknown>): void {
  assert.deepEqual(outcome.headers?.get(ECHO_INITIAL_HEADER), [ECHO_INITIAL_VALUE], 'initial metadata echo');
  assert.deepEqual(outcome.status.metadata.get(ECHO_TRAILING_HEADER), [ECHO_TRAILING_VALUE], 'trailing metadata echo');
}

/** Asks the upstream to hold the call open until it is cancelled (see interop-server.ts for why). */
function holdOpen(callId: string): ReturnType<typeof callMetadata> {
  return callMetadata(callId, { [HOLD_OPEN_HEADER]: '1' });
}

export const INTEROP_CASES: readonly ConformanceCase[] = [
  {
    name: 'empty_unary',
    async run(ctx) {
      const id = newCallId();
      const outcome = await emptyCall(ctx.client('interop'), 'EmptyCall', callMetadata(id));
      assertOk(outcome);
      assert.equal(outcome.messages.length, 1);
      assert.equal(ctx.upstream.callsWithId(id).length, 1, 'the route sent the call to this upstream');
    },
  },
  {
    name: 'large_unary',
    async run(ctx) {
      const id = newCallId();
      const request: SimpleRequest = { response_size: LARGE_RESPONSE, payload: zeroPayload(LARGE_REQUEST) };
      const outcome = await unaryCall(ctx.client('interop'), request, callMetadata(id));
      assertOk(outcome);
      assertZeros(outcome.messages[0]?.payload, LARGE_RESPONSE);
      assert.deepEqual(ctx.upstream.callsWithId(id)[0]?.requestSizes, [LARGE_REQUEST]);
    },
  },
  {
    name: 'client_streaming',
    async run(ctx) {
      const id = newCallId();
      const input = streamingInputCall(ctx.client('interop'), callMetadata(id));
      for (const size of CLIENT_STREAM_SIZES) input.write({ payload: zeroPayload(size) });
      input.call.end();
      const outcome = await input.outcome;
      assertOk(outcome);
      assert.equal(outcome.messages[0]?.aggregated_payload_size, CLIENT_STREAM_TOTAL);
      assert.deepEqual(ctx.upstream.callsWithId(id)[0]?.requestSizes, [...CLIENT_STREAM_SIZES]);
    },
  },
  {
    name: 'server_streaming',
    async run(ctx) {
      const request = { response_parameters: SERVER_STREAM_SIZES.map((size) => ({ size })) };
      const outcome = await streamingOutputCall(ctx.client('interop'), request, callMetadata(newCallId()));
      assertOk(outcome);
      assert.deepEqual(outcome.messages.map(payloadSize), [...SERVER_STREAM_SIZES]);
      outcome.messages.forEach((m, i) => assertZeros(m.payload, SERVER_STREAM_SIZES[i] ?? 0));
    },
  },
  {
    name: 'ping_pong',
    async run(ctx) {
      const duplex = fullDuplexCall(ctx.client('interop'), callMetadata(newCallId()));
      for (const [i, requestSize] of CLIENT_STREAM_SIZES.entries()) {
        const responseSize = SERVER_STREAM_SIZES[i] ?? 0;
        duplex.write({ response_parameters: [{ size: responseSize }], payload: zeroPayload(requestSize) });
        // The reply must arrive while the request stream is still open: a buffering proxy deadlocks here.
        assertZeros((await duplex.next()).payload, responseSize);
      }
      duplex.call.end();
      const outcome = await duplex.outcome;
      assertOk(outcome);
      assert.equal(outcome.messages.length, CLIENT_STREAM_SIZES.length);
    },
  },
  {
    name: 'empty_stream',
    async run(ctx) {
      const id = newCallId();
      const duplex = fullDuplexCall(ctx.client('interop'), callMetadata(id));
      duplex.call.end();
      const outcome = await duplex.outcome;
      assertOk(outcome);
      assert.equal(outcome.messages.length, 0);
      const observed = await ctx.upstream.waitForCall(id, (c) => c.halfClosed, 'the half-close');
      assert.deepEqual(observed.requestSizes, []);
    },
  },
  {
    name: 'custom_metadata',
    async run(ctx) {
      const request = { response_size: LARGE_RESPONSE, payload: zeroPayload(LARGE_REQUEST) };
      const unary = await unaryCall(ctx.client('interop'), request, echoMetadata(newCallId()));
      assertOk(unary);
      assertEchoed(unary);

      const duplex = fullDuplexCall(ctx.client('interop'), echoMetadata(newCallId()));
      duplex.write({ response_parameters: [{ size: LARGE_RESPONSE }], payload: zeroPayload(LARGE_REQUEST) });
      duplex.call.end();
      const streamed = await duplex.outcome;
      assertOk(streamed);
      assert.deepEqual(streamed.messages.map(payloadSize), [LARGE_RESPONSE]);
      assertEchoed(streamed);
    },
  },
  {
    name: 'status_code_and_message',
    async run(ctx) {
      const responseStatus = { code: GrpcStatus.UNKNOWN, message: STATUS_MESSAGE };
      const unary = await unaryCall(ctx.client('interop'), { response_status: responseStatus }, callMetadata(newCallId()));
      assertStatus(unary, GrpcStatus.UNKNOWN, STATUS_MESSAGE);

      const duplex = fullDuplexCall(ctx.client('interop'), callMetadata(newCallId()));
      duplex.write({ response_status: responseStatus });
      duplex.call.end();
      assertStatus(await duplex.outcome, GrpcStatus.UNKNOWN, STATUS_MESSAGE);
    },
  },
  {
    name: 'special_status_message',
    async run(ctx) {
      const responseStatus = { code: GrpcStatus.UNKNOWN, message: SPECIAL_STATUS_MESSAGE };
      const unary = await unaryCall(ctx.client('interop'), { response_status: responseStatus }, callMetadata(newCallId()));
      assertStatus(unary, GrpcStatus.UNKNOWN, SPECIAL_STATUS_MESSAGE);
    },
  },
  {
    name: 'unimplemented_method',
    async run(ctx) {
      const outcome = await emptyCall(ctx.client('interop'), 'UnimplementedCall', callMetadata(newCallId()));
      assertStatus(outcome, GrpcStatus.UNIMPLEMENTED);
      // grpc-js's own answer, passed through: the gateway routed the call (its own would say "no route matched").
      assert.match(outcome.status.details, /does not implement the method UnimplementedCall/);
    },
  },
  {
    name: 'unimplemented_service',
    async run(ctx) {
      const id = newCallId();
      const outcome = await emptyCall(ctx.client('interop'), 'UnimplementedService', callMetadata(id));
      assertStatus(outcome, GrpcStatus.UNIMPLEMENTED);
      // No route covers grpc.testing.UnimplementedService: the gateway answers itself, gRPC-shaped.
      assert.match(outcome.status.details, /no route matched \/grpc\.testing\.UnimplementedService\/UnimplementedCall/);
      assert.equal(ctx.upstream.callsWithId(id).length, 0);
    },
  },
  {
    name: 'cancel_after_begin',
    async run(ctx) {
      const id = newCallId();
      const input = streamingInputCall(ctx.client('interop'), holdOpen(id));
      // The spec cancels at once; waiting until the upstream has the stream makes the cancel's propagation visible.
      await ctx.upstream.waitForCall(id, () => true, 'the call');
      input.call.cancel();
      assertStatus(await input.outcome, GrpcStatus.CANCELLED);
      await ctx.upstream.waitForCall(id, cancelledFromOutside, 'the upstream stream reset by the gateway');
    },
  },
  {
    name: 'cancel_after_first_response',
    async run(ctx) {
      const id = newCallId();
      const duplex = fullDuplexCall(ctx.client('interop'), holdOpen(id));
      duplex.write({ response_parameters: [{ size: DUPLEX_RESPONSE }], payload: zeroPayload(DUPLEX_REQUEST) });
      assertZeros((await duplex.next()).payload, DUPLEX_RESPONSE);
      duplex.call.cancel();
      const outcome = await duplex.outcome;
      assertStatus(outcome, GrpcStatus.CANCELLED);
      assert.equal(outcome.messages.length, 1);
      await ctx.upstream.waitForCall(id, cancelledFromOutside, 'the upstream stream reset by the gateway');
    },
  },
  {
    name: 'timeout_on_sleeping_server',
    async run(ctx) {
      // The spec's call: the server "sleeps" (holds the call open), the client's deadline is 1 ms.
      const id = newCallId();
      const client = ctx.client('interop');
      const duplex = fullDuplexCall(client, holdOpen(id), { deadline: Date.now() + 1 });
      duplex.write({ payload: zeroPayload(DUPLEX_REQUEST) });
      assertStatus(await duplex.outcome, GrpcStatus.DEADLINE_EXCEEDED);
      // A call on the same connection afterwards: the gateway handles a connection's streams in order and forwards
      // them over one upstream session, so once it is answered the upstream has seen the timed-out call if it was
      // forwarded at all (a 1 ms deadline may expire before grpc-js even sends it). If it was, it must be over,
      // ended by the reset the gateway passed on or by the upstream's own timer from the forwarded grpc-timeout.
      assertOk(await emptyCall(client, 'EmptyCall', callMetadata(newCallId())));
      const open = (): object[] =>
        ctx.upstream
          .callsWithId(id)
          .filter((c) => !cancelledFromOutside(c))
          .map(summary);
      await eventually(() => open().length === 0, `the timed-out call is still open upstream: ${JSON.stringify(open())}`);
      for (const observed of ctx.upstream.callsWithId(id)) {
        assert.ok(Number.isFinite(observed.deadline), 'the upstream got the call without its grpc-timeout');
      }

      // The same with a deadline that outlives the trip, so that the upstream surely has the call when it expires.
      // The byte-level upstream sleeps without acting on grpc-timeout: a reset it sees can only come from the gateway.
      const wireClient = ctx.client('wire');
      await waitForReady(wireClient);
      const sleepingId = newCallId();
      const sleeping = fullDuplexCall(wireClient, callMetadata(sleepingId), { deadline: Date.now() + SLEEPING_DEADLINE_MS });
      sleeping.write({ payload: zeroPayload(DUPLEX_REQUEST) });
      assertStatus(await sleeping.outcome, GrpcStatus.DEADLINE_EXCEEDED);
      const upstreamCall = () => ctx.wire.callsWithId(sleepingId)[0];
      await eventually(() => upstreamCall()?.closedWith !== undefined, 'the sleeping upstream call to be closed');
      assert.equal(upstreamCall()?.closedWith, NGHTTP2_CANCEL, 'the upstream stream ended with RST_STREAM(CANCEL)');
      assert.notEqual(upstreamCall()?.requestHeaders['grpc-timeout'], undefined, 'grpc-timeout was forwarded');
    },
  },
];
