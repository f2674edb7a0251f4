/**
 * Long runs of the HTTP/2 engine fuzzer (test/http2/fuzz-gen.ts and fuzz-harness.ts; the CI test is
 * test/http2/fuzz.test.ts): random and mutated client frame sequences into real ServerConnections, every invariant
 * checked after every read and every connection. Prints frames fed, connections, what the server answered per
 * kind (GOAWAY and RST_STREAM codes, connection-error reasons), exceptions caught and peak RSS.
 *
 *   node bench/fuzz.ts [--frames 10000000] [--seconds S] [--seed N] [--plane] [--trace SESSION]
 *
 * --frames / --seconds: stop at whichever comes first (default 10 million frames, no time limit).
 * --plane: through a data plane on the native engine over loopback, to a grpc-js upstream (fuzz-plane.ts), then
 *          checks the upstream pool drained and a legitimate call succeeds; far fewer frames per second.
 * --trace: print the frames in and out of one session of an in-process run (replays a failure).
 * Exit status 1 when an invariant broke or an exception escaped.
 */
import { parseArgs } from 'node:util';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { FuzzFailure, formatStats, fuzzInProcess, type FuzzStats } from '../test/http2/fuzz-harness.ts';
import { fuzzThroughPlane, startPlane, upstreamStreamsDrained } from '../test/http2/fuzz-plane.ts';

const { values } = parseArgs({
  options: {
    frames: { type: 'string', default: '10000000' },
    seconds: { type: 'string' },
    seed: { type: 'string', default: String(0x5eed_2b12) },
    plane: { type: 'boolean', default: false },
    trace: { type: 'string' },
  },
});

const maxFrames = Number(values.frames);
const budgetMs = values.seconds === undefined ? undefined : Number(values.seconds) * 1000;
const seed = Number(values.seed);
const escaped: unknown[] = [];
process.on('uncaughtException', (err) => {
  escaped.push(err);
  console.error('uncaught exception:', err);
});
process.on('unhandledRejection', (err) => {
  escaped.push(err);
  console.error('unhandled rejection:', err);
});

function reasons(stats: FuzzStats): string {
  const top = Object.entries(stats.reasons)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 25)
    .map(([reason, n]) => `    ${String(n).padStart(9)}  ${reason}`);
  return ['  connection errors by reason (GOAWAY debug text, session kind), top 25:', ...top].join('\n');
}

const label = values.plane ? `through a data plane, seed ${seed}` : `in process, seed ${seed}`;
console.log(`HTTP/2 fuzzing ${label}: up to ${maxFrames.toLocaleString('en-US')} frames${budgetMs === undefined ? '' : ` or ${budgetMs / 1000} s`}`);
let failed = false;
try {
  if (values.plane) {
    const fixture = await startPlane();
    try {
      const stats = await fuzzThroughPlane(fixture, { seed, maxFrames, ...(budgetMs === undefined ? {} : { budgetMs }) });
      console.log(formatStats(stats, label));
      console.log(reasons(stats));
      const drained = await upstreamStreamsDrained(fixture.plane, 10_000);
      console.log(`  upstream pool after the run: ${JSON.stringify(drained)}`);
      const result = await fixture.sayHello('after the fuzzing');
      console.log(`  legitimate call afterwards: grpc-status ${result.status.code}, ${JSON.stringify(result.message)}`);
      if (drained.streams !== 0 || drained.bufferedBytes !== 0 || result.status.code !== GrpcStatus.OK) failed = true;
    } finally {
      await fixture.close();
    }
  } else {
    const stats = await fuzzInProcess({
      seed,
      maxFrames,
      ...(budgetMs === undefined ? {} : { budgetMs }),
      ...(values.trace === undefined ? {} : { trace: Number(values.trace), maxSessions: Number(values.trace) + 1 }),
      progressEvery: 20_000,
      onProgress: (s) => console.log(`  … ${s.frames.toLocaleString('en-US')} frames, ${s.sessions.toLocaleString('en-US')} connections, ${(s.elapsedMs / 1000).toFixed(0)} s`),
    });
    console.log(formatStats(stats, label));
    console.log(reasons(stats));
  }
} catch (err) {
  failed = true;
  console.error(err instanceof FuzzFailure ? `INVARIANT BROKEN: ${err.message}` : err);
}
console.log(`  exceptions escaped: ${escaped.length}; invariant violations: ${failed ? 1 : 0}`);
process.exitCode = failed || escaped.length > 0 ? 1 : 0;
