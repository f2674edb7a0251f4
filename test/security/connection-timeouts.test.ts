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
import { messageOf, openBidirectionalStream, sayHello } from '../helpers/greeter.ts';
import {
  DEFAULT_LIMIT_MS,
  dialRaw,
  EMPTY_SETTINGS,
  frameTypes,
  GOAWAY_FRAME,
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
  after(async () => gw?.close());

  const legitimateCallSucceeds = async (client: Client, name: string): Promise<void> => {
    const result = await sayHello(client, name);
    assert.equal(result.status.code, GrpcCode.OK, `legitimate call beside the attack: ${result.status.details}`);
    assert.equal(result.message, `Hello ${name}`);
  };

  test('a TCP connection that never sends a byte is closed instead of living forever', { timeout: TEST_TIMEOUT_MS }, async () => {
    const silent = await dialRaw(gw.h2cPort);
    try {
      await legitimateCallSucceeds(h2c, 'beside a silent socket');
      await silent.waitClosed('a connection that sent nothing');
      assert.equal(silent.received().length, 0, 'nothing is answered to a connection that said nothing');
      assert.ok(
        gw.logs.some((line) => line.msg.includes('client_header_timeout')),
        'the closure is logged (rate-limited) so an operator sees half-open connections being shed',
      );
    } finally {
      silent.destroy();
    }
  });

  test('a connection that sends part of the HTTP/2 preface and stops is closed', { timeout: TEST_TIMEOUT_MS }, async () => {
    const partial = await dialRaw(gw.h2cPort, { first: PREFACE.subarray(0, 10) });
    try {
      await legitimateCallSucceeds(h2c, 'beside a partial preface');
      await partial.waitClosed('a connection stuck inside its preface');
    } finally {
      partial.destroy();
    }
  });

  test('a session that sends the preface and SETTINGS but never a request gets GOAWAY and is closed', { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefaceOnly = await dialRaw(gw.h2cPort, { first: Buffer.concat([PREFACE, EMPTY_SETTINGS]) });
    try {
      await legitimateCallSucceeds(h2c, 'beside a preface-only session');
      await prefaceOnly.waitClosed('a preface-only HTTP/2 session');
      assert.ok(
        frameTypes(prefaceOnly.received()).includes(GOAWAY_FRAME),
        `the session is told why with GOAWAY; frames received: [${frameTypes(prefaceOnly.received()).join(', ')}]`,
      );
    } finally {
      prefaceOnly.destroy();
    }
  });

  test('a TCP connection to the TLS port that never starts its handshake is closed well before Node\'s 120 s', { timeout: TEST_TIMEOUT_MS }, async () => {
    const silent = await dialRaw(gw.tlsPort);
    try {
      await legitimateCallSucceeds(tls, 'beside a silent TLS socket');
      await silent.waitClosed('a TLS connection that sent nothing');
    } finally {
      silent.destroy();
    }
  });

  test('a TLS handshake stalled half-way through its ClientHello is closed', { timeout: TEST_TIMEOUT_MS }, async () => {
    const stalled = await dialRaw(gw.tlsPort, { first: PARTIAL_CLIENT_HELLO });
    try {
      await legitimateCallSucceeds(tls, 'beside a stalled handshake');
      await stalled.waitClosed('a TLS connection with a partial ClientHello');
    } finally {
      stalled.destroy();
    }
  });

  test('an idle session gets GOAWAY(NO_ERROR) and is closed while a session with an open long stream is kept', { timeout: TEST_TIMEOUT_MS }, async () => {
    const long = openBidirectionalStream(h2c);
    const replies: string[] = [];
    long.on('data', (reply: object) => replies.push(messageOf(reply)));
    long.on('error', () => undefined); // its status is asserted below
    const longStatus = new Promise<number>((resolve) => long.on('status', (s: { code: number }) => resolve(s.code)));
    long.write({ name: 'first' });
    await waitUntil(() => replies.length >= 1, DEFAULT_LIMIT_MS, () => 'the long stream got no first reply');

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

      // Several idle periods more: the session carrying an open stream is still served.
      await sleep(KEEPALIVE_TIMEOUT_MS * 3);
      long.write({ name: 'still here' });
      await waitUntil(() => replies.length >= 2, DEFAULT_LIMIT_MS, () => `the long stream was cut; replies ${JSON.stringify(replies)}`);
      long.end();
      assert.equal(await within(longStatus, DEFAULT_LIMIT_MS, 'the long stream ending'), GrpcCode.OK);
    } finally {
      long.cancel();
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
