/**
 * Resident memory of the gateway's processes (issue #15), as `npm start` runs them: a control plane, and a data plane
 * with 2 worker processes (the primary reads etcd and relays the configuration), the default conf/config.yaml
 * (metrics and the access log on), on a real etcd, with an in-process HTTP/2 upstream that answers every call OK.
 * VmRSS of each process from /proc, at rest (after start and one route PUT) and again after 100,000 unary calls
 * from h2load (10 connections × 10 streams, 64-byte messages), once the load has stopped.
 *
 *   node bench/process-memory.ts [--calls 100000] [--workers 2] [--settle 5]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEtcd } from '../test/helpers/etcd.ts';
import { startOkUpstream } from './lib/grpc.ts';
import { spawnControlPlane, spawnDataPlane } from './lib/processes.ts';
import { markdownTable } from './lib/stats.ts';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '100000' }, workers: { type: 'string', default: '2' }, settle: { type: 'string', default: '5' } } });
const calls = Number(values.calls);
const workers = Number(values.workers);
const settleMs = Number(values.settle) * 1000;

function rssMiB(pid: number): number {
  const line = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return line === null ? NaN : Number(line[1]) / 1024;
}

/** The process and its descendants, parents first. */
function tree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // gone
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    out.push(p);
    for (const c of (children.get(p) ?? []).sort((a, b) => a - b)) walk(c);
  };
  walk(pid);
  return out;
}

const comm = (pid: number): string => readFileSync(`/proc/${pid}/comm`, 'utf8').trim();

const etcd = await startEtcd();
const upstream = await startOkUpstream();
const dir = mkdtempSync(join(tmpdir(), 'gw-rss-'));
const controlPlane = await spawnControlPlane(etcd.endpoint);
const dataPlane = await spawnDataPlane(etcd.endpoint, { env: { GATEWAY_WORKER_PROCESSES: String(workers), GATEWAY_ACCESS_LOG: join(dir, 'access.log'), LOG_LEVEL: 'warn' } });
try {
  const put = await fetch(`${controlPlane.adminUrl}/routes/1`, {
    method: 'PUT',
    headers: { 'X-API-KEY': controlPlane.adminKey, 'content-type': 'application/json' },
    body: JSON.stringify({ uri: '/bench.Echo/*', upstream: { scheme: 'grpc', type: 'roundrobin', nodes: { [upstream.address]: 1 } } }),
  });
  if (put.status !== 200 && put.status !== 201) throw new Error(`route PUT: ${put.status} ${await put.text()}`);
  await sleep(settleMs);
  const pids = [controlPlane.pid, ...tree(dataPlane.pid)];
  const roles = new Map<number, string>([[controlPlane.pid, 'control plane'], [dataPlane.pid, 'data-plane primary']]);
  for (const pid of pids) if (!roles.has(pid)) roles.set(pid, `data-plane worker (${comm(pid)})`);
  const atRest = new Map(pids.map((pid) => [pid, rssMiB(pid)]));

  const body = join(dir, 'req.body');
  const message = Buffer.alloc(64, 7);
  const frame = Buffer.alloc(5);
  frame.writeUInt32BE(message.length, 1);
  writeFileSync(body, Buffer.concat([frame, message]));
  const h2load = spawnSync('h2load', ['-n', String(calls), '-c', '10', '-m', '10', '-d', body, '-H', 'content-type: application/grpc', '-H', 'te: trailers', `http://${dataPlane.h2cAddress}/bench.Echo/Unary`], { encoding: 'utf8' });
  const done = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded/.exec(h2load.stdout);
  if (done === null || Number(done[2]) !== calls) throw new Error(`h2load: ${h2load.stdout.slice(-1500)}${h2load.stderr}`);
  await sleep(settleMs);
  const afterLoad = new Map(pids.map((pid) => [pid, rssMiB(pid)]));
  const node = execFileSync(process.execPath, ['--version'], { encoding: 'utf8' }).trim();
  console.log(`\nRSS in MiB (VmRSS), node ${node}, ${workers} workers, ${calls} calls through ${upstream.calls} upstream calls\n`);
  console.log(markdownTable(['process', 'at rest', `after ${calls.toLocaleString('en')} calls`], pids.map((pid) => [roles.get(pid) ?? String(pid), (atRest.get(pid) ?? NaN).toFixed(1), (afterLoad.get(pid) ?? NaN).toFixed(1)])));
  console.log(`\nnode bench/process-memory.ts --calls ${calls} --workers ${workers} --settle ${settleMs / 1000}`);
} finally {
  await dataPlane.stop();
  await controlPlane.stop();
  await upstream.close();
  await etcd.close();
  rmSync(dir, { recursive: true, force: true });
}
