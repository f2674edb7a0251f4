/**
 * Streams and header blocks one connection may open (issue #11, case 3): the gateway advertised neither
 * SETTINGS_MAX_CONCURRENT_STREAMS nor MAX_HEADER_LIST_SIZE, and one connection opened ~11,700 streams, all forwarded
 * upstream. Now both listeners advertise both (defaults: 128 streams as nginx, 32 KiB as nginx's
 * large_client_header_buffers), streams above the limit are refused before they reach the upstream (counted at a
 * fake upstream that holds every stream open), and an oversized header block is refused. grpc-js calls on other
 * connections go on meanwhile.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { constants } from 'node:http2';
import { DEFAULT_MAX_CONCURRENT_STREAMS, DEFAULT_MAX_HEADER_LIST_SIZE } from '../../shared/config-http2.ts';
import { SAY_HELLO, SERVER_STREAM } from '../faults/fault-kit.ts';
import { waitUntil } from '../helpers/fake-upstream.ts';
import { AttackClient, FrameType, SettingId, grpcRequestHeaders } from './h2-attack-client.ts';
import { streamRequest } from './non-reading-client.ts';
import { useSecurityBench, type SecurityBench } from './security-kit.ts';

const OVER_LIMIT_STREAMS = 200;
/** How long the test lets refused streams settle before counting what reached the upstream. */
const SETTLE_MS = 500;
const TEST_TIMEOUT_MS = 30_000;

/** Opens `count` held server streams on `client` in one write; returns their ids. */
function openHeldStreams(client: AttackClient, b: SecurityBench, count: number): number[] {
  const headers = grpcRequestHeaders(b.h2c.address, SERVER_STREAM);
  const ids = Array.from({ length: count }, (_, i) => 1 + 2 * i);
  client.batch(() => {
    for (const id of ids) {
      client.headers(id, headers);
      client.data(id, streamRequest(1, 1), true);
    }
  });
  return ids;
}

/** Held server streams the upstream saw since `before` (the legitimate calls are SayHello). */
function heldStreamsSince(b: SecurityBench, before: number): number {
  return b.upstream.streams.slice(before).filter((s) => s.headers[':path'] === SERVER_STREAM).length;
}

describe('stream limits per connection', { timeout: TEST_TIMEOUT_MS * 5 }, () => {
  const bench = useSecurityBench();

  for (const kind of ['h2c', 'tls'] as const) {
    test(`the ${kind} listener advertises SETTINGS_MAX_CONCURRENT_STREAMS and SETTINGS_MAX_HEADER_LIST_SIZE`, async () => {
      const client = await AttackClient.open(bench()[kind]);
      try {
        await client.waitForSettings();
        const settings = client.serverSettings();
        assert.equal(settings.get(SettingId.MAX_CONCURRENT_STREAMS), DEFAULT_MAX_CONCURRENT_STREAMS);
        assert.equal(settings.get(SettingId.MAX_HEADER_LIST_SIZE), DEFAULT_MAX_HEADER_LIST_SIZE);
      } finally {
        client.destroy();
      }
    });
  }

  test('streams above max_concurrent_streams get REFUSED_STREAM and never reach the upstream', { timeout: TEST_TIMEOUT_MS }, async () => {
    const b = bench();
    const before = b.upstream.streams.length;
    // Sent with the preface, before the client acknowledged the server's SETTINGS: a client in a hurry.
    const client = await AttackClient.open(b.h2c);
    try {
      const [, failures] = await Promise.all([
        (async () => {
          openHeldStreams(client, b, OVER_LIMIT_STREAMS);
          await waitUntil(() => heldStreamsSince(b, before) >= DEFAULT_MAX_CONCURRENT_STREAMS || client.closed, 10_000, () => `upstream saw ${heldStreamsSince(b, before)}`);
          await sleep(SETTLE_MS);
        })(),
        b.legitimateCalls(20),
      ]);
      const reached = heldStreamsSince(b, before);
      const refused = client.received(FrameType.RST_STREAM).filter((f) => f.payload.readUInt32BE(0) === constants.NGHTTP2_REFUSED_STREAM);
      assert.deepEqual(failures, [], 'legitimate calls on another connection failed');
      assert.equal(reached, DEFAULT_MAX_CONCURRENT_STREAMS, `the upstream saw ${reached} streams (${client.summary()})`);
      assert.equal(refused.length, OVER_LIMIT_STREAMS - DEFAULT_MAX_CONCURRENT_STREAMS, `refused: ${refused.length} (${client.summary()})`);
      // The refused ones are exactly those above the limit, and the connection itself is fine.
      assert.ok(refused.every((f) => f.streamId > 2 * DEFAULT_MAX_CONCURRENT_STREAMS - 1));
      assert.equal(client.goaway(), undefined);
    } finally {
      client.destroy();
    }
    await b.upstream.waitForAllClosed(10_000);
  });

  test('a client that ignores an acknowledged stream limit is refused or cut off, and the upstream sees at most the limit', { timeout: TEST_TIMEOUT_MS }, async () => {
    const b = bench();
    const before = b.upstream.streams.length;
    const client = await AttackClient.open(b.h2c);
    try {
      await client.waitForSettings();
      await sleep(100); // our ACK of the server's SETTINGS is on its way and processed first
      const [, failures] = await Promise.all([
        (async () => {
          openHeldStreams(client, b, OVER_LIMIT_STREAMS);
          await client.waitFor(() => client.closed || client.goaway() !== undefined || client.received(FrameType.RST_STREAM).length > 0, 'no refusal');
          await sleep(SETTLE_MS);
        })(),
        b.legitimateCalls(20),
      ]);
      const reached = heldStreamsSince(b, before);
      assert.deepEqual(failures, [], 'legitimate calls on another connection failed');
      assert.ok(reached <= DEFAULT_MAX_CONCURRENT_STREAMS, `the upstream saw ${reached} streams (${client.summary()})`);
      const goaway = client.goaway();
      const refused = client.received(FrameType.RST_STREAM).filter((f) => f.payload.readUInt32BE(0) === constants.NGHTTP2_REFUSED_STREAM).length;
      // RFC 9113 §5.1.2 allows a stream error (REFUSED_STREAM); nghttp2 makes it a connection error (PROTOCOL_ERROR).
      assert.ok(
        refused === OVER_LIMIT_STREAMS - DEFAULT_MAX_CONCURRENT_STREAMS || goaway?.code === constants.NGHTTP2_PROTOCOL_ERROR,
        `neither REFUSED_STREAM for every stream above the limit nor GOAWAY(PROTOCOL_ERROR): ${client.summary()}`,
      );
    } finally {
      client.destroy();
    }
    await b.upstream.waitForAllClosed(10_000);
  });

  test('a header list above max_header_list_size is refused and never reaches the upstream', { timeout: TEST_TIMEOUT_MS }, async () => {
    const b = bench();
    const client = await AttackClient.open(b.h2c);
    try {
      await client.waitForSettings();
      const big = 'x'.repeat(DEFAULT_MAX_HEADER_LIST_SIZE + 1024);
      client.headers(1, grpcRequestHeaders(b.h2c.address, SAY_HELLO, [['x-oversized', big]]));
      client.data(1, streamRequest(1, 1), true);
      await client.waitFor(() => client.streamEnded(1) || client.closed, 'the oversized stream was neither answered nor refused');
      assert.ok(client.rstCode(1) !== undefined || client.closed, `the oversized stream was not refused: ${client.summary()}`);
      // Nothing carrying the header went upstream; a normal call afterwards still works.
      assert.equal(b.upstream.streams.filter((s) => s.headers['x-oversized'] !== undefined).length, 0);
      assert.deepEqual(await b.legitimateCalls(4), []);
    } finally {
      client.destroy();
    }
  });
});
