/**
 * Issue #17's HTTP/1.1 path (grpc-web and grpc-transcode on the gRPC listeners) attacked at the byte level, each
 * attack beside legitimate clients (a grpc-js call over HTTP/2 and a raw grpc-web call over HTTP/1.1) that must
 * succeed: slowloris heads and stalled keep-alive connections (client_header_timeout, keepalive_timeout),
 * oversized heads (431), malformed and smuggling requests (400, connection closed, nothing forwarded), request and
 * response flow control against a 256 MiB body and endless streams to a client that never reads (grpc-web binary
 * and text, transcoded NDJSON), transcoding's body cap (413), hostile nesting (400) and 1-byte chunks, invalid
 * grpc-web-text bodies (INTERNAL; the upstream gets no message, or its call is cancelled), and 500 concurrent
 * connections that leave nothing behind. Two gateway bugs it found are regression tests at the end. The data plane runs in-process from a standalone YAML file with small timeouts; every wait is
 * bounded and no assertion depends on timing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { frame, helloMessage, helloText, parseWebBody } from '../helpers/grpc-web-raw.ts';
import { dialRaw, type RawDial } from './connection-kit.ts';
import {
  acceptedConnections,
  activeConnectionsAtMost,
  CAPPED_HTTP,
  completeResponse,
  deafClient,
  DEFAULT_LIMIT_MS,
  EARLY,
  ECHO_GRPC,
  ECHO_HTTP,
  ENDLESS,
  firehose,
  FLOOD_GRPC,
  FLOOD_HTTP,
  grpcWebCallSucceeds,
  HOLD,
  KiB,
  legitimateCallsSucceed,
  liveArrayBufferBytes,
  MiB,
  NO_READ,
  parseResponse,
  requestHead,
  SAY_HELLO,
  startWebGateway,
  untilStable,
  waitUntil,
  WEB_BINARY,
  WEB_TEXT,
  type Flood,
  type WebGateway,
} from './http1-web-kit.ts';

const HEADER_TIMEOUT_MS = 1000;
const BODY_TIMEOUT_MS = 1000;
const KEEPALIVE_TIMEOUT_MS = 1000;
/** Per-test backstop for node:test, above every bounded wait inside a test. */
const TEST_TIMEOUT_MS = 30_000;
/** Bounded waits for a connection the gateway should close by a timeout: several times the timeout. */
const CLOSE_LIMIT_MS = 8_000;
const SLOWLORIS_CONNECTIONS = 200;
const CONCURRENT_CONNECTIONS = 500;
/** The request body streamed at an upstream that never reads it. */
const HUGE_BODY_BYTES = 256 * MiB;
/**
 * What a held-back peer may have got through: kernel socket buffers on loopback (a few MiB each way), the
 * HTTP/2 windows of the upstream leg, node:http's and the link's buffers. Far below the bodies and streams sent.
 */
const HELD_BACK_BYTES = 16 * MiB;
/** Memory growth allowed while a peer is held back: generous against HELD_BACK_BYTES, far below the 256 MiB sent. */
const MEMORY_GROWTH_BYTES = 64 * MiB;
/** A count that has not changed for this long is one the gateway holds back. */
const QUIET_MS = 1000;
const STABLE_LIMIT_MS = 15_000;
/** The transcoding bodies sent past the caps. */
const OVER_CAP_BODY_BYTES = 256 * MiB;
const NESTING_LEVELS = 100_000;
/** How often live memory is sampled while a body streams (each sample is a full garbage collection). */
const MEMORY_SAMPLE_MS = 100;
/** RST_STREAM CANCEL (RFC 9113 §7): what the gateway resets an upstream stream with when the call is abandoned. */
const CANCEL = 8;
/** A request the malformed cases append: served, it would reach the fake upstream at this path. */
const SMUGGLED = '/fake.Web/Smuggled';

const binaryRequest = (path: string, name: string): Buffer => {
  const body = frame(helloMessage(name));
  return Buffer.concat([requestHead('POST', path, [['Content-Type', WEB_BINARY], ['Content-Length', String(body.length)]]), body]);
};

describe('HTTP/1.1 grpc-web and transcoding under attack', { timeout: 240_000 }, () => {
  let gw: WebGateway;

  before(async () => {
    gw = await startWebGateway({ headerMs: HEADER_TIMEOUT_MS, keepaliveMs: KEEPALIVE_TIMEOUT_MS, bodyMs: BODY_TIMEOUT_MS });
    await legitimateCallsSucceed(gw, 'warm-up');
  });
  after(async () => (gw as WebGateway | undefined)?.close()); // unset when before() failed

  const upstreamStreamsTo = (path: string): number => gw.fake.streams.filter((s) => s.headers[':path'] === path).length;

  // ---- 1, 2: timeouts ---------------------------------------------------------------------------------------------

  describe('slowloris and idle keep-alive connections', () => {
    const partialHead = Buffer.from(`POST ${SAY_HELLO} HTTP/1.1\r\nHost: x\r\n`, 'latin1');

    test('a connection that sends part of a request head and stalls is closed by client_header_timeout', { timeout: TEST_TIMEOUT_MS }, async () => {
      const dial = await dialRaw(gw.port, { first: partialHead });
      try {
        await legitimateCallsSucceed(gw, 'beside one slowloris');
        await dial.waitClosed('a connection stalled inside its request head', CLOSE_LIMIT_MS);
        assert.equal(dial.received().length, 0, 'an unfinished head gets no answer, only the close');
      } finally {
        dial.destroy();
      }
    });

    test(`${SLOWLORIS_CONNECTIONS} slowloris connections at once are all closed and the worker keeps serving`, { timeout: TEST_TIMEOUT_MS }, async (t) => {
      const dials: RawDial[] = [];
      try {
        for (let i = 0; i < SLOWLORIS_CONNECTIONS; i += 50) {
          dials.push(...(await Promise.all(Array.from({ length: Math.min(50, SLOWLORIS_CONNECTIONS - i) }, () => dialRaw(gw.port, { first: partialHead })))));
        }
        await legitimateCallsSucceed(gw, 'beside 200 slowloris');
        await waitUntil(() => dials.every((d) => d.closed), CLOSE_LIMIT_MS, () => `${dials.filter((d) => !d.closed).length} of ${SLOWLORIS_CONNECTIONS} slowloris connections still open`);
        await legitimateCallsSucceed(gw, 'after 200 slowloris');
        const active = await activeConnectionsAtMost(gw.plane, 1);
        assert.ok(active <= 1, `the data plane still counts ${active} connections after the slowloris closed`);
        t.diagnostic(`active connections after ${SLOWLORIS_CONNECTIONS} slowloris closed: ${active}`);
      } finally {
        for (const dial of dials) dial.destroy();
      }
    });

    test('a keep-alive connection idle after a grpc-web request is closed after keepalive_timeout', { timeout: TEST_TIMEOUT_MS }, async () => {
      const dial = await dialRaw(gw.port, { first: binaryRequest(SAY_HELLO, 'kept alive') });
      try {
        const answer = await completeResponse(() => dial.received(), 'a keep-alive grpc-web request');
        assert.equal(answer.status, 200);
        assert.notEqual(answer.headers['connection'], 'close', 'the answer keeps the connection for another request');
        assert.deepEqual(parseWebBody(answer.body ?? Buffer.alloc(0)).messages.map(helloText), ['Hello kept alive']);
        await legitimateCallsSucceed(gw, 'beside an idle keep-alive connection');
        await dial.waitClosed('a keep-alive connection idle past keepalive_timeout', CLOSE_LIMIT_MS);
        assert.equal(parseResponse(dial.received())?.rest.length, 0, 'nothing was sent after the answer');
      } finally {
        dial.destroy();
      }
    });

    test('a request body that stops arriving is answered 408 after client_body_timeout, and its upstream call cancelled', { timeout: TEST_TIMEOUT_MS }, async () => {
      const before = upstreamStreamsTo(HOLD);
      const body = frame(helloMessage('x'.repeat(90)));
      const dial = await dialRaw(gw.port, { first: Buffer.concat([requestHead('POST', HOLD, [['Content-Type', WEB_BINARY], ['Content-Length', String(body.length)]]), body.subarray(0, 8)]) });
      try {
        await legitimateCallsSucceed(gw, 'beside a stalled body');
        const answer = await completeResponse(() => dial.received(), 'a request whose body stalled', CLOSE_LIMIT_MS);
        assert.equal(answer.status, 408);
        await dial.waitClosed('a connection whose body stalled', CLOSE_LIMIT_MS);
        const reached = gw.fake.streams.filter((s) => s.headers[':path'] === HOLD).slice(before);
        await waitUntil(() => reached.every((s) => s.closed), DEFAULT_LIMIT_MS, () => 'the upstream stream of the stalled request was left open');
        assert.deepEqual(reached.map((s) => s.rstCode), reached.map(() => CANCEL), 'the upstream call is cancelled');
      } finally {
        dial.destroy();
      }
    });

    test('a keep-alive connection that starts a second request head and stalls is closed', { timeout: TEST_TIMEOUT_MS }, async () => {
      const dial = await dialRaw(gw.port, { first: binaryRequest(SAY_HELLO, 'first') });
      try {
        const answer = await completeResponse(() => dial.received(), 'the first request of the connection');
        assert.equal(answer.status, 200);
        dial.socket.write(partialHead);
        await legitimateCallsSucceed(gw, 'beside a stalled second head');
        await dial.waitClosed('a keep-alive connection stalled inside its second request head', CLOSE_LIMIT_MS);
        assert.equal(parseResponse(dial.received())?.rest.length, 0, 'the stalled second head got no answer');
      } finally {
        dial.destroy();
      }
    });
  });

  // ---- 3, 4: request heads the parser refuses -------------------------------------------------------------------

  describe('oversized and malformed requests', () => {
    /** Writes `bytes`, runs legitimate calls meanwhile, and returns the answer of a connection that must close. */
    const refusedBesideLegitimateCalls = async (bytes: Buffer, what: string): Promise<{ status: number; headers: Record<string, string>; extra: number }> => {
      const dial = await dialRaw(gw.port, { first: bytes });
      try {
        await legitimateCallsSucceed(gw, `beside ${what}`);
        await dial.waitClosed(what);
        const answer = parseResponse(dial.received());
        assert.ok(answer !== undefined, `${what}: the connection closed without an answer: ${JSON.stringify(dial.received().toString('latin1'))}`);
        return { status: answer.status, headers: answer.headers, extra: answer.rest.length };
      } finally {
        dial.destroy();
      }
    };

    test('200 KiB of request headers get 431 and the connection closes', { timeout: TEST_TIMEOUT_MS }, async () => {
      const pad = Array.from({ length: 2000 }, (_, i) => `X-Pad-${i}: ${'a'.repeat(90)}\r\n`).join('');
      const bytes = Buffer.from(`POST ${SAY_HELLO} HTTP/1.1\r\nHost: x\r\nContent-Type: ${WEB_BINARY}\r\n${pad}\r\n`, 'latin1');
      assert.ok(bytes.length > 200 * KiB);
      const answer = await refusedBesideLegitimateCalls(bytes, 'a 200 KiB request head');
      assert.equal(answer.status, 431);
      assert.equal(answer.headers['connection'], 'close');
      await legitimateCallsSucceed(gw, 'after a 200 KiB head');
    });

    test('a 200 KiB request line gets 431 and the connection closes', { timeout: TEST_TIMEOUT_MS }, async () => {
      const bytes = Buffer.from(`POST /helloworld.Greeter/${'a'.repeat(200 * KiB)} HTTP/1.1\r\nHost: x\r\nContent-Type: ${WEB_BINARY}\r\n\r\n`, 'latin1');
      const answer = await refusedBesideLegitimateCalls(bytes, 'a 200 KiB request line');
      assert.ok([414, 431].includes(answer.status), `status ${answer.status}`);
      assert.equal(answer.headers['connection'], 'close');
      await legitimateCallsSucceed(gw, 'after a 200 KiB request line');
    });

    const smuggled = requestHead('POST', SMUGGLED, [['Content-Type', WEB_BINARY], ['Content-Length', '0']]);
    const web = `Content-Type: ${WEB_BINARY}\r\n`;
    const malformed: [string, string][] = [
      ['garbage after a valid method', `POST \x7f\x01garbage HTTP/1.1\r\nHost: x\r\n\r\n`],
      ['control characters as a header name', `POST ${HOLD} HTTP/1.1\r\nHost: x\r\n\x01\x02: y\r\n${web}\r\n`],
      ['both Content-Length and Transfer-Encoding (request smuggling)', `POST ${HOLD} HTTP/1.1\r\nHost: x\r\n${web}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
      ['a Transfer-Encoding whose last coding is not chunked', `POST ${HOLD} HTTP/1.1\r\nHost: x\r\n${web}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`],
      ['a negative Content-Length', `POST ${HOLD} HTTP/1.1\r\nHost: x\r\n${web}Content-Length: -1\r\n\r\n`],
      ['a Content-Length beyond 2^64', `POST ${HOLD} HTTP/1.1\r\nHost: x\r\n${web}Content-Length: 99999999999999999999999\r\n\r\n`],
      ['two different Content-Lengths', `POST ${HOLD} HTTP/1.1\r\nHost: x\r\n${web}Content-Length: 1\r\nContent-Length: 2\r\n\r\nab`],
    ];
    for (const [what, head] of malformed) {
      test(`${what}: 400, the connection closes, and neither it nor a request after it is forwarded`, { timeout: TEST_TIMEOUT_MS }, async () => {
        const held = upstreamStreamsTo(HOLD);
        const answer = await refusedBesideLegitimateCalls(Buffer.concat([Buffer.from(head, 'latin1'), smuggled]), what);
        assert.equal(answer.status, 400);
        assert.equal(answer.headers['connection'], 'close');
        assert.equal(answer.extra, 0, 'one answer, nothing after it');
        assert.equal(upstreamStreamsTo(HOLD), held, 'the malformed request never reached the upstream');
        assert.equal(upstreamStreamsTo(SMUGGLED), 0, 'the request after it was never served');
      });
    }

    test('invalid chunked encoding in a body already forwarded: 400, the connection closes, the upstream stream is reset', { timeout: TEST_TIMEOUT_MS }, async () => {
      const before = gw.fake.streams.length;
      const dial = await dialRaw(gw.port, { first: requestHead('POST', HOLD, [['Content-Type', WEB_BINARY], ['Transfer-Encoding', 'chunked']]) });
      try {
        const [upstream] = (await gw.fake.waitForStreams(before + 1)).slice(before);
        assert.equal(upstream?.headers[':path'], HOLD);
        dial.socket.write(Buffer.concat([Buffer.from('zz\r\nabc\r\n', 'latin1'), smuggled]));
        await legitimateCallsSucceed(gw, 'beside invalid chunked encoding');
        await dial.waitClosed('a request with invalid chunked encoding');
        const answer = parseResponse(dial.received());
        assert.equal(answer?.status, 400, JSON.stringify(dial.received().toString('latin1')));
        await waitUntil(() => upstream.closed, DEFAULT_LIMIT_MS, () => 'the upstream stream of the broken request was left open');
        assert.equal(upstream.resetByPeer, true, 'the gateway reset the upstream stream');
        assert.equal(upstream.rstCode, CANCEL);
        assert.equal(upstreamStreamsTo(SMUGGLED), 0);
      } finally {
        dial.destroy();
      }
    });
  });

  // ---- 5, 6: flow control -----------------------------------------------------------------------------------------

  describe('flow control', () => {
    test('a 256 MiB grpc-web body to an upstream that never reads is held back by TCP, not buffered', { timeout: TEST_TIMEOUT_MS }, async (t) => {
      const before = gw.fake.streams.length;
      const memory = liveArrayBufferBytes();
      const rss = process.memoryUsage().rss;
      const frameHeader = Buffer.alloc(5);
      frameHeader.writeUInt32BE(HUGE_BODY_BYTES - 5, 1);
      const head = Buffer.concat([requestHead('POST', NO_READ, [['Content-Type', WEB_BINARY], ['Content-Length', String(HUGE_BODY_BYTES)]]), frameHeader]);
      const client = await firehose(gw.port, head, HUGE_BODY_BYTES - 5);
      try {
        const [upstream] = (await gw.fake.waitForStreams(before + 1)).slice(before);
        assert.equal(upstream?.headers[':path'], NO_READ);
        const held = await untilStable(() => client.accepted(), { quietMs: QUIET_MS, limitMs: STABLE_LIMIT_MS, cap: HUGE_BODY_BYTES });
        const growth = liveArrayBufferBytes() - memory;
        const rssGrowth = process.memoryUsage().rss - rss;
        t.diagnostic(`request body held back: ${(held.value / MiB).toFixed(2)} MiB of ${HUGE_BODY_BYTES / MiB} MiB accepted; live arrayBuffers +${(growth / MiB).toFixed(1)} MiB, rss +${(rssGrowth / MiB).toFixed(1)} MiB`);
        assert.ok(held.stable, `the gateway kept taking the body: ${(held.value / MiB).toFixed(1)} MiB accepted`);
        assert.ok(held.value < HELD_BACK_BYTES, `the gateway took ${(held.value / MiB).toFixed(1)} MiB of a body its upstream never reads`);
        assert.ok(growth < MEMORY_GROWTH_BYTES, `memory grew by ${(growth / MiB).toFixed(1)} MiB while the body was held back`);
        assert.ok(rssGrowth < 2 * MEMORY_GROWTH_BYTES, `rss grew by ${(rssGrowth / MiB).toFixed(1)} MiB while the body was held back`);
        assert.equal(client.closed, false, 'the client is held back, not cut off');
        await legitimateCallsSucceed(gw, 'beside a held-back 256 MiB body');
        // The client goes. Its FIN waits behind the body bytes its kernel still holds (the gateway's receive window
        // is closed), so the gateway notices only when it reads again: once the upstream reads.
        client.destroy();
        gw.releaseNoRead();
        await waitUntil(() => upstream.closed, DEFAULT_LIMIT_MS, () => `the upstream stream was left open after its client went (${upstream.bytesReceived} bytes read)`);
        assert.ok(upstream.bytesReceived < HUGE_BODY_BYTES, 'the upstream did not get a body its client never sent');
        assert.equal(upstream.resetByPeer, true, 'the gateway cancelled the upstream call of the client that went');
      } finally {
        client.destroy();
      }
    });

    /** A client that never reads asks for an endless stream: the upstream must be held back. */
    const endlessHeldBack = async (request: Buffer, path: string, what: string, diagnostic: (message: string) => void): Promise<void> => {
      const floods = gw.floods.length;
      const memory = liveArrayBufferBytes();
      const socket = await deafClient(gw.port, request);
      try {
        await waitUntil(() => gw.floods.length > floods, DEFAULT_LIMIT_MS, () => `the ${what} never reached the upstream`);
        const flood = gw.floods[floods] as Flood;
        assert.equal(flood.path, path);
        const held = await untilStable(() => flood.written, { quietMs: QUIET_MS, limitMs: STABLE_LIMIT_MS, cap: 256 * MiB });
        const growth = liveArrayBufferBytes() - memory;
        diagnostic(`${what}: upstream wrote ${(held.value / MiB).toFixed(2)} MiB before it was held; arrayBuffers +${(growth / MiB).toFixed(1)} MiB`);
        assert.ok(held.stable, `the upstream kept writing: ${(held.value / MiB).toFixed(1)} MiB`);
        assert.ok(held.value < HELD_BACK_BYTES, `the upstream wrote ${(held.value / MiB).toFixed(1)} MiB to a client that reads nothing`);
        assert.ok(growth < MEMORY_GROWTH_BYTES, `memory grew by ${(growth / MiB).toFixed(1)} MiB`);
        await legitimateCallsSucceed(gw, `beside a ${what}`);
        socket.destroy();
        await waitUntil(() => flood.closed, DEFAULT_LIMIT_MS, () => `the upstream's endless stream went on after the ${what} went`);
      } finally {
        socket.destroy();
      }
    };

    test('an endless grpc-web stream to a client that never reads holds the upstream back (binary)', { timeout: TEST_TIMEOUT_MS }, async (t) => {
      await endlessHeldBack(binaryRequest(ENDLESS, 'more'), ENDLESS, 'non-reading binary grpc-web client', (m) => t.diagnostic(m));
    });

    test('an endless grpc-web-text stream to a client that never reads holds the upstream back (base64)', { timeout: TEST_TIMEOUT_MS }, async (t) => {
      const body = Buffer.from(frame(helloMessage('more')).toString('base64'), 'latin1');
      const request = Buffer.concat([requestHead('POST', ENDLESS, [['Content-Type', WEB_TEXT], ['Content-Length', String(body.length)]]), body]);
      await endlessHeldBack(request, ENDLESS, 'non-reading grpc-web-text client', (m) => t.diagnostic(m));
    });

    test('an endless transcoded NDJSON stream to a client that never reads holds the upstream back', { timeout: TEST_TIMEOUT_MS }, async (t) => {
      const request = Buffer.concat([requestHead('POST', FLOOD_HTTP, [['Content-Type', 'application/json'], ['Content-Length', '2']]), Buffer.from('{}')]);
      await endlessHeldBack(request, FLOOD_GRPC, 'non-reading NDJSON client', (m) => t.diagnostic(m));
    });
  });

  // ---- 7: transcoding -------------------------------------------------------------------------------------------

  describe('transcoding', () => {
    /**
     * Streams a JSON body of OVER_CAP_BODY_BYTES at `path`: 413 at the cap, and whatever the gateway then does with
     * the rest (reads it to drop it, or closes), it does not keep it: sampled while the body streams, the live memory
     * does not grow with the bytes the gateway took (transfers in flight come and go; a body kept would only grow).
     */
    const overCap = async (path: string, what: string, diagnostic: (message: string) => void): Promise<void> => {
      const echoes = upstreamStreamsTo(ECHO_GRPC);
      const memory = liveArrayBufferBytes();
      const head = requestHead('POST', path, [['Content-Type', 'application/json'], ['Content-Length', String(OVER_CAP_BODY_BYTES)]]);
      const client = await firehose(gw.port, head, OVER_CAP_BODY_BYTES, Buffer.alloc(MiB, 0x20));
      const samples: { accepted: number; growth: number }[] = [];
      const sampler = setInterval(() => samples.push({ accepted: client.accepted(), growth: liveArrayBufferBytes() - memory }), MEMORY_SAMPLE_MS);
      try {
        await legitimateCallsSucceed(gw, `beside ${what}`);
        await waitUntil(() => parseResponse(client.received()) !== undefined, DEFAULT_LIMIT_MS, () => `no answer to ${what}; ${(client.accepted() / MiB).toFixed(1)} MiB accepted`);
        const acceptedAtAnswer = client.accepted();
        const answer = parseResponse(client.received());
        const taken = await untilStable(() => client.accepted(), { quietMs: QUIET_MS, limitMs: STABLE_LIMIT_MS, cap: Infinity });
        clearInterval(sampler);
        const late = samples.filter((s) => s.accepted >= OVER_CAP_BODY_BYTES / 2);
        const peak = Math.max(0, ...samples.map((s) => s.growth));
        diagnostic(
          `${what}: answered ${String(answer?.status)} after ${(acceptedAtAnswer / MiB).toFixed(1)} MiB; ${(taken.value / MiB).toFixed(1)} MiB taken in all ` +
            `(connection ${client.closed ? 'closed' : 'open'}); live arrayBuffers peak +${(peak / MiB).toFixed(1)} MiB over ${samples.length} samples`,
        );
        assert.equal(answer?.status, 413, JSON.stringify(client.received().subarray(0, 300).toString('latin1')));
        assert.ok(acceptedAtAnswer < OVER_CAP_BODY_BYTES, 'answered before the whole body was sent');
        if (late.length === 0) assert.ok(client.closed, 'the gateway neither took the body nor closed the connection');
        for (const sample of late) {
          assert.ok(sample.growth < sample.accepted / 2, `memory grew by ${(sample.growth / MiB).toFixed(1)} MiB once ${(sample.accepted / MiB).toFixed(1)} MiB were taken: the body is kept`);
        }
        const reached = gw.fake.streams.filter((s) => s.headers[':path'] === ECHO_GRPC).slice(echoes);
        assert.deepEqual(reached.map((s) => s.messages.length), reached.map(() => 0), 'no message reached the upstream');
        await legitimateCallsSucceed(gw, `after ${what}`);
      } finally {
        clearInterval(sampler);
        client.destroy();
      }
    };

    test("a JSON body over the route's grpc-limits cap is answered 413 without the body being kept", { timeout: TEST_TIMEOUT_MS }, async (t) => {
      await overCap(CAPPED_HTTP, 'a 256 MiB body over a 64 KiB grpc-limits cap', (m) => t.diagnostic(m));
    });

    test('a JSON body over the 4 MiB default cap is answered 413 without the body being kept', { timeout: TEST_TIMEOUT_MS }, async (t) => {
      await overCap(ECHO_HTTP, 'a 256 MiB body over the 4 MiB default cap', (m) => t.diagnostic(m));
    });

    test(`JSON nested ${NESTING_LEVELS.toLocaleString('en')} levels deep in a recursive message is a 400, not a stack overflow`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const body = Buffer.from(`${'{"inner":'.repeat(NESTING_LEVELS)}{}${'}'.repeat(NESTING_LEVELS)}`, 'latin1');
      const dial = await dialRaw(gw.port, { first: Buffer.concat([requestHead('POST', ECHO_HTTP, [['Content-Type', 'application/json'], ['Content-Length', String(body.length)]]), body]) });
      try {
        await legitimateCallsSucceed(gw, 'beside deeply nested JSON');
        const answer = await completeResponse(() => dial.received(), 'deeply nested JSON');
        assert.equal(answer.status, 400);
        assert.match(decodeURIComponent(answer.headers['grpc-message'] ?? ''), /nested deeper than/);
        assert.ok((answer.headers['grpc-message'] ?? '').length < 4 * KiB, 'the message naming the field stays short');
      } finally {
        dial.destroy();
      }
    });

    test('a JSON body sent as 1-byte chunks is transcoded like a whole one', { timeout: TEST_TIMEOUT_MS }, async () => {
      const name = 'x'.repeat(2000);
      const json = Buffer.from(JSON.stringify({ name, inner: { name: 'nested' } }));
      const chunks = Buffer.concat([...json].map((byte) => Buffer.from([0x31, 0x0d, 0x0a, byte, 0x0d, 0x0a])));
      const head = requestHead('POST', ECHO_HTTP, [['Content-Type', 'application/json'], ['Transfer-Encoding', 'chunked']]);
      const dial = await dialRaw(gw.port, { first: Buffer.concat([head, chunks, Buffer.from('0\r\n\r\n')]) });
      try {
        await legitimateCallsSucceed(gw, 'beside 1-byte chunks');
        const answer = await completeResponse(() => dial.received(), 'a body of 1-byte chunks');
        assert.equal(answer.status, 200, answer.body?.toString());
        assert.deepEqual(JSON.parse((answer.body ?? Buffer.alloc(0)).toString('utf8')), { name, inner: { name: 'nested' } });
      } finally {
        dial.destroy();
      }
    });

    test('a grpc-web body sent as 1-byte chunks reaches the upstream whole', { timeout: TEST_TIMEOUT_MS }, async () => {
      const body = frame(helloMessage('one byte at a time'));
      const chunks = Buffer.concat([...body].map((byte) => Buffer.from([0x31, 0x0d, 0x0a, byte, 0x0d, 0x0a])));
      const head = requestHead('POST', SAY_HELLO, [['Content-Type', WEB_BINARY], ['Transfer-Encoding', 'chunked']]);
      const dial = await dialRaw(gw.port, { first: Buffer.concat([head, chunks, Buffer.from('0\r\n\r\n')]) });
      try {
        const answer = await completeResponse(() => dial.received(), 'a grpc-web body of 1-byte chunks');
        assert.equal(answer.status, 200);
        const web = parseWebBody(answer.body ?? Buffer.alloc(0));
        assert.deepEqual(web.messages.map(helloText), ['Hello one byte at a time']);
        assert.equal(web.trailers?.['grpc-status'], '0');
      } finally {
        dial.destroy();
      }
    });
  });

  // ---- 8: grpc-web-text bodies that are not base64 ---------------------------------------------------------------

  describe('grpc-web-text bodies that are not base64', () => {
    const abc = frame(helloMessage('abc')).toString('base64'); // 10 bytes: the text ends with "=="
    /** [what, body, whether a whole message decodes before the fault (and so reaches the upstream before it)]. */
    const cases: [string, string, boolean][] = [
      ['characters outside base64', 'AAAA!!!!', false],
      ['padding in the middle of a quantum', 'AA=A', false],
      ['padding followed by more characters within its quantum', `${abc.slice(0, 8)}A=AA`, false],
      ['a body that ends within a base64 quantum', `${abc.slice(0, 8)}AAAAAA`, false],
      ['a body that ends within a base64 quantum after a whole message', `${frame(helloMessage('abcd')).toString('base64')}QQ`, true],
    ];
    for (const [what, text, messageFirst] of cases) {
      test(`${what}: INTERNAL, and the upstream ${messageFirst ? 'call is cancelled' : 'gets no message'}`, { timeout: TEST_TIMEOUT_MS }, async () => {
        const before = gw.fake.streams.length;
        const body = Buffer.from(text, 'latin1');
        const dial = await dialRaw(gw.port, { first: Buffer.concat([requestHead('POST', HOLD, [['Content-Type', WEB_TEXT], ['Content-Length', String(body.length)]]), body]) });
        try {
          await legitimateCallsSucceed(gw, `beside ${what}`);
          const answer = await completeResponse(() => dial.received(), what);
          assert.equal(answer.status, 200, 'grpc-web carries the error as a gRPC status');
          assert.equal(answer.headers['grpc-status'], '13', JSON.stringify(answer.headers));
          assert.match(decodeURIComponent(answer.headers['grpc-message'] ?? ''), /base64/);
          const reached = gw.fake.streams.slice(before).filter((s) => s.headers[':path'] === HOLD);
          await waitUntil(() => reached.every((s) => s.closed), DEFAULT_LIMIT_MS, () => 'an upstream stream of the broken request was left open');
          // A stream the gateway opened before the fault is reset: never answered, never ended as a whole request.
          assert.deepEqual(reached.map((s) => [s.resetByPeer, s.rstCode]), reached.map(() => [true, CANCEL]));
          if (!messageFirst) assert.deepEqual(reached.map((s) => s.messages.length), reached.map(() => 0), 'no message reached the upstream');
        } finally {
          dial.destroy();
        }
      });
    }
  });

  // ---- 9: many connections ------------------------------------------------------------------------------------------

  test(`${CONCURRENT_CONNECTIONS} HTTP/1.1 connections each doing a grpc-web call at once all succeed and leave no connection behind`, { timeout: TEST_TIMEOUT_MS * 2 }, async (t) => {
    const accepted = await acceptedConnections(gw.plane);
    await Promise.all([
      ...Array.from({ length: CONCURRENT_CONNECTIONS }, (_, i) => grpcWebCallSucceeds(gw.address, `concurrent ${i}`)),
      legitimateCallsSucceed(gw, 'beside 500 connections'),
    ]);
    assert.ok((await acceptedConnections(gw.plane)) - accepted >= CONCURRENT_CONNECTIONS, 'the data plane counted the connections');
    const active = await activeConnectionsAtMost(gw.plane, 1);
    t.diagnostic(`active connections once the ${CONCURRENT_CONNECTIONS} calls finished: ${active}`);
    assert.ok(active <= 1, `the data plane still counts ${active} connections`);
  });

  // ---- gateway bugs this suite found (fixed) ------------------------------------------------------------------

  test('pipelined HTTP/1.1 requests are not served beyond max_concurrent_streams at once', { timeout: TEST_TIMEOUT_MS}, async (t) => {
    const pipelined = 1000;
    const before = upstreamStreamsTo(HOLD);
    const dial = await dialRaw(gw.port, { first: Buffer.concat(Array.from({ length: pipelined }, () => binaryRequest(HOLD, 'pipelined'))) });
    try {
      const reached = await untilStable(() => upstreamStreamsTo(HOLD) - before, { quietMs: QUIET_MS, limitMs: STABLE_LIMIT_MS, cap: Infinity });
      t.diagnostic(`${pipelined} pipelined requests on one connection: ${reached.value} upstream streams open at once`);
      await legitimateCallsSucceed(gw, 'beside pipelined requests');
      assert.ok(reached.value <= 128, `one HTTP/1.1 connection holds ${reached.value} upstream calls at once (HTTP/2 is capped at 128)`);
    } finally {
      dial.destroy();
    }
  });

  test('a malformed chunk after the answer began cuts the connection without writing a second status line into the body', { timeout: TEST_TIMEOUT_MS}, async () => {
    const dial = await dialRaw(gw.port, { first: requestHead('POST', EARLY, [['Content-Type', WEB_BINARY], ['Transfer-Encoding', 'chunked']]) });
    try {
      await waitUntil(() => dial.received().includes('early'), DEFAULT_LIMIT_MS, () => 'the early answer never came');
      dial.socket.write('zz\r\nabc\r\n');
      await dial.waitClosed('a request whose chunked body broke after the answer began');
      const text = dial.received().toString('latin1');
      assert.equal(text.split('HTTP/1.1 ').length - 1, 1, `a second status line inside the chunked body: ${JSON.stringify(text.slice(-120))}`);
      await legitimateCallsSucceed(gw, 'after a broken chunk');
    } finally {
      dial.destroy();
    }
  });
});
