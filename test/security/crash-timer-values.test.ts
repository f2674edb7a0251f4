/**
 * Issue #11, case 1: no configured value, wire value or timing may kill a data-plane process.
 *
 * - The session pool with connect timeouts Node cannot time: 3,000,000 s (Node turned it into 1 ms, the dial was
 *   torn down and a late 'connect' callback threw on the undefined `session.socket`, uncaught) and 1 ms or less
 *   racing the connect. The pool is driven directly, so the tests hold whatever bounds the schema puts on timeouts.
 * - `grpc-timeout` through a whole gateway: a deadline above 2^31-1 ms is a long deadline, not an expired one, and
 *   reaches the upstream in a form it can parse; a malformed one is answered INTERNAL and never forwarded.
 *
 * Legitimate calls run beside the hostile ones and must succeed.
 */
import assert from 'node:assert/strict';
import { status as GrpcCode } from '@grpc/grpc-js';
import { after, before, describe, test } from 'node:test';
import { MALFORMED_TIMEOUT, formatGrpcTimeout, parseGrpcTimeout } from '../../data-plane/proxy/grpc-timeout.ts';
import { MAX_TIMER_DELAY_MS, clampDelay } from '../../data-plane/timers.ts';
import { SessionPool } from '../../data-plane/upstream/pool.ts';
import { resolveUpstream, type UpstreamNode } from '../../data-plane/upstream/upstream.ts';
import { GrpcStatus } from '../../shared/grpc-status.ts';
import { silentLogger } from '../../shared/logger.ts';
import { answerOk, describeResult, finish, startRawCall, useBench, type Leg } from '../faults/fault-kit.ts';
import { sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';

const TEST_TIMEOUT_MS = 60_000;
/** timeout.connect: 3000000 (seconds), as the operator wrote it. */
const HUGE_CONNECT_TIMEOUT_MS = 3_000_000 * 1000;
/** Dials per racing test: the race showed intermittently, so many tries; each one is a loopback connect. */
const RACING_DIALS = 60;
const H2C: Leg = { down: 'h2c', up: 'grpc' };

function nodeOf(greeter: GreeterNode, clientCert?: { cert: string; key: string }): UpstreamNode {
  const upstream = resolveUpstream(
    'crash-test',
    { scheme: greeter.tls ? 'grpcs' : 'grpc', nodes: { [greeter.address]: 1 } },
    undefined,
    clientCert === undefined ? undefined : { id: 'junk', ...clientCert },
  );
  const [node] = upstream.nodes;
  assert.ok(node !== undefined);
  return node;
}

/** Counts uncaught exceptions while `run` runs (and a turn after), instead of letting one end the test process. */
async function uncaughtDuring(run: () => Promise<void>): Promise<Error[]> {
  const seen: Error[] = [];
  const listener = (err: Error): void => {
    seen.push(err);
  };
  process.on('uncaughtException', listener);
  try {
    await run();
    await new Promise((resolve) => setTimeout(resolve, 50));
  } finally {
    process.off('uncaughtException', listener);
  }
  return seen;
}

test('every delay a timer is armed with stays within what Node can time', () => {
  assert.equal(clampDelay(HUGE_CONNECT_TIMEOUT_MS), MAX_TIMER_DELAY_MS);
  assert.equal(clampDelay(Number.POSITIVE_INFINITY), MAX_TIMER_DELAY_MS);
  assert.equal(clampDelay(0.001), 1);
  assert.equal(clampDelay(Number.NaN), 1);
  assert.equal(clampDelay(1500), 1500);
});

test('the longest grpc-timeout the header can say is parsed and forwarded within 8 digits', () => {
  const longest = parseGrpcTimeout('99999999H');
  assert.equal(longest, 99_999_999 * 3_600_000);
  assert.equal(formatGrpcTimeout(longest), '99999999H');
  assert.equal(formatGrpcTimeout(2_592_000_000), '2592000S');
  assert.equal(formatGrpcTimeout(1500), '1500m');
  for (const malformed of ['', '1', '1.5S', '123456789S', '10X', '-1S']) assert.equal(parseGrpcTimeout(malformed), MALFORMED_TIMEOUT, malformed);
  assert.equal(parseGrpcTimeout(undefined), undefined);
});

describe('session pool', () => {
  const greeters: GreeterNode[] = [];
  before(async () => {
    greeters.push(await startGreeterNode({ id: 'plain' }), await startGreeterNode({ id: 'tls', tls: true }));
  });
  after(async () => {
    for (const greeter of greeters) await greeter.close();
  });

  test('a connect timeout longer than a timer can hold does not tear the dial down', { timeout: TEST_TIMEOUT_MS }, async () => {
    for (const greeter of greeters) {
      const pool = new SessionPool(silentLogger());
      try {
        const pooled = await pool.acquire(nodeOf(greeter), HUGE_CONNECT_TIMEOUT_MS);
        assert.equal(pooled.usable, true, `${greeter.id}: the session is not usable`);
      } finally {
        await pool.close(0);
      }
    }
  });

  for (const timeoutMs of [1, 0.001]) {
    test(`a connect timeout of ${timeoutMs} ms racing the connect never throws after the session is torn down`, { timeout: TEST_TIMEOUT_MS }, async () => {
      let settled = 0;
      const errors = await uncaughtDuring(async () => {
        for (const greeter of greeters) {
          for (let i = 0; i < RACING_DIALS; i++) {
            const pool = new SessionPool(silentLogger());
            await pool.acquire(nodeOf(greeter), timeoutMs).then(
              () => settled++,
              () => settled++,
            );
            await pool.close(0);
          }
        }
      });
      assert.deepEqual(errors.map((e) => e.stack), [], 'a callback threw after the dial was torn down');
      assert.equal(settled, RACING_DIALS * greeters.length, 'every dial settles, connected or failed');
    });
  }

  test('a client certificate the TLS stack cannot load fails the dial instead of throwing', { timeout: TEST_TIMEOUT_MS }, async () => {
    const tls = greeters.find((g) => g.tls);
    assert.ok(tls !== undefined);
    const pool = new SessionPool(silentLogger());
    try {
      const dial = pool.acquire(nodeOf(tls, { cert: 'not a certificate', key: 'not a key' }), 5_000);
      await assert.rejects(dial, (err: Error) => err.name === 'UpstreamConnectError');
    } finally {
      await pool.close(0);
    }
  });
});

describe('grpc-timeout from the wire', () => {
  const bench = useBench();

  test('a grpc-timeout above 2^31-1 ms is a long deadline: the call succeeds and the upstream gets a valid grpc-timeout', { timeout: TEST_TIMEOUT_MS }, async () => {
    const fake = await bench().fake(H2C);
    fake.onStream((_stream, _headers, ctl) => answerOk(ctl, 'long deadline'));
    const session = await bench().downSession(H2C);
    const result = await finish(startRawCall(session, { headers: { 'grpc-timeout': '720H' } }), 'grpc-timeout 720H');
    assert.equal(result.grpcStatus, GrpcStatus.OK, describeResult(result));
    const forwarded = fake.streams[0]?.headers['grpc-timeout'];
    assert.match(String(forwarded), /^\d{1,8}[HMSmun]$/, 'the forwarded grpc-timeout follows PROTOCOL-HTTP2.md');
    // 720 hours less what the hop took: more than 719 hours, at most 720, whatever unit it came in.
    assert.equal(String(forwarded).endsWith('S') && Number(String(forwarded).slice(0, -1)) > 719 * 3600, true, `forwarded ${String(forwarded)}`);
    const beside = await sayHello(bench().grpcClient(H2C), 'beside');
    assert.equal(beside.status.code, GrpcStatus.OK);
  });

  test('calls through an upstream whose connect timeout races every connect fail cleanly and the gateway serves on', { timeout: TEST_TIMEOUT_MS }, async () => {
    for (const up of ['grpc', 'grpcs'] as const) {
      const leg: Leg = { down: 'h2c', up };
      const racing = await bench().fake(leg, { upstream: { timeout: { connect: 0.001, send: 60, read: 60 } } });
      racing.onStream((_stream, _headers, ctl) => answerOk(ctl, 'raced'));
      const errors = await uncaughtDuring(async () => {
        const client = bench().grpcClient(leg);
        const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => sayHello(client, `race ${i}`)));
        for (const outcome of outcomes) assert.ok(outcome.status.code === GrpcCode.OK || outcome.status.code === GrpcCode.UNAVAILABLE, outcome.status.details);
      });
      assert.deepEqual(errors.map((e) => e.stack), [], `${up}: a callback threw`);
      // A sane route again: the same gateway, in this process, still serves.
      const sane = await bench().fake(leg);
      sane.onStream((_stream, _headers, ctl) => answerOk(ctl, 'after the race'));
      const after = await sayHello(bench().grpcClient(leg), 'after');
      assert.equal(after.status.code, GrpcStatus.OK, after.status.details);
    }
  });

  for (const malformed of ['abc', '1.5S', '123456789S', 'S', '10X']) {
    test(`a malformed grpc-timeout (${malformed}) is answered INTERNAL and never forwarded`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const fake = await bench().fake(H2C);
      fake.onStream((_stream, _headers, ctl) => answerOk(ctl, 'ok'));
      const session = await bench().downSession(H2C);
      const result = await finish(startRawCall(session, { headers: { 'grpc-timeout': malformed } }), `grpc-timeout ${malformed}`);
      assert.equal(result.grpcStatus, GrpcStatus.INTERNAL, describeResult(result));
      assert.match(decodeURIComponent(result.grpcMessage ?? ''), /malformed grpc-timeout/);
      const beside = await sayHello(bench().grpcClient(H2C), 'beside');
      assert.equal(beside.status.code, GrpcStatus.OK, 'a call without grpc-timeout beside it succeeds');
      assert.equal(fake.streams.length, 1, 'only the legitimate call reached the upstream');
      assert.equal(fake.streams[0]?.headers['grpc-timeout'], undefined);
    });
  }
});
