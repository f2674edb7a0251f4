/**
 * Issue #11 case 7, caps: 7,000 idle connections were held with no cap, per address or global, and at the fd limit
 * legitimate dials timed out with no log line. With `nginx_config.max_connections_per_ip` one client address is
 * turned away at accept while another still connects, and with `nginx_config.event.worker_connections` the
 * process stops at its budget with established connections still served; each refusal is counted into a
 * rate-limited warning. 127.0.0.2 and 127.0.0.3 are distinct client addresses on Linux loopback (`localAddress`).
 * The header timeout is set far above every wait here, so a connection closed in these tests was closed by a cap.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  DEFAULT_LIMIT_MS,
  dialRaw,
  EMPTY_SETTINGS,
  legitimateCallSucceeds,
  PREFACE,
  startConnectionGateway,
  TEST_TIMEOUT_MS,
  waitUntil,
  type ConnectionGateway,
  type RawDial,
} from './connection-kit.ts';

/** Far longer than any test: only a cap may close a connection here. */
const LONG_HEADER_TIMEOUT = '120s';
const PER_IP_CAP = 3;
const GLOBAL_CAP = 4;
const ATTACKER = '127.0.0.2';
const NEIGHBOUR = '127.0.0.3';

/** An HTTP/2 connection (preface + SETTINGS) that the gateway admitted: it answered with its own SETTINGS. */
async function admittedSession(port: number, localAddress: string, opened: RawDial[]): Promise<RawDial> {
  const dial = await dialRaw(port, { localAddress, first: Buffer.concat([PREFACE, EMPTY_SETTINGS]) });
  opened.push(dial);
  await dial.waitForBytes(`a connection from ${localAddress} within the caps`);
  return dial;
}

describe('per-address connection cap (max_connections_per_ip)', { timeout: TEST_TIMEOUT_MS * 2 }, () => {
  let gw: ConnectionGateway;
  const opened: RawDial[] = [];
  before(async () => {
    gw = await startConnectionGateway(`{ max_connections_per_ip: ${PER_IP_CAP}, http: { client_header_timeout: ${LONG_HEADER_TIMEOUT} } }`);
  });
  after(async () => {
    for (const dial of opened) dial.destroy();
    await (gw as ConnectionGateway | undefined)?.close(); // unset when before() failed
  });

  test('one address over its cap is closed at accept while another address and existing clients still connect', { timeout: TEST_TIMEOUT_MS }, async () => {
    const client = gw.client('h2c');
    await legitimateCallSucceeds(client, 'before the flood');
    for (let i = 0; i < PER_IP_CAP; i++) await admittedSession(gw.h2cPort, ATTACKER, opened);

    const over = await dialRaw(gw.h2cPort, { localAddress: ATTACKER, first: Buffer.concat([PREFACE, EMPTY_SETTINGS]) });
    opened.push(over);
    await over.waitClosed(`connection ${PER_IP_CAP + 1} from ${ATTACKER}`);
    assert.equal(over.received().length, 0, 'a refused connection gets no HTTP/2 work, not even SETTINGS');
    const overTls = await dialRaw(gw.tlsPort, { localAddress: ATTACKER });
    opened.push(overTls);
    await overTls.waitClosed(`a TLS connection from ${ATTACKER} over its cap`);

    await admittedSession(gw.h2cPort, NEIGHBOUR, opened);
    await legitimateCallSucceeds(client, 'during the flood');
    await legitimateCallSucceeds(gw.client('tls'), 'a new TLS client during the flood');
    await waitUntil(
      () => gw.logs.some((line) => line.msg.includes('max_connections_per_ip') && line['client'] === ATTACKER),
      DEFAULT_LIMIT_MS,
      () => `no warning names the refused address; logged: ${JSON.stringify(gw.logs.map((l) => l.msg))}`,
    );
  });
});

describe('per-process connection cap (worker_connections)', { timeout: TEST_TIMEOUT_MS * 2 }, () => {
  let gw: ConnectionGateway;
  const opened: RawDial[] = [];
  before(async () => {
    gw = await startConnectionGateway(`{ event: { worker_connections: ${GLOBAL_CAP} }, http: { client_header_timeout: ${LONG_HEADER_TIMEOUT} } }`);
  });
  after(async () => {
    for (const dial of opened) dial.destroy();
    await (gw as ConnectionGateway | undefined)?.close(); // unset when before() failed
  });

  test('connections beyond the process budget are closed at accept while established clients keep working', { timeout: TEST_TIMEOUT_MS }, async () => {
    const client = gw.client('h2c');
    await legitimateCallSucceeds(client, 'before the flood'); // one connection of the budget
    const held: RawDial[] = [];
    // From several addresses: the global cap, not the per-address one, is what stops them.
    for (let i = 1; i < GLOBAL_CAP; i++) held.push(await admittedSession(gw.h2cPort, `127.0.0.${10 + i}`, opened));

    const over = await dialRaw(gw.h2cPort, { localAddress: '127.0.0.20' });
    opened.push(over);
    await over.waitClosed('a connection beyond worker_connections');
    await legitimateCallSucceeds(client, 'at the cap');
    await waitUntil(
      () => gw.logs.some((line) => line.msg.includes('worker_connections reached')),
      DEFAULT_LIMIT_MS,
      () => `no warning for the refusal; logged: ${JSON.stringify(gw.logs.map((l) => l.msg))}`,
    );

    // A closed connection gives its place back: the budget is a count of open connections, not a total.
    // The gateway learns of the close asynchronously, so dial until one is admitted (bounded).
    held[0]?.destroy();
    const deadline = Date.now() + DEFAULT_LIMIT_MS;
    let admitted = false;
    while (!admitted && Date.now() < deadline) {
      const again = await dialRaw(gw.h2cPort, { localAddress: '127.0.0.21', first: Buffer.concat([PREFACE, EMPTY_SETTINGS]) });
      opened.push(again);
      admitted = await again.waitForBytes('a dial after a release').then(() => true, () => false);
    }
    assert.ok(admitted, 'no connection was admitted after one of the held ones closed');
  });
});
