/**
 * Issue #11 case 7, timeouts: raw TCP and preface-only connections were still open after 150 s and unfinished
 * TLS handshakes lived 120 s, so a few thousand silent sockets pinned a worker's file descriptors and memory. With
 * `client_header_timeout` a connection that has not sent its first request in time is closed (an HTTP/2 session
 * with GOAWAY first); with `keepalive_timeout` a session with no open stream is closed with GOAWAY(NO_ERROR),
 * while one with an open stream is kept and grpc-js clients simply reconnect. Small timeouts keep the suite quick;
 * every wait is bounded and legitimate calls run beside each attack.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { connectivityState, status as GrpcCode, type Client } from '@grpc/grpc-js';
import { grpcFrame, helloMessage, within } from '../helpers/fake-upstream.ts';
import { messageOf, openBidirectionalStream } from '../helpers/greeter.ts';
import {
  DEFAULT_LIMIT_MS,
  dialRaw,
  EMPTY_SETTINGS,
  frameTypes,
  GOAWAY_FRAME,
  legitimateCallSucceeds,
  PREFACE,
  startConnectionGateway,
  TEST_TIMEOUT_MS,
  waitUntil,
  type ConnectionGateway,
} from './connection-kit.ts';

const HEADER_TIMEOUT_MS = 400;
const KEEPALIVE_TIMEOUT_MS = 500;
/** The first bytes of a TLS 1.2 ClientHello record announcing 512 bytes (RFC 8446 §5.1), then silence. */
const PARTIAL_CLIENT_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);

describe('connection timeouts (client_header_timeout, keepalive_timeout)', { timeout: TEST_TIMEOUT_MS * 8 }, () => {
  let gw: ConnectionGateway;
  let h2c: Client;
  let tls: Client;

  before(async () => {
    gw = await startConnectionGateway(
      `{ http: { client_header_timeout: ${HEADER_TIMEOUT_MS}ms, keepalive_timeout: ${KEEPALIVE_TIMEOUT_MS}ms } }`,
    );
    h2c = gw.client('h2c');
    tls = gw.client('tls');
  });
  after(async () => (gw as ConnectionGateway | undefined)?.close()); // unset when before() failed

  /** Dials the h2c or TLS port, writes `first`, and returns what the gateway sent before it closed the connection. */
  const closedBesideLegitimateCall = async (kind: 'h2c' | 'tls', first: Buffer | undefined, what: string): Promise<Buffer> => {
    const dial = await dialRaw(kind === 'h2c' ? gw.h2cPort : gw.tlsPort, first === undefined ? {} : { first });
    try {
      await legitimateCallSucceeds(kind === 'h2c' ? h2c : tls, 'beside the attack');
      await dial.waitClosed(what);
      return dial.received();
    } finally {
      dial.destroy();
    }
  };

  test('a TCP connection that never sends a byte is closed instead of living forever', { timeout: TEST_TIMEOUT_MS }, async () => {
    const received = await closedBesideLegitimateCall('h2c', undefined, 'a connection that sent nothing');
    assert.equal(received.length, 0, 'nothing is answered to a connection that said nothing');
    assert.ok(
      gw.logs.some((line) => line.msg.includes('client_header_timeout')),
      'the closure is logged (rate-limited) so an operator sees half-open connections being shed',
    );
  });

  test('a connection that sends part of the HTTP/2 preface and stops is closed', { timeout: TEST_TIMEOUT_MS }, async () => {
    await closedBesideLegitimateCall('h2c', PREFACE.subarray(0, 10), 'a connection stuck inside its preface');
  });

  test('a session that sends the preface and SETTINGS but never a request gets GOAWAY and is closed', { timeout: TEST_TIMEOUT_MS }, async () => {
    const received = await closedBesideLegitimateCall('h2c', Buffer.concat([PREFACE, EMPTY_SETTINGS]), 'a preface-only HTTP/2 session');
    assert.ok(frameTypes(received).includes(GOAWAY_FRAME), `the session is told why with GOAWAY; frames received: [${frameTypes(received).join(', ')}]`);
  });

  test('a preface-only session that never reads loses its socket instead of waiting forever for the client\'s FIN', { timeout: TEST_TIMEOUT_MS }, async () => {
    // node:http2's graceful close only half-closes; a client that never reads never sends its FIN (bench/half-open.ts
    // found 10,000 such sockets still held by the gateway 25 s after their GOAWAY).
    const deaf = await dialRaw(gw.h2cPort, { first: PREFACE, read: false });
    try {
      await legitimateCallSucceeds(h2c, 'beside a session that never reads');
      await deaf.waitReset('a preface-only session that never reads');
    } finally {
      deaf.destroy();
    }
  });

  test('a TCP connection to the TLS port that never starts its handshake is closed well before Node\'s 120 s', { timeout: TEST_TIMEOUT_MS }, async () => {
    await closedBesideLegitimateCall('tls', undefined, 'a TLS connection that sent nothing');
  });

  test('a TLS handshake stalled half-way through its ClientHello is closed', { timeout: TEST_TIMEOUT_MS }, async () => {
    await closedBesideLegitimateCall('tls', PARTIAL_CLIENT_HELLO, 'a TLS connection with a partial ClientHello');
  });

  /** A bidirectional Greeter call kept open: `exchange` writes one message and waits for its reply. */
  const openLongStream = async (client: Client, what: string): Promise<{ exchange(name: string): Promise<void>; finish(): Promise<number>; cancel(): void }> => {
    const call = openBidirectionalStream(client);
    const replies: string[] = [];
    call.on('data', (reply: object) => replies.push(messageOf(reply)));
    call.on('error', () => undefined); // its status is asserted by finish()
    const status = new Promise<number>((resolve) => call.on('status', (s: { code: number }) => resolve(s.code)));
    const exchange = async (name: string): Promise<void> => {
      const before = replies.length;
      call.write({ name });
      await waitUntil(() => replies.length > before, DEFAULT_LIMIT_MS, () => `the long ${what} stream was cut; replies ${JSON.stringify(replies)}`);
    };
    await exchange('first');
    return {
      exchange,
      finish: () => {
        call.end();
        return within(status, DEFAULT_LIMIT_MS, `the long ${what} stream ending`);
      },
      cancel: () => call.cancel(),
    };
  };

  test('an idle session gets GOAWAY(NO_ERROR) and is closed while sessions with an open long stream are kept', { timeout: TEST_TIMEOUT_MS }, async () => {
    const longH2c = await openLongStream(h2c, 'h2c');
    const longTls = await openLongStream(tls, 'TLS');
    const session = http2.connect(`http://127.0.0.1:${gw.h2cPort}`);
    session.on('error', () => undefined);
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    try {
      const request = session.request({ ':method': 'POST', ':path': '/helloworld.Greeter/SayHello', 'content-type': 'application/grpc', te: 'trailers' });
      const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => request.once('trailers', resolve));
      request.resume();
      request.end(grpcFrame(helloMessage('once')));
      assert.equal((await within(trailers, DEFAULT_LIMIT_MS, 'the one call of the idle session'))['grpc-status'], '0');
      assert.equal(await within(goaway, DEFAULT_LIMIT_MS, 'GOAWAY on a session idle past keepalive_timeout'), http2.constants.NGHTTP2_NO_ERROR);
      await within(closed, DEFAULT_LIMIT_MS, 'the idle session closing after its GOAWAY');

      // Several idle periods (and header timeouts) more: the sessions carrying an open stream are still served.
      await sleep(KEEPALIVE_TIMEOUT_MS * 3);
      await longH2c.exchange('still here');
      await longTls.exchange('still here');
      assert.equal(await longH2c.finish(), GrpcCode.OK);
      assert.equal(await longTls.finish(), GrpcCode.OK);
    } finally {
      longH2c.cancel();
      longTls.cancel();
      session.destroy();
    }
  });

  test('a grpc-js client whose connection idled out makes its next call without an error', { timeout: TEST_TIMEOUT_MS }, async () => {
    const client = gw.client('h2c');
    await legitimateCallSucceeds(client, 'before idling');
    const channel = client.getChannel();
    // The gateway's GOAWAY takes the channel from READY back to IDLE; the next call dials again.
    await waitUntil(
      () => channel.getConnectivityState(false) === connectivityState.IDLE,
      DEFAULT_LIMIT_MS,
      () => `the channel stayed ${connectivityState[channel.getConnectivityState(false)]} instead of being closed for idleness`,
    );
    await legitimateCallSucceeds(client, 'after the idle close');
    await legitimateCallSucceeds(tls, 'on TLS after idling');
  });
});
