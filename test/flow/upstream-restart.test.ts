/**
 * An upstream restarts under load. A real grpc-js Greeter (examples/greeter-server.ts) is shut down gracefully
 * (grpc-js tryShutdown: GOAWAY, calls in flight finish, the listener closes) while 20 client loops keep calling
 * SayHello through the gateway, and:
 *
 * - with one node, a new server comes back on the same port shortly after. Every call the old server accepted
 *   must succeed (the gateway lets streams below GOAWAY's last-stream-id finish, and retries refused ones); calls
 *   may fail only while nothing listens on the port, only with UNAVAILABLE, and every call sent after the new
 *   server listens succeeds. The number of failures is reported.
 * - with two nodes, one of them stops for good: no call fails, because refused streams and refused connections
 *   are retried on the other node (docs/proxying.md, "Retries").
 *
 * Each server has its own id, sent as `x-served-by`, so the test knows which generation answered each call.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Metadata, status as GrpcCode, type Client } from '@grpc/grpc-js';
import { startGreeter, type GreeterServer } from '../../examples/greeter-server.ts';
import { startGateway, type GatewayFixture } from '../e2e/gateway-fixture.ts';
import { DELAY_HEADER, greeterClient, sayHello } from '../helpers/greeter.ts';
import { TEST_TIMEOUT_MS, putRoute, waitUntil, within } from './flow-kit.ts';

const LOOPS = 20;
/** Upstream work per call (20 to 39 ms), so that calls are in flight at the upstream when it shuts down. */
const CALL_DELAY_MS = 20;
/** Calls each loop makes before the restart begins, and at least after it is complete. */
const CALLS_BEFORE = 10;
const CALLS_AFTER = 10;
/** Safety cap per loop, whatever happens. */
const MAX_CALLS_PER_LOOP = 400;
/** A client that got a failure waits this long before its next call (as any client with backoff does). */
const FAILURE_PAUSE_MS = 5;
/** How long the port stays closed between the old server's shutdown and the new one's start. */
const PORT_CLOSED_MS = 200;
const CALL_LIMIT_MS = 5_000;
const LOAD_LIMIT_MS = 20_000;

interface CallRecord {
  loop: number;
  startedAt: number;
  endedAt: number;
  code: GrpcCode;
  details: string;
  servedBy: string | undefined;
}

interface Load {
  readonly calls: CallRecord[];
  /** Calls completed so far per loop. */
  readonly perLoop: number[];
  /** Lets the loops finish once each has made CALLS_AFTER calls started after `since`. */
  finishAfter(since: number): void;
  readonly done: Promise<void>;
}

/** LOOPS concurrent loops of SayHello on one grpc-js client. */
function runLoad(client: Client): Load {
  const calls: CallRecord[] = [];
  const perLoop: number[] = Array.from({ length: LOOPS }, () => 0);
  let since: number | undefined;
  const loop = async (index: number): Promise<void> => {
    let after = 0;
    await sleep(index); // loops out of step, so that calls are at every stage when the upstream shuts down
    for (let n = 0; n < MAX_CALLS_PER_LOOP; n++) {
      const metadata = new Metadata();
      metadata.set(DELAY_HEADER, String(CALL_DELAY_MS + ((index * 7 + n * 3) % CALL_DELAY_MS)));
      const startedAt = Date.now();
      const outcome = await within(sayHello(client, `loop ${index} call ${n}`, metadata), CALL_LIMIT_MS, `call ${n} of loop ${index}`);
      const record = {
        loop: index,
        startedAt,
        endedAt: Date.now(),
        code: outcome.status.code,
        details: outcome.status.details,
        servedBy: outcome.servedBy,
      };
      calls.push(record);
      perLoop[index] = (perLoop[index] ?? 0) + 1;
      if (since !== undefined && startedAt >= since) after++;
      if (after >= CALLS_AFTER) return;
      if (record.code !== GrpcCode.OK) await sleep(FAILURE_PAUSE_MS);
    }
  };
  return {
    calls,
    perLoop,
    finishAfter(at) {
      since = at;
    },
    done: Promise.all(Array.from({ length: LOOPS }, (_, i) => loop(i))).then(() => undefined),
  };
}

function summarize(calls: readonly CallRecord[]): string {
  const byCode = new Map<number, number>();
  const byServer = new Map<string, number>();
  for (const c of calls) {
    byCode.set(c.code, (byCode.get(c.code) ?? 0) + 1);
    if (c.code === GrpcCode.OK) byServer.set(c.servedBy ?? '?', (byServer.get(c.servedBy ?? '?') ?? 0) + 1);
  }
  return `${calls.length} calls; by status ${JSON.stringify(Object.fromEntries(byCode))}; OK by server ${JSON.stringify(Object.fromEntries(byServer))}`;
}

describe('an upstream restarting under load', { timeout: TEST_TIMEOUT_MS * 3 }, () => {
  let gw: GatewayFixture;
  let servers: GreeterServer[] = [];
  let clients: Client[] = [];

  before(async () => {
    gw = await startGateway();
  });
  afterEach(async () => {
    for (const client of clients) client.close();
    await Promise.all(servers.map((s) => s.close(0)));
    clients = [];
    servers = [];
  });
  after(async () => gw.close());

  test('one node restarted gracefully on the same port: only calls sent while the port is closed fail, with UNAVAILABLE', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const first = await startGreeter({ id: 'first' });
    servers.push(first);
    await putRoute(gw, 'restart', { uri: '/helloworld.Greeter/*', upstream: { scheme: 'grpc', nodes: { [first.address]: 1 } } });
    const client = greeterClient(gw.h2cAddress);
    clients.push(client);

    const load = runLoad(client);
    await waitUntil(() => load.perLoop.every((n) => n >= CALLS_BEFORE), LOAD_LIMIT_MS, () => `loops warmed up: ${load.perLoop.join(',')}`);
    const shutdownAt = Date.now();
    await within(first.close(2_000), 5_000, 'graceful shutdown of the first server');
    const closedAt = Date.now();
    const acceptedByFirst = first.counts.SayHello;
    await sleep(PORT_CLOSED_MS);
    const second = await startGreeter({ id: 'second', port: first.port });
    servers.push(second);
    const restartedAt = Date.now();
    load.finishAfter(restartedAt);
    await within(load.done, LOAD_LIMIT_MS, 'the load loops');

    const failures = load.calls.filter((c) => c.code !== GrpcCode.OK);
    const okFirst = load.calls.filter((c) => c.code === GrpcCode.OK && c.servedBy === 'first').length;
    const failureCodes = [...new Set(failures.map((c) => c.code))];
    // Calls the first server finished after its shutdown began: they were in flight when it sent GOAWAY.
    const finishedDuringShutdown = load.calls.filter((c) => c.servedBy === 'first' && c.code === GrpcCode.OK && c.endedAt >= shutdownAt).length;
    const failedSentBeforeShutdown = failures.filter((c) => c.startedAt < shutdownAt).length;
    t.diagnostic(summarize(load.calls));
    t.diagnostic(
      `first server accepted ${acceptedByFirst} calls, ${okFirst} succeeded; shutdown took ${closedAt - shutdownAt} ms; ` +
        `${finishedDuringShutdown} of them finished after the shutdown began; port closed ${restartedAt - closedAt} ms; ` +
        `${failures.length} failures (${failedSentBeforeShutdown} sent before the shutdown began), statuses ${JSON.stringify(failureCodes)}; ` +
        `sample: ${JSON.stringify(failures.slice(0, 3).map((f) => f.details))}`,
    );

    assert.equal(okFirst, acceptedByFirst, 'a call the first server accepted did not succeed through the gateway');
    assert.ok(finishedDuringShutdown > 0, 'no call was in flight at the upstream when it shut down: the drain was not exercised');
    for (const failure of failures) {
      assert.equal(failure.code, GrpcCode.UNAVAILABLE, `a call failed with ${failure.code}: ${failure.details}`);
      assert.ok(
        failure.startedAt < restartedAt && failure.endedAt >= shutdownAt,
        `a call failed outside the restart window: started ${failure.startedAt - shutdownAt} ms after the shutdown began, ` +
          `ended ${failure.endedAt - shutdownAt} ms after; restart complete at ${restartedAt - shutdownAt} ms: ${failure.details}`,
      );
    }
    const afterRestart = load.calls.filter((c) => c.startedAt >= restartedAt);
    assert.ok(afterRestart.length >= LOOPS * CALLS_AFTER, `only ${afterRestart.length} calls after the restart`);
    const failedAfter = afterRestart.filter((c) => c.code !== GrpcCode.OK);
    assert.deepEqual(
      failedAfter.map((c) => `${c.code} ${c.details}`),
      [],
      'calls sent after the new server listened failed',
    );
    assert.ok(afterRestart.every((c) => c.servedBy === 'second'), 'a call after the restart was not served by the new server');
  });

  test('two nodes, one stopped gracefully under load: no call fails', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const stays = await startGreeter({ id: 'stays' });
    const stops = await startGreeter({ id: 'stops' });
    servers.push(stays, stops);
    await putRoute(gw, 'restart', {
      uri: '/helloworld.Greeter/*',
      upstream: { scheme: 'grpc', nodes: { [stays.address]: 1, [stops.address]: 1 } },
    });
    const client = greeterClient(gw.h2cAddress);
    clients.push(client);

    const load = runLoad(client);
    await waitUntil(() => load.perLoop.every((n) => n >= CALLS_BEFORE), LOAD_LIMIT_MS, () => `loops warmed up: ${load.perLoop.join(',')}`);
    const stoppedByBefore = stops.counts.SayHello;
    assert.ok(stoppedByBefore > 0, 'the second node got no calls before it stopped: round robin did not use it');
    await within(stops.close(2_000), 5_000, 'graceful shutdown of one node');
    const stoppedAt = Date.now();
    load.finishAfter(stoppedAt);
    await within(load.done, LOAD_LIMIT_MS, 'the load loops');

    const failures = load.calls.filter((c) => c.code !== GrpcCode.OK);
    const okStops = load.calls.filter((c) => c.code === GrpcCode.OK && c.servedBy === 'stops').length;
    t.diagnostic(`${summarize(load.calls)}; the stopped node accepted ${stops.counts.SayHello} calls, ${okStops} succeeded`);
    assert.deepEqual(
      failures.map((c) => `${c.code} ${c.details}`),
      [],
      'calls failed although another node was up',
    );
    assert.equal(okStops, stops.counts.SayHello, 'a call the stopped node accepted did not succeed');
    assert.ok(
      load.calls.filter((c) => c.startedAt >= stoppedAt).every((c) => c.servedBy === 'stays'),
      'a call after the stop was served by the stopped node',
    );
  });
});
