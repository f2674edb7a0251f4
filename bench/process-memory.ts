/**
 * Memory of the data plane's processes (issue #15): a primary and its workers, at rest after start-up, and at rest
 * again after CALLS unary calls. Starts a local etcd with one route to a raw HTTP/2 gRPC upstream, then one data
 * plane as `npm run data-plane` runs it (`--from dist`, the built JavaScript, the default) or straight from the
 * TypeScript sources with Node's type stripping (`--from source`), with its V8 flags (data-plane/node-flags.ts), the
 * access log on (to /dev/null) and WORKERS worker processes. Readiness is the status port's /readyz, so no gRPC
 * probe connection is counted against the per-address connection limit.
 *
 * Per process it reads /proc/<pid>/smaps_rollup: RSS (what `ps` shows; it counts the pages of the node binary every
 * process maps, shared by all of them), PSS (each shared page divided among the processes sharing it) and private
 * (pages no other process has: what one more worker costs).
 *
 *   node bench/process-memory.ts [--from dist|source] [--workers 2] [--calls 100000] [--concurrency 100]
 *                                [--rest-seconds 10]
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { connect, type ClientHttp2Session } from 'node:http2';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Etcd3 } from 'etcd3';
import { REPO_ROOT } from '../shared/config.ts';
import { withDataPlaneNodeFlags } from '../data-plane/node-flags.ts';
import { startEtcd } from '../test/helpers/etcd.ts';
import { freePort } from '../test/helpers/ports.ts';
import { keepOutputTail, stopChild } from '../scripts/local-processes.ts';
import { startOkUpstream } from './lib/grpc.ts';
import { markdownTable } from './lib/stats.ts';

const READY_LIMIT_MS = 60_000;
const READY_POLL_MS = 100;
const PATH = '/bench.Memory/Call';
/** A gRPC frame holding an empty message. */
const EMPTY_MESSAGE = Buffer.alloc(5);
/** Client connections the calls are spread over (each call is its own stream). */
const SESSIONS = 10;

const { values } = parseArgs({
  options: {
    from: { type: 'string', default: 'dist' },
    workers: { type: 'string', default: '2' },
    calls: { type: 'string', default: '100000' },
    concurrency: { type: 'string', default: '100' },
    'rest-seconds': { type: 'string', default: '10' },
  },
});
const from = values.from;
if (from !== 'dist' && from !== 'source') throw new Error('--from must be dist or source');
const workers = positiveInt(values.workers, '--workers');
const calls = positiveInt(values.calls, '--calls');
const concurrency = positiveInt(values.concurrency, '--concurrency');
const restMs = positiveInt(values['rest-seconds'], '--rest-seconds') * 1000;

if (from === 'dist') {
  const build = spawnSync('npm', ['run', '-s', 'build'], { cwd: REPO_ROOT, stdio: 'inherit' });
  if (build.status !== 0) throw new Error('npm run build failed');
}

const etcd = await startEtcd();
const upstream = await startOkUpstream();
const client = new Etcd3({ hosts: etcd.endpoint });
await client.put('/apisix/routes/memory').value(JSON.stringify({ id: 'memory', uri: PATH, upstream: { type: 'roundrobin', scheme: 'grpc', nodes: { [upstream.address]: 1 } } }));
client.close();

const h2cPort = await freePort();
const statusPort = await freePort();
const entry = from === 'dist' ? 'dist/data-plane/main.js' : 'data-plane/main.ts';
const env: NodeJS.ProcessEnv = {
  ...process.env,
  GATEWAY_ETCD_HOSTS: etcd.endpoint,
  GATEWAY_H2C_LISTEN: `127.0.0.1:${h2cPort}`,
  GATEWAY_TLS_LISTEN: `127.0.0.1:${await freePort()}`,
  GATEWAY_STATUS_LISTEN: `127.0.0.1:${statusPort}`,
  GATEWAY_WORKER_PROCESSES: String(workers),
  LOG_LEVEL: 'warn',
};
delete env['NODE_TEST_CONTEXT'];
const child = spawn(process.execPath, [...withDataPlaneNodeFlags([]), entry], { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
const tail = keepOutputTail(child, 8_000);

try {
  await waitReady(`http://127.0.0.1:${statusPort}/readyz`);
  await sleep(restMs);
  const atRest = sample(child.pid ?? 0);
  process.stderr.write(`${from}: ready, ${atRest.length} processes; ${calls} calls, ${concurrency} in flight\n`);
  const failed = await runCalls(`http://127.0.0.1:${h2cPort}`, calls, concurrency);
  if (failed > 0) throw new Error(`${failed} of ${calls} calls did not end with grpc-status 0`);
  await sleep(restMs);
  const afterLoad = sample(child.pid ?? 0);
  const rows = atRest.map((rest, i) => {
    const load = afterLoad[i];
    return [rest.role, mib(rest.rss), mib(rest.pss), mib(rest.privateBytes), load === undefined ? '' : mib(load.rss), load === undefined ? '' : mib(load.pss), load === undefined ? '' : mib(load.privateBytes)];
  });
  process.stdout.write(`\nData plane from ${from}, ${workers} workers, Node ${process.versions.node}; MiB, at rest ${restMs / 1000} s after ready / after ${calls} calls:\n\n`);
  process.stdout.write(`${markdownTable(['process', 'RSS at rest', 'PSS', 'private', `RSS after ${calls} calls`, 'PSS', 'private'], rows)}\n`);
} catch (err) {
  process.stderr.write(`${tail.text()}\n`);
  throw err;
} finally {
  await stopChild(child, 5_000);
  await upstream.close();
  await etcd.close();
}

interface ProcessMemory {
  role: string;
  rss: number;
  pss: number;
  privateBytes: number;
}

/** The primary, then its children (the workers) in pid order. */
function sample(primary: number): ProcessMemory[] {
  const children = readdirSync(`/proc/${primary}/task`).flatMap((task) =>
    readFileSync(`/proc/${primary}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
  );
  children.sort((a, b) => a - b);
  return [{ role: workers > 1 ? 'primary' : 'data plane', ...smaps(primary) }, ...children.map((pid, i) => ({ role: `worker ${i + 1}`, ...smaps(pid) }))];
}

function smaps(pid: number): Omit<ProcessMemory, 'role'> {
  const text = readFileSync(join('/proc', String(pid), 'smaps_rollup'), 'utf8');
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 'NaN') * 1024;
  return { rss: kib('Rss'), pss: kib('Pss'), privateBytes: kib('Private_Clean') + kib('Private_Dirty') };
}

async function waitReady(url: string): Promise<void> {
  const deadline = Date.now() + READY_LIMIT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error('the data plane exited before it was ready');
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`not ready within ${READY_LIMIT_MS} ms`);
    await sleep(READY_POLL_MS);
  }
}

/** `total` unary calls, `inFlight` at a time over SESSIONS connections; returns how many did not end with status 0. */
async function runCalls(origin: string, total: number, inFlight: number): Promise<number> {
  // A connection that reached the gateway's per-connection request cap (keepalive_requests) gets GOAWAY: the lane
  // that finds it going away opens a new one, as a gRPC client does.
  const open = (): ClientHttp2Session => {
    const session = connect(origin);
    session.on('error', () => undefined);
    session.on('goaway', () => session.close());
    return session;
  };
  const sessions: ClientHttp2Session[] = Array.from({ length: SESSIONS }, open);
  const sessionFor = (i: number): ClientHttp2Session => {
    const index = i % SESSIONS;
    const current = sessions[index];
    if (current !== undefined && !current.closed && !current.destroyed) return current;
    const fresh = open();
    sessions[index] = fresh;
    return fresh;
  };
  let started = 0;
  let failed = 0;
  const seen = new Map<string, number>();
  const one = (session: ClientHttp2Session): Promise<void> =>
    new Promise((resolve) => {
      let status = '';
      let message = '';
      const stream = session.request({ ':method': 'POST', ':path': PATH, 'content-type': 'application/grpc', te: 'trailers' });
      const read = (headers: Record<string, unknown>): void => {
        const value = headers['grpc-status'];
        if (typeof value === 'string') status = value;
        const text = headers['grpc-message'];
        if (typeof text === 'string') message = text;
      };
      stream.on('response', read);
      stream.on('trailers', read);
      stream.on('error', () => undefined);
      stream.on('close', () => {
        if (status !== '0') {
          failed++;
          const key = `${status || 'none'} ${message}`;
          seen.set(key, (seen.get(key) ?? 0) + 1);
        }
        resolve();
      });
      stream.resume();
      stream.end(EMPTY_MESSAGE);
    });
  const lane = async (i: number): Promise<void> => {
    while (started < total) {
      started++;
      await one(sessionFor(i));
    }
  };
  try {
    await Promise.all(Array.from({ length: inFlight }, (_, i) => lane(i)));
  } finally {
    for (const session of sessions) session.close();
  }
  if (failed > 0) process.stderr.write(`failed calls by status: ${JSON.stringify([...seen])}\n`);
  return failed;
}

function mib(bytes: number): string {
  return (bytes / 1_048_576).toFixed(1);
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer, got ${text}`);
  return n;
}
