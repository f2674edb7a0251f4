/**
 * Half-close and turn-taking pass through the gateway exactly when they happen (forward.ts: "the client's
 * half-close; passed on exactly when it happens"):
 *
 * - client streaming: the client sends three messages, waits until the upstream has all three, and only then
 *   half-closes. The upstream must see END_STREAM only after the client's end(), never with the messages or
 *   before (a proxy that ends the upstream request early, or holds messages back until the end, breaks every
 *   protocol that talks over a long client stream).
 * - bidirectional ping-pong: 100 rounds in which each reply must arrive before the next request is written; a
 *   gateway that buffers messages until more arrive, or until END_STREAM, deadlocks here.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status as GrpcCode, type StatusObject } from '@grpc/grpc-js';
import { startGateway, type GatewayFixture } from '../e2e/gateway-fixture.ts';
import { decodeHelloMessage, grpcFrame, helloMessage, startFakeUpstream } from '../helpers/fake-upstream.ts';
import { greeterClient, messageOf, openBidirectionalStream, startGreeterNode } from '../helpers/greeter.ts';
import { describeResult, finish, startRawCall } from '../faults/fault-kit.ts';
import { DEFAULT_LIMIT_MS, gatewaySession, TEST_TIMEOUT_MS, testResources, putRoute, waitUntil, within } from './flow-kit.ts';

const CLIENT_STREAM = '/helloworld.Greeter/SayHelloClientStream';
const ROUNDS = 100;
/** How long the client holds its half-close back after the upstream has every message: time for an early END_STREAM to show. */
const HOLD_BACK_MS = 150;

const LEGS = [
  { down: 'h2c', up: 'grpc' },
  { down: 'tls', up: 'grpcs' },
] as const;

describe('half-close and turn-taking through the gateway', { timeout: TEST_TIMEOUT_MS * 6 }, () => {
  let gw: GatewayFixture;
  const { clients, sessions, fakes, nodes, release } = testResources();

  before(async () => {
    gw = await startGateway();
  });
  afterEach(release);
  after(async () => gw.close());

  for (const leg of LEGS) {
    test(`the upstream sees END_STREAM only when the client half-closes, after all its messages, ${leg.down} → ${leg.up}`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const fake = await startFakeUpstream({ tls: leg.up === 'grpcs' });
      fakes.push(fake);
      let upstreamEndAt: number | undefined;
      let messagesAtEnd: number | undefined;
      fake.onStream(async (stream, _headers, ctl) => {
        stream.once('end', () => {
          upstreamEndAt = Date.now();
          messagesAtEnd = ctl.record.messages.length;
        });
        await ctl.requestEnded();
        await ctl.writeMessage(`got ${ctl.record.messages.length}`);
        ctl.sendTrailers();
      });
      await putRoute(gw, 'half-close', { uri: '/helloworld.Greeter/*', upstream: { scheme: fake.scheme, nodes: { [fake.address]: 1 } } });
      const session = await gatewaySession(gw, leg.down);
      sessions.push(session);

      const call = startRawCall(session, { path: CLIENT_STREAM, messages: [], end: false });
      for (const name of ['one', 'two', 'three']) call.stream.write(grpcFrame(helloMessage(name)));
      const [record] = await fake.waitForStreams(1);
      assert.ok(record !== undefined);
      await waitUntil(() => record.messages.length === 3, DEFAULT_LIMIT_MS, () => `upstream has ${record.messages.length} of 3 messages`);
      assert.equal(record.endStreamReceived, false, 'END_STREAM reached the upstream before the client half-closed');
      await sleep(HOLD_BACK_MS);
      assert.equal(record.endStreamReceived, false, 'END_STREAM reached the upstream before the client half-closed');

      const clientEndAt = Date.now();
      call.stream.end();
      await waitUntil(() => record.endStreamReceived, DEFAULT_LIMIT_MS, () => 'END_STREAM never reached the upstream after the client half-closed');
      const result = await finish(call, 'client-streaming call');
      assert.ok(upstreamEndAt !== undefined && upstreamEndAt >= clientEndAt, 'END_STREAM arrived before end() was called');
      assert.equal(messagesAtEnd, 3, 'END_STREAM came with a different number of messages');
      assert.deepEqual(record.messages.map(decodeHelloMessage), ['one', 'two', 'three']);
      assert.equal(result.grpcStatus, 0, describeResult(result));
      assert.deepEqual(result.messages.map(decodeHelloMessage), ['got 3']);
    });

    test(`a bidi ping-pong of ${ROUNDS} rounds completes, each reply before the next request, ${leg.down} → ${leg.up}`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const node = await startGreeterNode({ tls: leg.up === 'grpcs' });
      nodes.push(node);
      await putRoute(gw, 'half-close', { uri: '/helloworld.Greeter/*', upstream: { scheme: leg.up, nodes: { [node.address]: 1 } } });
      const client =
        leg.down === 'h2c' ? greeterClient(gw.h2cAddress) : greeterClient(gw.tlsAddress, { tls: { rootCert: gw.defaultCert.cert } });
      clients.push(client);

      const call = openBidirectionalStream(client);
      const replies: string[] = [];
      let wake: (() => void) | undefined;
      call.on('data', (reply: object) => {
        replies.push(messageOf(reply));
        wake?.();
      });
      call.on('error', () => undefined);
      const status = new Promise<StatusObject>((resolve) => call.once('status', resolve));
      const nextReply = async (round: number): Promise<string> => {
        if (replies.length <= round) {
          await within(
            new Promise<void>((resolve) => {
              wake = resolve;
            }),
            DEFAULT_LIMIT_MS,
            `reply ${round} (the request was written, the reply did not come back)`,
          );
        }
        wake = undefined;
        return replies[round] ?? '';
      };

      for (let round = 0; round < ROUNDS; round++) {
        assert.equal(replies.length, round, `round ${round}: ${replies.length} replies before the request was written`);
        call.write({ name: `ping ${round}` });
        assert.equal(await nextReply(round), `Hello ping ${round}`);
      }
      call.end();
      const final = await within(status, DEFAULT_LIMIT_MS, 'status after half-close');
      assert.equal(final.code, GrpcCode.OK, final.details);
      assert.equal(replies.length, ROUNDS + 1);
      assert.equal(replies[ROUNDS], 'stream ended');
    });
  }
});
