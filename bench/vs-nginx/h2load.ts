/**
 * One h2load run and what it reports: its summary (requests done/succeeded, status codes, DATA bytes received),
 * the per-request latencies of its --log-file (start µs since the epoch, HTTP status, µs until the response ended),
 * and the CPU time h2load itself used (bash's `times` after it exits, so the client's cost is known too).
 *
 * h2load sees HTTP statuses only, not grpc-status (a gRPC error is a 200 with a trailer): the caller verifies gRPC
 * success separately (upstream call counts, DATA bytes, grpc-js samples).
 *
 * With `http1` h2load speaks HTTP/1.1 (--h1) with keep-alive; its -m is then the number of pipelined requests per
 * connection (h2load's help: "When http/1.1 is used, this specifies the number of HTTP pipelining requests
 * in-flight"), and its `data` traffic counts the response bodies without their chunked framing.
 */
import { readFileSync, rmSync } from 'node:fs';
import { spawnTracked } from './children.ts';

export interface H2loadOptions {
  url: string;
  bodyFile: string;
  connections: number;
  streamsPerConnection: number;
  /** -n: a fixed number of requests (all of them complete, so counts can be compared exactly)… */
  requests?: number;
  /** …or -D: a duration in seconds (warm-up and sizing; requests in flight at the end are not counted). */
  durationSeconds?: number;
  /** --log-file: per-request latencies. */
  logFile?: string;
  /** Killed after this long (a stuck proxy must not hang the benchmark). */
  limitMs: number;
  /**
   * Request headers (`name: value`): the case's content type and the like (cases.ts requestHeaders), then e.g.
   * gateway-plugins' API key. h2load appends every -H but those it generates (:authority, :method, :scheme,
   * user-agent), so each is given once.
   */
  headers: readonly string[];
  /** --h1: HTTP/1.1 (keep-alive) instead of HTTP/2. */
  http1?: boolean;
}

export interface H2loadResult {
  exitCode: number | string;
  /** Requests that h2load counted as succeeded (HTTP status < 400, stream completed). */
  succeeded: number;
  done: number;
  failed: number;
  errored: number;
  timeouts: number;
  status2xx: number;
  /** Bytes of response body received: DATA frame payload (HTTP/2), decoded body (HTTP/1.1). */
  dataBytes: number;
  /** `finished in` of h2load, milliseconds (includes connecting). */
  finishedMs: number;
  /** req/s as h2load computed it. */
  reqPerSec: number;
  /** CPU time of h2load (user + sys), microseconds; NaN when bash's `times` could not be read. */
  clientCpuUs: number;
  /** From --log-file: latency of every request that got status 200, microseconds, in completion order. */
  latenciesUs: number[];
  /** From --log-file: first request start to last request end, microseconds. */
  logWindowUs: number;
  /** Requests in the log with a status other than 200. */
  logNon200: number;
  stdout: string;
}

/** h2load under bash, so that bash's `times` reports the CPU time of its finished child on stderr. */
const WRAPPER = 'h2load "$@"; rc=$?; echo "@@times" >&2; times >&2; exit $rc';

export async function runH2load(options: H2loadOptions): Promise<H2loadResult> {
  const args = ['-t', '1', '-c', String(options.connections), '-m', String(options.streamsPerConnection)];
  if (options.http1 === true) args.push('--h1');
  for (const header of options.headers) args.push('-H', header);
  args.push('-d', options.bodyFile);
  if (options.requests !== undefined) args.push('-n', String(options.requests));
  if (options.durationSeconds !== undefined) args.push('-D', `${Math.round(options.durationSeconds * 1000)}ms`);
  if (options.logFile !== undefined) {
    rmSync(options.logFile, { force: true });
    args.push('--log-file', options.logFile);
  }
  args.push(options.url);
  const child = spawnTracked('h2load', 'bash', ['-c', WRAPPER, 'h2load', ...args]);
  let stdout = '';
  let stderr = '';
  child.child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => void child.stop(), options.limitMs);
  const exitCode = await child.exit;
  clearTimeout(timer);

  const num = (re: RegExp): number => {
    const match = re.exec(stdout);
    return match?.[1] === undefined ? Number.NaN : Number(match[1]);
  };
  const finished = /finished in ([\d.]+)(ms|s|us)/.exec(stdout);
  const finishedMs =
    finished?.[1] === undefined ? Number.NaN : Number(finished[1]) * (finished[2] === 's' ? 1000 : finished[2] === 'us' ? 0.001 : 1);
  const latencies = options.logFile === undefined ? { latenciesUs: [], logWindowUs: Number.NaN, logNon200: 0 } : readLog(options.logFile);
  return {
    exitCode,
    succeeded: num(/(\d+) succeeded/),
    done: num(/(\d+) done/),
    failed: num(/(\d+) failed/),
    errored: num(/(\d+) errored/),
    timeouts: num(/(\d+) timeout/),
    status2xx: num(/status codes: (\d+) 2xx/),
    dataBytes: num(/\((\d+)\) data/),
    finishedMs,
    reqPerSec: num(/finished in [^,]+, ([\d.]+) req\/s/),
    clientCpuUs: parseTimes(stderr),
    ...latencies,
    stdout: exitCode === 0 ? stdout : `${stdout}\n${stderr}`,
  };
}

/** bash `times`: line 1 the shell's user/sys, line 2 its children's: `0m1.234s 0m0.056s`. */
function parseTimes(stderr: string): number {
  const after = stderr.split('@@times\n')[1];
  const children = after?.split('\n')[1];
  if (children === undefined) return Number.NaN;
  const seconds = [...children.matchAll(/(\d+)m([\d.]+)s/g)].reduce((sum, m) => sum + Number(m[1]) * 60 + Number(m[2]), 0);
  return seconds * 1e6;
}

function readLog(path: string): { latenciesUs: number[]; logWindowUs: number; logNon200: number } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return { latenciesUs: [], logWindowUs: Number.NaN, logNon200: 0 };
  }
  const latenciesUs: number[] = [];
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  let logNon200 = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const [start, status, duration] = line.split('\t').map(Number);
    if (start === undefined || duration === undefined) continue;
    if (status !== 200) {
      logNon200++;
      continue;
    }
    latenciesUs.push(duration);
    first = Math.min(first, start);
    last = Math.max(last, start + duration);
  }
  return { latenciesUs, logWindowUs: latenciesUs.length === 0 ? Number.NaN : last - first, logNon200 };
}
