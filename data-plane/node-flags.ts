/**
 * V8 flags a data-plane process runs with (issue #6; measured with `npm run bench -- --cases mib-8` and a single
 * data-plane process relaying 1 MiB echoes, 8 in flight, on the 2-core CI machine).
 *
 * node:http2 hands every received DATA frame to JavaScript as its own Buffer, whose memory lives outside V8's heap.
 * From Node 24 (V8 13) that external memory drives V8's old-generation collector by itself: relaying 1 MiB messages
 * at ~400 calls/s allocates ~800 MiB/s of such buffers and triggered a full mark-compact every 50–100 ms although the
 * JS heap held ~25 MiB, costing 2.4–2.8 ms of CPU per call against 1.4 ms on Node 22. With external memory counted
 * in V8's global limit and an initial old-generation limit of 128 MiB, the same run needs no mark-compact at all:
 * 1.2 ms per call (faster than Node 22), unary calls unchanged, and RSS under that load 65 MiB higher (then flat:
 * the old generation is collected once it reaches its limit). Both are V8 heap-configuration flags, read when the isolate is created, so they must be on the command
 * line (`v8.setFlagsFromString` at start-up measured no better than without them), and Node 20/22 reject the first.
 *
 * `--max-semi-space-size=8` (issue #12) caps the young generation's semi-spaces at 8 MiB: by default V8 lets them grow
 * further under a burst of long-lived objects, such as 10,000 connections opened at once, and keeps them. Measured with
 * `npm run bench -- --cases idle,unary-100,mib-8,stream-16 --targets nginx,gateway-native --rounds 3 --seconds 5`
 * in two A/B pairs: 10,000 idle h2c connections 4.56–4.92 KiB each instead of 5.93–6.54; unary at 100 in flight
 * 28.5 µs of CPU per call with or without it (2.08–2.51× nginx against 2.30–2.56×), 1 MiB messages and server
 * streams within the runs' noise.
 */

const FLAGS_FROM_MAJOR = 24;

/** The flags for this Node version (empty before Node 24, whose V8 lacks or does not need them). */
export function dataPlaneNodeFlags(nodeVersion: string = process.versions.node): readonly string[] {
  const major = Number(nodeVersion.split('.')[0]);
  if (!(major >= FLAGS_FROM_MAJOR)) return [];
  return ['--external-memory-accounted-in-global-limit', '--initial-old-space-size=128', '--max-semi-space-size=8'];
}

/** `execArgv` plus whichever of the flags it lacks (a flag given with another value is left as given). */
export function withDataPlaneNodeFlags(execArgv: readonly string[], nodeVersion?: string): string[] {
  const missing = missingDataPlaneNodeFlags(execArgv, nodeVersion);
  return missing.length === 0 ? [...execArgv] : [...missing, ...execArgv];
}

/** The flags `execArgv` lacks, compared by name (`--initial-old-space-size=256` counts as present). */
export function missingDataPlaneNodeFlags(execArgv: readonly string[], nodeVersion?: string): string[] {
  const given = new Set(execArgv.map(flagName));
  return dataPlaneNodeFlags(nodeVersion).filter((flag) => !given.has(flagName(flag)));
}

function flagName(arg: string): string {
  const eq = arg.indexOf('=');
  return (eq === -1 ? arg : arg.slice(0, eq)).replaceAll('_', '-');
}
