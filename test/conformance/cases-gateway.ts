/**
 * Cases a gateway adds to the interop suite: that it streams (a response with intervals arrives message by
 * message), multiplexes (1,000 concurrent calls on one client connection) and keeps a long bidi stream going
 * (5,000 strict round trips), all through the grpc-js TestService upstream.
 */
import assert from 'node:assert/strict';
import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  callMetadata,
  fullDuplexCall,
  newCallId,
  statusText,
  streamingOutputCall,
  unaryCall,
} from '../helpers/interop-client.ts';
import { payloadSize, zeroPayload, type SimpleRequest } from '../helpers/interop-proto.ts';
import { assertOk, waitForReady } from './checks.ts';
import type { ConformanceCase } from './context.ts';

/** Enough messages and time between them that a proxy that buffers the response cannot pass. */
const INTERVAL_MESSAGES = 4;
const INTERVAL_US = 100_000;
const CONCURRENT_CALLS = 1_000;
const CONCURRENT_PAYLOAD = 16;
const ROUND_TRIPS = 5_000;

export const GATEWAY_CASES: readonly ConformanceCase[] = [
  {
    name: 'server_streaming_with_intervals',
    async run(ctx) {
      const id = newCallId();
      const request = {
        response_parameters: Array.from({ length: INTERVAL_MESSAGES }, () => ({ size: 9, interval_us: INTERVAL_US })),
      };
      const outcome = await streamingOutputCall(ctx.client('interop'), request, callMetadata(id));
      assertOk(outcome);
      assert.equal(outcome.messages.length, INTERVAL_MESSAGES);
      const sentAt = ctx.upstream.callsWithId(id)[0]?.sentAt ?? [];
      assert.equal(sentAt.length, INTERVAL_MESSAGES);
      const firstReceived = outcome.receivedAt[0] ?? Infinity;
      const lastSent = sentAt[INTERVAL_MESSAGES - 1] ?? -Infinity;
      // One clock (performance.now() in one process): the first message reached the client before the upstream had
      // even produced the last one, so the gateway streamed the response instead of buffering it.
      assert.ok(
        firstReceived < lastSent,
        `first message received at ${firstReceived.toFixed(1)} ms, the last sent upstream at ${lastSent.toFixed(1)} ms`,
      );
    },
  },
  {
    name: 'concurrent_calls_1000_on_one_connection',
    async run(ctx) {
      const client = ctx.freshClient('interop'); // its own subchannel pool: one HTTP/2 connection
      await waitForReady(client);
      const id = newCallId();
      const request: SimpleRequest = { response_size: CONCURRENT_PAYLOAD, payload: zeroPayload(CONCURRENT_PAYLOAD) };
      const calls = Array.from({ length: CONCURRENT_CALLS }, () => unaryCall(client, request, callMetadata(id)));
      const outcomes = await Promise.all(calls);
      const failed = outcomes.filter((o) => o.status.code !== GrpcStatus.OK);
      const first = failed[0] === undefined ? '' : statusText(failed[0].status);
      assert.equal(failed.length, 0, `${failed.length} calls failed, the first with ${first}`);
      assert.ok(outcomes.every((o) => payloadSize(o.messages[0] ?? {}) === CONCURRENT_PAYLOAD));
      assert.equal(ctx.upstream.callsWithId(id).length, CONCURRENT_CALLS);
    },
  },
  {
    name: 'bidi_5000_round_trips',
    async run(ctx) {
      const id = newCallId();
      const duplex = fullDuplexCall(ctx.client('interop'), callMetadata(id));
      for (let i = 0; i < ROUND_TRIPS; i += 1) {
        duplex.write({ response_parameters: [{ size: 1 }], payload: zeroPayload(1) });
        const reply = await duplex.next();
        if (payloadSize(reply) !== 1) assert.fail(`round trip ${i}: a reply of ${payloadSize(reply)} bytes`);
      }
      duplex.call.end();
      const outcome = await duplex.outcome;
      assertOk(outcome);
      assert.equal(outcome.messages.length, ROUND_TRIPS);
      assert.equal(ctx.upstream.callsWithId(id)[0]?.requestSizes.length, ROUND_TRIPS);
    },
  },
];
