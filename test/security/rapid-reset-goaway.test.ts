/**
 * Rapid reset (CVE-2023-44487; issue #11, case 5): a client that opens streams and resets them at once made the
 * gateway forward every one of them upstream (293 k in 20 s) and tore down the gateway's own upstream connections,
 * killing legitimate long-lived streams to that node. Here one client floods HEADERS + RST_STREAM(CANCEL) pairs
 * while grpc-js clients make calls and hold a server stream open to the same upstream node; the flooding connection
 * must be closed with GOAWAY(ENHANCE_YOUR_CALM) (Envoy's premature-reset rule, defaults 500 streams / half of them),
 * far fewer streams than were sent may reach the upstream, and the legitimate calls and the long-lived stream must
 * not notice.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { constants } from 'node:http2';
import { SERVER_STREAM } from '../faults/fault-kit.ts';
import { greeterMethod } from '../helpers/greeter.ts';
import { waitUntil } from '../helpers/fake-upstream.ts';
import { BURST_STREAMS, rapidResetFlood } from './rapid-reset-flood.ts';
import { useSecurityBench } from './security-kit.ts';
import type { Client } from '@grpc/grpc-js';

const FLOOD_STREAMS = 5_000;
const FLOOD_LIMIT_MS = 15_000;
/** With the default premature-reset rule a connection is closed after 250 premature resets. */
const MAX_STREAMS_PER_ATTACK_CONNECTION = 500;
const LEGITIMATE_CALLS = 40;
/** Bursts a millisecond apart: the premature-reset rule, not node:http2's stream table, is what must trip. */
const PACE_MS = 1;
const TEST_TIMEOUT_MS = 60_000;

/** A server stream held open by the upstream after its first message; resolves with what the client saw. */
function openLongStream(client: Client): { done: Promise<{ messages: number; code: number | undefined }> } {
  const { path, requestSerialize, responseDeserialize } = greeterMethod('SayHelloServerStream');
  const call = client.makeServerStreamRequest(path, requestSerialize, responseDeserialize, { name: 'long-lived' });
  let messages = 0;
  const done = new Promise<{ messages: number; code: number | undefined }>((resolve) => {
    call.on('data', () => messages++);
    call.on('error', () => undefined); // the status says it
    call.on('status', (status: { code: number }) => resolve({ messages, code: status.code }));
  });
  return { done };
}

describe('rapid reset', { timeout: TEST_TIMEOUT_MS * 3 }, () => {
  const bench = useSecurityBench();

  test('a rapid-reset flood gets GOAWAY ENHANCE_YOUR_CALM, barely reaches the upstream, and a long-lived stream to the same node survives', { timeout: TEST_TIMEOUT_MS }, async () => {
    const b = bench();
    const long = openLongStream(b.client());
    await waitUntil(() => b.longStreams.length === 1, 5_000, () => 'the long-lived stream did not reach the upstream');
    const upstreamBefore = b.upstream.streams.length;
    const sessionsBefore = b.upstream.sessions.filter((s) => !s.closed).length;

    const [flood, failures] = await Promise.all([
      rapidResetFlood({ target: b.h2c, path: SERVER_STREAM, maxStreams: FLOOD_STREAMS, durationMs: FLOOD_LIMIT_MS, paceMs: PACE_MS }),
      b.legitimateCalls(LEGITIMATE_CALLS),
    ]);
    const reached = b.upstream.streams.length - upstreamBefore - LEGITIMATE_CALLS;
    const report = JSON.stringify({ flood, reached });

    assert.deepEqual(failures, [], `legitimate calls failed during the flood: ${report}`);
    assert.ok(flood.goawayCodes[constants.NGHTTP2_ENHANCE_YOUR_CALM] !== undefined, `no GOAWAY ENHANCE_YOUR_CALM: ${report}`);
    assert.ok(
      flood.streamsSent / flood.connections <= MAX_STREAMS_PER_ATTACK_CONNECTION + 2 * BURST_STREAMS,
      `a flooding connection got to send ${flood.streamsSent / flood.connections} streams: ${report}`,
    );
    assert.ok(reached < flood.streamsSent / 10, `${reached} of ${flood.streamsSent} reset streams reached the upstream: ${report}`);
    // The gateway's upstream connection carrying the long-lived stream is still there, and so is the stream.
    assert.equal(b.upstream.sessions.filter((s) => s.closed).length, 0, `an upstream connection was closed: ${report}`);
    assert.ok(b.upstream.sessions.filter((s) => !s.closed).length >= sessionsBefore);
    const ctl = b.longStreams[0];
    assert.ok(ctl !== undefined && !ctl.record.closed, `the long-lived stream was closed: ${report}`);
    await ctl.writeMessage('after the flood');
    ctl.sendTrailers();
    const outcome = await long.done;
    assert.deepEqual(outcome, { messages: 2, code: 0 }, 'the long-lived stream did not finish normally');
  });

  test('a rapid-reset flood over TLS gets GOAWAY ENHANCE_YOUR_CALM too, and calls go on', { timeout: TEST_TIMEOUT_MS }, async () => {
    const b = bench();
    const [flood, failures] = await Promise.all([
      rapidResetFlood({ target: b.tls, path: SERVER_STREAM, maxStreams: FLOOD_STREAMS, maxConnections: 1, durationMs: FLOOD_LIMIT_MS, paceMs: PACE_MS }),
      b.legitimateCalls(LEGITIMATE_CALLS),
    ]);
    assert.deepEqual(failures, [], `legitimate calls failed: ${JSON.stringify(flood)}`);
    assert.equal(flood.goawayCodes[constants.NGHTTP2_ENHANCE_YOUR_CALM], 1, `GOAWAY codes: ${JSON.stringify(flood.goawayCodes)}`);
    assert.ok(flood.streamsSent <= MAX_STREAMS_PER_ATTACK_CONNECTION + 2 * BURST_STREAMS, `the connection got to send ${flood.streamsSent} streams`);
  });

  test('a flood spread over several connections gets each of them closed, and calls go on', { timeout: TEST_TIMEOUT_MS }, async () => {
    const b = bench();
    const [flood, failures] = await Promise.all([
      rapidResetFlood({ target: b.h2c, path: SERVER_STREAM, maxStreams: FLOOD_STREAMS, maxConnections: 4, durationMs: FLOOD_LIMIT_MS, paceMs: PACE_MS }),
      b.legitimateCalls(LEGITIMATE_CALLS),
    ]);
    assert.deepEqual(failures, [], `legitimate calls failed: ${JSON.stringify(flood)}`);
    assert.equal(flood.connections, 4);
    assert.equal(flood.closedByServer, 4, `not every flooding connection was closed: ${JSON.stringify(flood)}`);
    assert.equal(flood.goawayCodes[constants.NGHTTP2_ENHANCE_YOUR_CALM], 4, `GOAWAY codes: ${JSON.stringify(flood.goawayCodes)}`);
  });
});
