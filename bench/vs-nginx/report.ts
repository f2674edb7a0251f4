/**
 * The markdown report of a gateway-vs-nginx run: machine and versions, the goals as ratios against nginx
 * measured in the same run, one row per case and target (medians over the rounds), idle-connection memory, and CPU
 * per process. Latency percentiles are nearest-rank over every request of a run (h2load --log-file).
 */
import { fmt, markdownTable, median } from '../lib/stats.ts';
import { CASES } from './cases.ts';
import type { IdleResult } from './idle.ts';
import type { TargetName } from './targets.ts';

export interface MachineInfo {
  date: string;
  cpu: string;
  cores: number;
  kernel: string;
  node: string;
  nginx: string;
  go: string;
  grpcGo: string;
  h2load: string;
  /** How nginx's listeners take connections: 'default accept' or 'reuseport'. */
  nginxListen: string;
  gatewayWorkers: string;
  loadAverage: string;
}

export interface RunRecord {
  caseId: string;
  target: TargetName;
  round: number;
  requests: number;
  verified: boolean;
  problems: string[];
  reqPerSec: number;
  /** Latency percentiles, microseconds. */
  p50: number;
  p99: number;
  p999: number;
  /** CPU of the proxy's processes per call, µs (NaN for direct). */
  proxyCpuUsPerCall: number;
  proxyCpuPerProcess: { pid: number; comm: string; usPerCall: number }[];
  upstreamCpuUsPerCall: number;
  clientCpuUsPerCall: number;
  /** CPU that processes outside the benchmark used during the run, in cores. */
  otherCores: number;
}

export interface SampleRecord {
  caseId: string;
  target: TargetName;
  calls: number;
  ok: number;
  problems: string[];
  /** OK calls the upstream counted during the sample. */
  upstreamOk: number;
}

export interface ReportInput {
  machine: MachineInfo;
  rounds: number;
  quick: boolean;
  records: RunRecord[];
  samples: SampleRecord[];
  idle: { target: TargetName; result: IdleResult }[];
  notes: string[];
  seconds: number[];
  /** The command line that produced the report. */
  command: string;
}

const TARGETS: readonly TargetName[] = ['direct', 'nginx', 'gateway'];

interface Row {
  caseId: string;
  target: TargetName;
  runs: RunRecord[];
  reqPerSec: number;
  p50: number;
  p99: number;
  p999: number;
  proxyCpu: number;
  upstreamCpu: number;
  clientCpu: number;
  otherCores: number;
}

function aggregate(records: readonly RunRecord[]): Row[] {
  const rows: Row[] = [];
  for (const c of CASES) {
    for (const target of TARGETS) {
      const runs = records.filter((r) => r.caseId === c.id && r.target === target);
      if (runs.length === 0) continue;
      const med = (pick: (r: RunRecord) => number): number => median(runs.map(pick).filter((v) => Number.isFinite(v)));
      rows.push({
        caseId: c.id,
        target,
        runs,
        reqPerSec: med((r) => r.reqPerSec),
        p50: med((r) => r.p50),
        p99: med((r) => r.p99),
        p999: med((r) => r.p999),
        proxyCpu: med((r) => r.proxyCpuUsPerCall),
        upstreamCpu: med((r) => r.upstreamCpuUsPerCall),
        clientCpu: med((r) => r.clientCpuUsPerCall),
        otherCores: med((r) => r.otherCores),
      });
    }
  }
  return rows;
}

const int = (v: number | undefined): string => fmt(v, 0);
const ratio = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(2)}×`);

export function renderReport(input: ReportInput): string {
  const { machine } = input;
  const rows = aggregate(input.records);
  const row = (caseId: string, target: TargetName): Row | undefined => rows.find((r) => r.caseId === caseId && r.target === target);
  const idleOf = (target: TargetName): IdleResult | undefined => input.idle.find((i) => i.target === target)?.result;
  const other = median(input.records.map((r) => r.otherCores));

  const out: string[] = [];
  out.push(`# gRPC gateway vs nginx grpc_pass: ${machine.date}`);
  out.push('');
  out.push(
    `Machine: ${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}; Node ${machine.node}, nginx ${machine.nginx}, ` +
      `Go ${machine.go} with grpc-go ${machine.grpcGo} (upstream), ${machine.h2load}. Load average at start: ${machine.loadAverage}.`,
  );
  out.push(
    `nginx: worker_processes auto, ${machine.nginxListen}, upstream keepalive 100. Gateway: GATEWAY_WORKER_PROCESSES=${machine.gatewayWorkers}, ` +
      'etcd + control plane, routes PUT through the admin API.',
  );
  const secs = [...new Set(input.seconds)].join('/');
  out.push(
    `Run: ${input.quick ? '--quick, ' : ''}${input.rounds} round(s), about ${secs} s per measured run after a warm-up, targets interleaved ` +
      `(order rotated each round); medians over the rounds. Other programs used a median of ${fmt(other, 2)} cores during the runs` +
      `${other > 0.1 ? ' (a busy machine: the figures are noisy)' : ''}.`,
  );
  out.push('');

  // Goals, as ratios against nginx in this run.
  const gwUnary = row('unary-100', 'gateway');
  const ngUnary = row('unary-100', 'nginx');
  const goals: string[][] = [];
  const goal = (name: string, measured: number | undefined, text: string, target: string, pass: boolean | undefined): void => {
    goals.push([name, measured === undefined || !Number.isFinite(measured) ? '–' : text, target, pass === undefined ? '–' : pass ? 'met' : 'not met']);
  };
  const throughputGoal = (caseId: string, name: string, min: number): void => {
    const g = row(caseId, 'gateway');
    const n = row(caseId, 'nginx');
    const r = g !== undefined && n !== undefined ? g.reqPerSec / n.reqPerSec : undefined;
    goal(name, r, ratio(r), `≥ ${min.toFixed(1)}×`, r === undefined || !Number.isFinite(r) ? undefined : r >= min);
  };
  throughputGoal('unary-100', 'unary throughput, 100 in flight, gateway / nginx', 1.3);
  throughputGoal('tls-100', 'TLS downstream throughput, gateway / nginx', 1.3);
  throughputGoal('mib-8', '1 MiB messages throughput, gateway / nginx', 1.0);
  {
    const g = row('unary-1', 'gateway');
    const n = row('unary-1', 'nginx');
    const d = row('unary-1', 'direct');
    const r = g !== undefined && n !== undefined ? g.p99 / n.p99 : undefined;
    goal('p99 at 1 in flight, gateway / nginx', r, `${ratio(r)} (${int(g?.p99)} vs ${int(n?.p99)} µs)`, '≤ 1.5×', r === undefined || !Number.isFinite(r) ? undefined : r <= 1.5);
    const added = g !== undefined && d !== undefined ? g.p50 - d.p50 : undefined;
    const nginxAdded = n !== undefined && d !== undefined ? n.p50 - d.p50 : undefined;
    goal('p50 added over direct at 1 in flight', added, `${int(added)} µs (nginx ${int(nginxAdded)} µs)`, '≤ 150 µs', added === undefined || !Number.isFinite(added) ? undefined : added <= 150);
  }
  goal(
    'gateway CPU per call, unary 100 in flight',
    gwUnary?.proxyCpu,
    `${fmt(gwUnary?.proxyCpu, 1)} µs (nginx ${fmt(ngUnary?.proxyCpu, 1)} µs)`,
    '≤ 90 µs (stretch: ≤ nginx)',
    gwUnary === undefined || !Number.isFinite(gwUnary.proxyCpu) ? undefined : gwUnary.proxyCpu <= 90,
  );
  {
    const g = idleOf('gateway');
    const n = idleOf('nginx');
    goal(
      'gateway memory per idle connection',
      g?.perConnectionKiB,
      `${fmt(g?.perConnectionKiB, 2)} KiB (nginx ${fmt(n?.perConnectionKiB, 2)} KiB)`,
      '< 4 KiB',
      g === undefined || !Number.isFinite(g.perConnectionKiB) ? undefined : g.perConnectionKiB < 4,
    );
  }
  out.push('## Goals (issue #6), measured in this run');
  out.push('');
  out.push(markdownTable(['goal', 'measured', 'target', ''], goals));
  out.push('');

  out.push('## Results (medians over the rounds)');
  out.push('');
  out.push(
    'req/s from the per-request log (first start to last end); latencies in µs; CPU in µs per call, all processes of a target ' +
      '(proxy: nginx master + workers, gateway primary + workers; upstream: the Go server; client: h2load). ' +
      '"verified": calls of runs that passed every check / calls sent; "sample": grpc-js calls with grpc-status 0 and the right payload.',
  );
  out.push('');
  const table: string[][] = [];
  for (const r of rows) {
    const nginx = row(r.caseId, 'nginx');
    const sample = input.samples.find((s) => s.caseId === r.caseId && s.target === r.target);
    const sent = r.runs.reduce((sum, run) => sum + run.requests, 0);
    const good = r.runs.filter((run) => run.verified).reduce((sum, run) => sum + run.requests, 0);
    table.push([
      r.caseId,
      r.target,
      int(r.reqPerSec),
      r.target === 'nginx' || nginx === undefined ? '' : ratio(r.reqPerSec / nginx.reqPerSec),
      int(r.p50),
      int(r.p99),
      int(r.p999),
      `${good === sent ? '✓' : '✗'} ${good}/${sent}`,
      sample === undefined ? '–' : `${sample.ok === sample.calls && sample.upstreamOk === sample.calls ? '✓' : '✗'} ${sample.ok}/${sample.calls}`,
      r.target === 'direct' ? '–' : fmt(r.proxyCpu, 1),
      fmt(r.upstreamCpu, 1),
      fmt(r.clientCpu, 1),
      fmt(r.otherCores, 2),
    ]);
  }
  out.push(
    markdownTable(
      ['case', 'target', 'req/s', '× nginx', 'p50', 'p99', 'p99.9', 'verified', 'sample', 'proxy CPU', 'upstream CPU', 'client CPU', 'other load (cores)'],
      table,
    ),
  );
  out.push('');
  out.push('Cases:');
  for (const c of CASES) if (rows.some((r) => r.caseId === c.id) || (c.kind === 'idle' && input.idle.length > 0)) out.push(`- \`${c.id}\`: ${c.title}`);
  out.push('');

  if (input.idle.length > 0) {
    out.push('## Idle client connections (measured first, on fresh processes)');
    out.push('');
    out.push(
      markdownTable(
        ['target', 'established', 'open when measured', 'connect time ms', 'RSS before MiB', 'RSS with them MiB', 'KiB per connection'],
        input.idle.map(({ target, result }) => [
          target === 'direct' ? 'direct (Go upstream)' : target,
          `${result.established}/${result.connections}`,
          String(result.openAtMeasure),
          int(result.connectMs),
          fmt(result.rssBeforeKiB / 1024, 1),
          fmt(result.rssAfterKiB / 1024, 1),
          fmt(result.perConnectionKiB, 2),
        ]),
      ),
    );
    out.push('');
  }

  const perProcess: string[][] = [];
  for (const r of rows) {
    if (r.target === 'direct') continue;
    const pids = new Map<number, { comm: string; values: number[] }>();
    const order: number[] = [];
    for (const run of r.runs) {
      for (const p of run.proxyCpuPerProcess) {
        let entry = pids.get(p.pid);
        if (entry === undefined) {
          entry = { comm: p.comm, values: [] };
          pids.set(p.pid, entry);
          order.push(p.pid);
        }
        entry.values.push(p.usPerCall);
      }
    }
    const parts = order.map((pid, i) => {
      const entry = pids.get(pid) as { comm: string; values: number[] };
      const role = i === 0 ? (r.target === 'nginx' ? 'master' : 'primary') : 'worker';
      return `${role} ${pid}: ${fmt(median(entry.values), 1)}`;
    });
    perProcess.push([r.caseId, r.target, parts.join(' · ')]);
  }
  if (perProcess.length > 0) {
    out.push('## Proxy CPU per process (µs per call, medians)');
    out.push('');
    out.push('Each process\'s own median: they need not add up to the total when connections spread differently over the workers in each round.');
    out.push('');
    out.push(markdownTable(['case', 'target', 'processes'], perProcess));
    out.push('');
  }

  out.push('## Notes');
  out.push('');
  if (input.notes.length === 0) out.push('- every run verified; no warnings.');
  for (const note of input.notes) out.push(`- ${note.replace(/\n/g, ' ')}`);
  out.push('');
  out.push(`Command: \`${input.command}\` (options: bench/vs-nginx.ts).`);
  return `${out.join('\n')}\n`;
}
