/**
 * Issue #5's resilience proof items, each bounded (every wait has a limit and fails with a message; nothing here
 * asserts a wall-clock performance figure, timings are only printed as diagnostics):
 *
 * 1. A data plane in its own process (test/flow/child-gateway.ts) gets SIGTERM while it relays a ~10 s server
 *    stream. main.ts drains with a 10 s grace (listeners.ts closeAll: stop accepting, GOAWAY every session, let
 *    streams finish), so the stream must complete with all its messages and grpc-status 0, a new connection must
 *    not be served, and the process must exit with code 0 once the stream is over.
 * 2. etcd dies while unary calls flow through an in-process gateway: the data plane keeps serving its last good
 *    snapshot (docs/architecture.md: "keep serving their last good config while etcd is unreachable"), so no call
 *    fails; once etcd is back, a route changed through the admin API reaches the data plane again.
 */
import assert from 'node:assert/strict';
import http2, { type ClientHttp2Session } from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status as GrpcCode, type Client } from '@grpc/grpc-js';
import { seedRoute, startGateway, type GatewayFixture } from '../e2e/gateway-fixture.ts';
import { describeResult, finish, SAY_HELLO, SERVER_STREAM, startRawCall } from '../faults/fault-kit.ts';
import { putEtcdJson, spawnChildGateway, type ChildGateway } from '../flow/child-gateway.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { decodeHelloMessage, parseGrpcFrames, startFakeUpstream, waitUntil, within, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';

/** Messages of the long server stream, one per STREAM_INTERVAL_MS. */
const STREAM_MESSAGES = 10;
/**
 * Gap between two messages. The first message goes out at once and the trailers right after the tenth, so the
 * stream lasts ~9 s after the first message: inside main.ts's 10 s SHUTDOWN_GRACE_MS counted from the SIGTERM,
 * which is sent once the first message has arrived.
 */
const STREAM_INTERVAL_MS = 1_000;
const STARTUP_LIMIT_MS = 20_000;
/** The stream has ~9 s left when SIGTERM goes out; the grace is 10 s. */
const STREAM_END_LIMIT_MS = 15_000;
/** The brief: the child exits within ~20 s. */
const EXIT_LIMIT_MS = 20_000;
/** How long after SIGTERM a new connection may still be served (signal delivery and handling). */
const REFUSAL_LIMIT_MS = 5_000;
/** How long etcd stays down while calls flow. */
const ETCD_DOWN_MS = 10_000;
/** Bound of the call loop: 10 s of sequential calls with a pause cannot exceed this. */
const MAX_CALLS = 5_000;
const CALL_PAUSE_MS = 10;
const CALL_DEADLINE_MS = 2_000;
/** etcd back, admin store reconnecting: the PUT may answer 503 (or time out) for a while. */
const ADMIN_RETRY_LIMIT_MS = 30_000;
/** The data plane's watcher must reconnect, resync and apply the changed route. */
const CATCH_UP_LIMIT_MS = 30_000;

describe('SIGTERM drains a data plane process', { timeout: 90_000 }, () => {
  let etcd: EtcdProcess | undefined;
  let gateway: ChildGateway | undefined;
  let upstream: FakeUpstream | undefined;
  const sessions: ClientHttp2Session[] = [];

  before(async () => {
    etcd = await startEtcd();
    upstream = await startFakeUpstream();
    upstream.onStream(async (_stream, headers, ctl) => {
      if (headers[':path'] !== SERVER_STREAM) {
        await ctl.writeMessage('pong');
        ctl.sendTrailers();
        return;
      }
      ctl.respond();
      for (let i = 1; i <= STREAM_MESSAGES; i++) {
        await ctl.writeMessage(`message ${i}`);
        if (i < STREAM_MESSAGES) await sleep(STREAM_INTERVAL_MS);
      }
      ctl.sendTrailers({ 'grpc-status': '0' });
    });
    gateway = await spawnChildGateway(etcd.endpoint);
    await putEtcdJson(etcd.endpoint, '/apisix/routes/1', {
      uri: '/helloworld.Greeter/*',
      upstream: { scheme: 'grpc', nodes: { [upstream.address]: 1 } },
    });
    await waitUntilServed(gateway, STARTUP_LIMIT_MS);
  });

  after(async () => {
    for (const session of sessions) session.destroy();
    await gateway?.stop(); // SIGTERM, then SIGKILL after child-gateway's STOP_LIMIT_MS; a no-op once exited
    await upstream?.close();
    await etcd?.close();
  });

  test('SIGTERM during a 10 s server stream: the stream completes', { timeout: 70_000 }, async (t) => {
    assert.ok(gateway !== undefined && upstream !== undefined);
    const gw = gateway;
    const session = await connect(gw.h2cAddress);
    sessions.push(session);
    const goaways: { code: number; lastStreamID: number }[] = [];
    session.on('goaway', (code: number, lastStreamID: number) => goaways.push({ code, lastStreamID }));

    const call = startRawCall(session, { path: SERVER_STREAM, messages: ['resilience'] });
    let received = 0;
    let pending: Buffer = Buffer.alloc(0);
    call.stream.on('data', (chunk: Buffer) => {
      const parsed = parseGrpcFrames(Buffer.concat([pending, chunk]));
      received += parsed.messages.length;
      pending = parsed.rest;
    });
    await waitUntil(() => received >= 1, 5_000, () => `the first message did not arrive\n${gw.output()}`);

    const sigtermAt = Date.now();
    process.kill(gw.pid, 'SIGTERM');

    // A new connection after SIGTERM. The gateway may take a moment to handle the signal, so attempts repeat
    // (each a fresh connection and one unary call) until one is not served; all attempts are reported.
    const attempts: string[] = [];
    let refusedAfterMs: number | undefined;
    while (Date.now() - sigtermAt < REFUSAL_LIMIT_MS) {
      const outcome = await newConnectionCall(gw.h2cAddress);
      attempts.push(`${Date.now() - sigtermAt} ms: ${outcome}`);
      if (outcome !== 'served (grpc-status 0)') {
        refusedAfterMs = Date.now() - sigtermAt;
        break;
      }
      await sleep(50);
    }

    const result = await finish(call, 'the server stream during the drain', STREAM_END_LIMIT_MS);
    const streamEndMs = Date.now() - sigtermAt;
    const exitWait = Date.now();
    await waitUntil(() => gw.exited, EXIT_LIMIT_MS, () => `the gateway did not exit after the stream ended\n${gw.output()}`);
    const exitAfterStreamMs = Date.now() - exitWait;
    const exitLine = /\[gateway exited: code (\S+), signal (\S+)\]/.exec(gw.output());

    t.diagnostic(
      `drain: ${JSON.stringify({
        newConnectionAttempts: attempts,
        refusedAfterMs,
        goawaysOnStreamSession: goaways,
        streamEndedAfterSigtermMs: streamEndMs,
        exitAfterStreamEndMs: exitAfterStreamMs,
        exit: exitLine?.[0],
      })}`,
    );

    assert.equal(result.messages.length, STREAM_MESSAGES, `not every message arrived: ${describeResult(result)}\n${gw.output()}`);
    assert.deepEqual(
      result.messages.map((m) => decodeHelloMessage(m)),
      Array.from({ length: STREAM_MESSAGES }, (_, i) => `message ${i + 1}`),
    );
    assert.equal(result.grpcStatus, 0, `the stream did not end with grpc-status 0: ${describeResult(result)}\n${gw.output()}`);
    assert.ok(refusedAfterMs !== undefined, `a new connection was still served ${REFUSAL_LIMIT_MS} ms after SIGTERM: ${attempts.join('; ')}`);
    assert.ok(exitLine !== null, `no exit line in the gateway output\n${gw.output()}`);
    assert.equal(exitLine[1], '0', `the gateway did not exit with code 0: ${exitLine[0]}\n${gw.output()}`);
  });
});

describe('etcd outage under load', { timeout: 120_000 }, () => {
  let gw: GatewayFixture | undefined;
  let nodeA: GreeterNode | undefined;
  let nodeB: GreeterNode | undefined;
  let client: Client | undefined;

  before(async () => {
    gw = await startGateway();
    nodeA = await startGreeterNode({ id: 'node-a' });
    nodeB = await startGreeterNode({ id: 'node-b' });
    client = greeterClient(gw.h2cAddress);
  });

  after(async () => {
    client?.close();
    await nodeA?.close();
    await nodeB?.close();
    await gw?.close();
  });

  test('etcd stopped while calls flow: no failed call', { timeout: 100_000 }, async (t) => {
    assert.ok(gw !== undefined && nodeA !== undefined && nodeB !== undefined && client !== undefined);
    const fixture = gw;
    const grpc = client;
    const a = nodeA;
    const b = nodeB;
    const put = await fixture.admin('PUT', '/routes/1', seedRoute({ [a.address]: 1 }));
    assert.ok(put.status === 200 || put.status === 201, `route PUT failed: ${put.status} ${JSON.stringify(put.body)}`);
    await fixture.waitForSnapshot(() => fixture.routeNodes('1')?.join() === `grpc://${a.address}`, 'route 1 → node-a');
    const warm = await sayHello(grpc, 'warm-up', undefined, { deadline: Date.now() + CALL_DEADLINE_MS });
    assert.equal(warm.status.code, 0, `warm-up call failed: ${warm.status.details}`);

    await fixture.etcd.stop();
    const downAt = Date.now();
    let ok = 0;
    const failures: string[] = [];
    const servedBy = new Map<string, number>();
    for (let i = 0; i < MAX_CALLS && Date.now() - downAt < ETCD_DOWN_MS; i++) {
      const r = await sayHello(grpc, `call ${i}`, undefined, { deadline: Date.now() + CALL_DEADLINE_MS });
      if (r.status.code === GrpcCode.OK && r.message === `Hello call ${i}`) ok++;
      else failures.push(`call ${i} at ${Date.now() - downAt} ms: status ${r.status.code} ${r.status.details} message ${String(r.message)}`);
      servedBy.set(String(r.servedBy), (servedBy.get(String(r.servedBy)) ?? 0) + 1);
      await sleep(CALL_PAUSE_MS);
    }
    const callsMs = Date.now() - downAt;

    await fixture.etcd.start();
    const upAt = Date.now();
    const putAttempts: string[] = [];
    let changed = false;
    while (!changed && Date.now() - upAt < ADMIN_RETRY_LIMIT_MS) {
      try {
        const res = await within(fixture.admin('PUT', '/routes/1', seedRoute({ [b.address]: 1 })), 15_000, 'admin PUT');
        putAttempts.push(`${Date.now() - upAt} ms: ${res.status}`);
        changed = res.status === 200 || res.status === 201;
      } catch (err) {
        putAttempts.push(`${Date.now() - upAt} ms: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (!changed) await sleep(250);
    }
    const putAcceptedMs = Date.now() - upAt;
    let lastServedBy: string | undefined;
    let caughtUpMs: number | undefined;
    const pollStart = Date.now();
    while (changed && Date.now() - pollStart < CATCH_UP_LIMIT_MS) {
      const r = await sayHello(grpc, 'after', undefined, { deadline: Date.now() + CALL_DEADLINE_MS });
      lastServedBy = r.status.code === GrpcCode.OK ? r.servedBy : `status ${r.status.code} ${r.status.details}`;
      if (lastServedBy === b.id) {
        caughtUpMs = Date.now() - upAt;
        break;
      }
      await sleep(100);
    }

    t.diagnostic(
      `etcd outage: ${JSON.stringify({
        calls: ok + failures.length,
        succeeded: ok,
        failed: failures.length,
        servedBy: Object.fromEntries(servedBy),
        callsMs,
        putAttempts,
        putAcceptedAfterEtcdStartMs: putAcceptedMs,
        newNodeServingAfterEtcdStartMs: caughtUpMs,
      })}`,
    );

    assert.ok(ok + failures.length > 0, 'no call ran while etcd was down');
    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${ok + failures.length} calls failed while etcd was down`);
    assert.ok(changed, `the admin API did not accept the changed route within ${ADMIN_RETRY_LIMIT_MS} ms: ${putAttempts.join('; ')}`);
    assert.equal(
      lastServedBy,
      b.id,
      `calls did not reach node-b within ${CATCH_UP_LIMIT_MS} ms after the route change (route nodes now: ${String(fixture.routeNodes('1'))})`,
    );
  });
});

/** An h2c session to `address`, connected within 5 s. */
async function connect(address: string): Promise<ClientHttp2Session> {
  const session = http2.connect(`http://${address}`);
  session.on('error', () => undefined); // failures surface on the streams
  try {
    await within(
      new Promise<void>((resolve, reject) => {
        session.once('connect', () => resolve());
        session.once('error', reject);
      }),
      5_000,
      `connect to ${address}`,
    );
  } catch (err) {
    session.destroy();
    throw err;
  }
  return session;
}

/** One unary call on a fresh connection; says what happened, never throws, always closes the session. */
async function newConnectionCall(address: string): Promise<string> {
  const session = http2.connect(`http://${address}`);
  let goaway: string | undefined;
  session.on('goaway', (code: number, lastStreamID: number) => (goaway = `GOAWAY code ${code} last-stream-id ${lastStreamID}`));
  try {
    const connected = await within(
      new Promise<string | undefined>((resolve) => {
        session.once('connect', () => resolve(undefined));
        session.once('error', (err: NodeJS.ErrnoException) => resolve(`connection failed: ${err.code ?? err.message}`));
      }),
      2_000,
      'new connection',
    );
    if (connected !== undefined) return connected;
    const result = await finish(startRawCall(session, { path: SAY_HELLO, messages: ['new'] }), 'a call on a new connection', 2_000);
    if (result.grpcStatus === 0) return 'served (grpc-status 0)';
    return `not served: ${goaway ?? 'no GOAWAY'}, ${describeResult(result)}, grpc-status ${String(result.grpcStatus)}`;
  } catch (err) {
    return `not served: ${err instanceof Error ? err.message : String(err)}${goaway === undefined ? '' : `, ${goaway}`}`;
  } finally {
    session.destroy();
  }
}

/** Polls unary calls on fresh connections until the route answers grpc-status 0. */
async function waitUntilServed(gateway: ChildGateway, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    if (gateway.exited) throw new Error(`the gateway exited during start-up:\n${gateway.output()}`);
    last = await newConnectionCall(gateway.h2cAddress);
    if (last === 'served (grpc-status 0)') return;
    await sleep(100);
  }
  throw new Error(`the gateway did not route ${SAY_HELLO} within ${limitMs} ms (last: ${last})\n${gateway.output()}`);
}
