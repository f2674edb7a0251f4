/**
 * Robustness fuzzing of the native HTTP/2 engine from a fixed seed, within a CI time budget (about 15 s in all):
 * random and mutated client frame sequences (fuzz-gen.ts) fed to real ServerConnections.
 *
 * 1. In process (fuzz-harness.ts): a ServerConnection per session over a fake socket (fast, slow or stalled
 *    reader), a handler answering the ways a proxy does; checked after every read and every session (bounded
 *    reader, header-block and queue sizes; well-formed output; after close: `streams` empty, nothing queued, every
 *    stream the handler was given ended or reset, hooks balanced).
 * 2. Through a data plane on the native engine (fuzz-plane.ts): the same generator over loopback TCP into the h2c
 *    listener, routes to a real grpc-js Greeter, so Call/Attempt/ClientPool relay under fuzzing; afterwards the
 *    upstream pool has no stream left and a legitimate grpc-js call succeeds on a fresh connection.
 *
 * Either way no exception may escape ('uncaughtException' and 'unhandledRejection' are recorded and fail the
 * test), and the heap after a full GC stays within a bound of where it started. A failure names the seed and the
 * session; bench/fuzz.ts replays a seed for longer (`--seed N --trace SESSION` prints that session's frames).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { formatStats, fuzzInProcess } from './fuzz-harness.ts';
import { fuzzThroughPlane, startPlane, upstreamStreamsDrained, type PlaneFixture } from './fuzz-plane.ts';

const SEED = 0x5eed_2b12;
const IN_PROCESS_BUDGET_MS = 7_000;
const PLANE_BUDGET_MS = 8_000;
/** Growth of heap + Buffer memory, after a full GC, that a run may leave behind. */
const RETAINED_LIMIT_BYTES = 48 * 1024 * 1024;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap and Buffer memory in use after a full GC. */
function retained(): number {
  gc();
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

describe('HTTP/2 engine fuzzing (fixed seed, time budget)', () => {
  const escaped: unknown[] = [];
  const record = (err: unknown): void => {
    escaped.push(err);
  };

  before(() => {
    process.on('uncaughtException', record);
    process.on('unhandledRejection', record);
  });

  after(() => {
    process.off('uncaughtException', record);
    process.off('unhandledRejection', record);
  });

  test('in process: random and mutated frames into ServerConnections, invariants after every read and close', { timeout: 60_000 }, async (t) => {
    const start = retained();
    const stats = await fuzzInProcess({ seed: SEED, budgetMs: IN_PROCESS_BUDGET_MS });
    for (const line of formatStats(stats, `in process, seed ${SEED}`).split('\n')) t.diagnostic(line);
    assert.ok(stats.frames > 20_000, `only ${stats.frames} frames fed`);
    assert.ok(stats.requests > 1_000, `only ${stats.requests} requests reached the handler`);
    // Connections closed by a connection error keep their socket for a 1 s destroy timer: let those run out.
    await sleep(1_200);
    const growth = retained() - start;
    t.diagnostic(`retained after GC: ${(growth / 1024 / 1024).toFixed(1)} MiB more than before`);
    assert.ok(growth < RETAINED_LIMIT_BYTES, `${growth} bytes retained after the run`);
    assert.deepEqual(escaped, []);
  });

  describe('through a data plane on the native engine', () => {
    let fixture: PlaneFixture;

    before(async () => {
      fixture = await startPlane();
      const warm = await fixture.sayHello('before');
      assert.equal(warm.status.code, 0, warm.status.details);
    });

    after(async () => {
      await (fixture as PlaneFixture | undefined)?.close(); // unset when before() failed
    });

    test('fuzzed clients through Call/Attempt/ClientPool: no upstream stream leaks, a legitimate call succeeds after', { timeout: 60_000 }, async (t) => {
      const start = retained();
      const stats = await fuzzThroughPlane(fixture, { seed: SEED, budgetMs: PLANE_BUDGET_MS });
      for (const line of formatStats(stats, `through the data plane, seed ${SEED}`).split('\n')) t.diagnostic(line);
      assert.ok(stats.frames > 2_000, `only ${stats.frames} frames fed`);
      const relayed = Object.entries(stats.outcomes).filter(([key]) => key.startsWith('grpc-status'));
      assert.ok(relayed.length > 0, 'no gRPC response came back at all');

      const drained = await upstreamStreamsDrained(fixture.plane, 10_000);
      t.diagnostic(`upstream pool after the run: ${JSON.stringify(drained)}`);
      assert.equal(drained.streams, 0, 'upstream streams left open after every client went');
      assert.equal(drained.bufferedBytes, 0, 'upstream bytes still queued');

      const result = await fixture.sayHello('after the fuzzing');
      assert.equal(result.status.code, 0, result.status.details);
      assert.equal(result.message, 'Hello after the fuzzing');

      await sleep(1_200);
      const growth = retained() - start;
      t.diagnostic(`retained after GC: ${(growth / 1024 / 1024).toFixed(1)} MiB more than before`);
      assert.ok(growth < RETAINED_LIMIT_BYTES, `${growth} bytes retained after the run`);
      assert.deepEqual(escaped, []);
    });
  });
});
