/**
 * The markdown report of a run: machine and versions, issue #12's goals per gateway engine and issue #14's for the
 * observability targets (goals.ts) computed from this run's figures (measured, target, pass/fail) with what those
 * targets logged and exported against the calls they served, issue #17's grpc-web and JSON cases against unary-100
 * of the same gateway target (report-web.ts), every case side by side in one table (one column per target),
 * one row per case and target (medians over the rounds), idle-connection memory (h2c and TLS), the slow reader's RSS
 * growth per engine, and CPU per process.
 * Latency percentiles are nearest-rank over every request of a run (h2load --log-file).
 */
import { fmt, markdownTable, median } from '../lib/stats.ts';
import { CASES } from './cases.ts';
import { computeGoals, computeObservabilityGoals, verdictText, type GoalInput, type GoalLine } from './goals.ts';
import type { IdleResult } from './idle.ts';
import type { GatewayCounters, RunObservation } from './observability.ts';
import type { SlowReaderRecord } from './slow-reader.ts';
import { againstBaseline, WEB_BASELINE_CASE, webSection } from './report-web.ts';
import { engineOf, GATEWAY_TARGETS, isEngineTarget, isGatewayTarget, servesCase, TARGET_NAMES, type GatewayTargetName, type ObservedTargetName, type TargetName } from './targets.ts';

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
  /** What the gateways' generated config changes in conf/config.yaml. */
  gatewaySettings: string;
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
  /** What the run left in the access log and the OTLP sink (gateway-observed, gateway-traced). */
  observation?: RunObservation;
}

/** What the observability targets logged and exported over the whole run (warm-ups and samples included). */
export interface ObservabilitySummary {
  /** gateway-traced's root sampling fraction. */
  sampleRatio: number;
  /** The gateways' own counters from their metrics, scraped after the last load run. */
  counters: ({ target: GatewayTargetName } & GatewayCounters)[];
  /** The OTLP sink's totals once every gateway stopped (their last batches included); undefined without tracing. */
  sink: { spans: number; ok: number; refused: number } | undefined;
}

export interface SampleRecord {
  caseId: string;
  target: TargetName;
  calls: number;
  ok: number;
  problems: string[];
  /** OK calls the upstream counted during the sample. */
  upstreamOk: number;
  /** grpc-web and JSON: one answer's body length, what every measured call must receive. */
  answerBytes?: number;
}

export interface IdleRecord {
  caseId: string;
  target: TargetName;
  result: IdleResult;
}

export interface ReportInput {
  machine: MachineInfo;
  rounds: number;
  quick: boolean;
  records: RunRecord[];
  samples: SampleRecord[];
  idle: IdleRecord[];
  slowReader: SlowReaderRecord[];
  notes: string[];
  observability?: ObservabilitySummary;
  seconds: number[];
  /** The command line that produced the report. */
  command: string;
}

export interface Row {
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
    for (const target of TARGET_NAMES) {
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

const goalTable = (goals: readonly GoalLine[]): string =>
  markdownTable(['goal', 'gateway', 'measured', 'target', 'pass/fail'], goals.map((g) => [g.goal, g.target, g.measured, g.wanted, verdictText(g)]));
const int = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '–' : Math.round(v).toLocaleString('en-US'));
const ratio = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(2)}×`);

export function renderReport(input: ReportInput): string {
  const { machine } = input;
  const rows = aggregate(input.records);
  const row = (caseId: string, target: TargetName): Row | undefined => rows.find((r) => r.caseId === caseId && r.target === target);
  const idleOf = (caseId: string, target: TargetName): IdleRecord | undefined => input.idle.find((i) => i.caseId === caseId && i.target === target);
  const other = median(input.records.map((r) => r.otherCores));
  const present = TARGET_NAMES.filter(
    (t) => rows.some((r) => r.target === t) || input.idle.some((i) => i.target === t) || input.slowReader.some((s) => `gateway-${s.engine}` === t),
  );
  const gateways = present.filter(isEngineTarget);
  const observed = present.filter((t): t is ObservedTargetName => isGatewayTarget(t) && !isEngineTarget(t));

  const out: string[] = [];
  const observedTitle = observed.length === 0 ? '' : `; variants: ${observed.join(', ')}`;
  out.push(`# gRPC gateway (HTTP/2 engines: ${gateways.map(engineOf).join(', ') || 'none'}${observedTitle}) vs nginx grpc_pass: ${machine.date}`);
  out.push('');
  out.push(
    `Machine: ${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}; Node ${machine.node}, nginx ${machine.nginx}, ` +
      `Go ${machine.go} with grpc-go ${machine.grpcGo} (upstream), ${machine.h2load}. Load average at start: ${machine.loadAverage}.`,
  );
  out.push(
    `nginx: worker_processes auto, ${machine.nginxListen}, upstream keepalive 100. Gateways (one per engine: apisix.http2_engine ` +
      `in its config file and GATEWAY_HTTP2_ENGINE, the engine every serving process logged checked at start): ` +
      `GATEWAY_WORKER_PROCESSES=${machine.gatewayWorkers}, each with its own etcd and control plane, ` +
      `routes PUT through the admin API; conf/config.yaml with ${machine.gatewaySettings}.`,
  );
  const secs = [...new Set(input.seconds)].join('/');
  out.push(
    `Run: ${input.quick ? '--quick, ' : ''}${input.rounds} round(s), about ${secs} s per measured run after a warm-up, targets interleaved ` +
      `(order rotated each round); medians over the rounds. Other programs used a median of ${fmt(other, 2)} cores during the runs` +
      `${other > 0.1 ? ' (a busy machine: the figures are noisy)' : ''}.`,
  );
  out.push('');

  const goals = computeGoals({ row, idle: idleOf, slowReader: input.slowReader }, gateways);
  if (goals.length > 0) {
    out.push('## Goals (issue #12), computed from this run');
    out.push('');
    for (const gw of gateways) {
      const mine = goals.filter((g) => g.target === gw);
      const passed = mine.filter((g) => g.pass === true).length;
      const measured = mine.filter((g) => g.pass !== undefined).length;
      out.push(`- ${gw}: ${passed} of ${measured} measured goals pass (${mine.length - measured} not measured).`);
    }
    out.push('');
    // Goal by goal, the engines next to each other.
    const order = [...new Set(goals.map((g) => g.goal))];
    const byGoal = [...goals].sort((a, b) => order.indexOf(a.goal) - order.indexOf(b.goal));
    out.push(goalTable(byGoal));
    out.push('');
  }
  if (observed.length > 0) out.push(...observabilitySection(input, { row, idle: idleOf, slowReader: input.slowReader }, rows, observed));
  out.push(...webSection(rows, present));

  // One table, every case (load, idle, slow reader) × every target of the run.
  const loadCaseIds = CASES.filter((c) => c.kind === 'load' && rows.some((r) => r.caseId === c.id)).map((c) => c.id);
  const idleCaseIds = CASES.filter((c) => c.kind === 'idle' && input.idle.some((i) => i.caseId === c.id)).map((c) => c.id);
  if (loadCaseIds.length + idleCaseIds.length + input.slowReader.length > 0) {
    out.push('## All targets side by side (medians)');
    out.push('');
    out.push(
      'Load cases: calls/s (× nginx; grpc-web and JSON cases: × unary-100 of the same target) · proxy CPU µs per call · p50 / p99 µs. ' +
        'Idle cases: KiB per connection (connections established). slow-reader: the data plane\'s RSS growth (MiB streamed). ' +
        '"not served": nginx, direct and the node:http2 engine have no grpc-web or JSON transcoding. ✗ marks runs that failed verification (see Notes).',
    );
    out.push('');
    const cells: string[][] = [];
    for (const caseId of loadCaseIds) {
      const nginx = row(caseId, 'nginx');
      const c = CASES.find((k) => k.id === caseId);
      const plain = c?.kind !== 'load' || c.protocol === 'grpc';
      cells.push([
        caseId,
        ...present.map((t) => {
          const r = row(caseId, t);
          if (r === undefined) return c?.kind === 'load' && !servesCase(t, c) ? 'not served' : '–';
          const base = row(WEB_BASELINE_CASE, t);
          const vs = plain
            ? t === 'nginx' || nginx === undefined ? '' : ` (${ratio(r.reqPerSec / nginx.reqPerSec)})`
            : base === undefined ? '' : ` (${ratio(againstBaseline(r, base).ratio)} ${WEB_BASELINE_CASE})`;
          const cpu = t === 'direct' ? '–' : `${fmt(r.proxyCpu, 1)} µs`;
          const bad = r.runs.some((run) => !run.verified) ? ' ✗' : '';
          return `${int(r.reqPerSec)}/s${vs} · ${cpu} · ${int(r.p50)} / ${int(r.p99)}${bad}`;
        }),
      ]);
    }
    for (const caseId of idleCaseIds) {
      cells.push([
        caseId,
        ...present.map((t) => {
          const i = idleOf(caseId, t);
          if (i === undefined) return '–';
          const bad = i.result.established !== i.result.connections || i.result.openAtMeasure !== i.result.established ? ' ✗' : '';
          return `${fmt(i.result.perConnectionKiB, 2)} KiB (${int(i.result.established)})${bad}`;
        }),
      ]);
    }
    if (input.slowReader.length > 0) {
      cells.push([
        'slow-reader',
        ...present.map((t) => {
          const s = input.slowReader.find((r) => `gateway-${r.engine}` === t);
          return s === undefined ? '–' : `+${fmt(s.rssGrowthMiB, 1)} MiB (${s.totalMiB} MiB)${s.intact ? '' : ' ✗'}`;
        }),
      ]);
    }
    out.push(markdownTable(['case', ...present], cells));
    out.push('');
  }

  out.push('## Results (medians over the rounds)');
  out.push('');
  out.push(
    'calls/s from the per-request log (first start to last end); latencies in µs; CPU in µs per call, all processes of a target ' +
      '(proxy: nginx master + workers, gateway primary + workers; upstream: the Go server; client: h2load). ' +
      '"verified": calls of runs that passed every check / calls sent; "sample": grpc-js calls with grpc-status 0 and the right payload ' +
      '(grpc-web and JSON cases: raw requests with status 200, the content type, and the echoed message with grpc-status 0 or the same JSON; ' +
      'in parentheses one answer\'s body bytes, what each measured call must receive).',
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
      sample === undefined ? '–' : `${sample.ok === sample.calls && sample.upstreamOk === sample.calls ? '✓' : '✗'} ${sample.ok}/${sample.calls}${sample.answerBytes === undefined ? '' : ` (${fmt(sample.answerBytes, 0)} B)`}`,
      r.target === 'direct' ? '–' : fmt(r.proxyCpu, 1),
      fmt(r.upstreamCpu, 1),
      fmt(r.clientCpu, 1),
      fmt(r.otherCores, 2),
    ]);
  }
  out.push(
    markdownTable(
      ['case', 'target', 'calls/s', '× nginx', 'p50', 'p99', 'p99.9', 'verified', 'sample', 'proxy CPU µs/call', 'upstream CPU', 'client CPU', 'other load (cores)'],
      table,
    ),
  );
  out.push('');
  out.push('Cases:');
  for (const c of CASES) {
    const ran = rows.some((r) => r.caseId === c.id) || input.idle.some((i) => i.caseId === c.id) || (c.kind === 'slow-reader' && input.slowReader.length > 0);
    if (ran) out.push(`- \`${c.id}\`: ${c.title}`);
  }
  out.push('');

  if (input.idle.length > 0) {
    out.push('## Idle client connections (measured first, on fresh processes)');
    out.push('');
    out.push(
      markdownTable(
        ['case', 'target', 'established', 'open when measured', 'connect time ms', 'RSS before MiB', 'RSS with them MiB', 'KiB per connection'],
        input.idle.map(({ caseId, target, result }) => [
          caseId,
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

  if (input.slowReader.length > 0) {
    out.push('## Slow reader (bench/memory-slow-reader.ts: one data-plane process per engine, RSS sampled every 20 ms)');
    out.push('');
    out.push(
      markdownTable(
        ['target', 'MiB streamed', 'intact', 'RSS before MiB', 'RSS peak MiB', 'RSS growth MiB', 'upstream advance per stall KiB', 'time vs direct'],
        input.slowReader.map((s) => [
          `gateway-${s.engine}`,
          String(s.totalMiB),
          s.intact ? '✓' : `✗ ${s.problem.slice(0, 200)}`,
          fmt(s.rssBaselineMiB, 1),
          fmt(s.rssPeakMiB, 1),
          fmt(s.rssGrowthMiB, 1),
          s.stallAdvanceKiB.join(' / '),
          ratio(s.elapsedRatio),
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
      // The first is the master/primary.
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

/** What a gateway target turns on, for the report. */
function observabilityText(target: GatewayTargetName, sampleRatio: number): string {
  const o = GATEWAY_TARGETS[target].observability;
  const on = [
    o.metrics ? 'metrics' : '',
    o.accessLog ? 'access log (JSON lines to a file)' : '',
    o.requestId ? 'request id' : '',
    o.tracing ? `spans over OTLP/HTTP at ${Math.round(sampleRatio * 100)} % (parent_base, trace_id_ratio root) to the benchmark's sink` : '',
  ].filter((t) => t !== '');
  const policy = GATEWAY_TARGETS[target].plugins;
  const plugins = policy === undefined ? '' : `, plugins key-auth + limit-count (policy ${policy}, per consumer) on every route`;
  return `${target}: ${engineOf(target)} engine, ${on.length === 0 ? 'observability all off' : on.join(' + ')}${plugins}`;
}

/**
 * Each round's figures for the observability targets against gateway-native *of the same round*. The goals above
 * compare medians taken over the rounds separately; on a shared machine whose slow phases last minutes, a round's
 * pair ran within the same minute or two, so the spread of these per-round figures shows how much of a difference
 * is the machine's. Shown next to the goals, not instead of them.
 */
function perRoundSection(rows: readonly Row[], observed: readonly ObservedTargetName[]): string[] {
  const base = rows.find((r) => r.caseId === 'unary-100' && r.target === 'gateway-native');
  const targets = observed.map((t) => rows.find((r) => r.caseId === 'unary-100' && r.target === t)).filter((r): r is Row => r !== undefined);
  if (base === undefined || targets.length === 0) return [];
  const cells: string[][] = [];
  const ratios = new Map<string, number[]>();
  const deltas = new Map<string, number[]>();
  for (const b of base.runs) {
    const row = [String(b.round + 1), `${int(b.reqPerSec)} · ${fmt(b.proxyCpuUsPerCall, 1)} µs`];
    for (const t of targets) {
      const run = t.runs.find((r) => r.round === b.round);
      if (run === undefined) {
        row.push('–');
        continue;
      }
      const ratio = run.reqPerSec / b.reqPerSec;
      const delta = run.proxyCpuUsPerCall - b.proxyCpuUsPerCall;
      ratios.set(t.target, [...(ratios.get(t.target) ?? []), ratio]);
      deltas.set(t.target, [...(deltas.get(t.target) ?? []), delta]);
      row.push(`${ratio.toFixed(2)}× · ${delta >= 0 ? '+' : '−'}${fmt(Math.abs(delta), 1)} µs`);
    }
    cells.push(row);
  }
  const medianRow = ['median of the rounds', ''];
  for (const t of targets) {
    const r = ratios.get(t.target) ?? [];
    const d = deltas.get(t.target) ?? [];
    medianRow.push(r.length === 0 ? '–' : `${median(r).toFixed(2)}× · ${median(d) >= 0 ? '+' : '−'}${fmt(Math.abs(median(d)), 1)} µs`);
  }
  cells.push(medianRow);
  return [
    'Per round, against gateway-native of the same round (calls/s ratio · gateway CPU per call difference):',
    '',
    markdownTable(['round', 'gateway-native', ...targets.map((t) => t.target)], cells),
    '',
  ];
}

/**
 * Issue #14: the observability targets' goals against gateway-native, then what they logged and exported against the
 * calls of their measured runs, and their own counters over the whole run.
 */
function observabilitySection(input: ReportInput, goalInput: GoalInput, rows: readonly Row[], observed: readonly ObservedTargetName[]): string[] {
  const out: string[] = [];
  const sampleRatio = input.observability?.sampleRatio ?? Number.NaN;
  out.push('## Goals (issue #14: the cost of observability), computed from this run');
  out.push('');
  out.push(`${['gateway-native' as const, ...observed].map((t) => observabilityText(t, sampleRatio)).join('. ')}. Otherwise the same config, started the same way.`);
  out.push('');
  const goals = computeObservabilityGoals(goalInput, observed);
  for (const target of observed) {
    const mine = goals.filter((g) => g.target === target);
    const passed = mine.filter((g) => g.pass === true).length;
    const measured = mine.filter((g) => g.pass !== undefined).length;
    out.push(`- ${target}: ${passed} of ${measured} measured goals pass (${mine.length - measured} not measured).`);
  }
  out.push('');
  out.push(goalTable(goals));
  out.push('');
  out.push(...perRoundSection(rows, observed));

  const cells: string[][] = [];
  for (const r of rows) {
    if (!(observed as readonly TargetName[]).includes(r.target)) continue;
    const runs = r.runs.filter((run) => run.observation !== undefined);
    if (runs.length === 0) continue;
    const calls = runs.reduce((sum, run) => sum + run.requests, 0);
    const total = (pick: (o: RunObservation) => number | undefined): number | undefined =>
      runs.every((run) => pick(run.observation as RunObservation) !== undefined) ? runs.reduce((sum, run) => sum + (pick(run.observation as RunObservation) as number), 0) : undefined;
    const lines = total((o) => o.accessLogLines);
    const spans = total((o) => o.spans);
    const dropped = lines === undefined ? '–' : lines <= calls ? int(calls - lines) : `0 (${int(lines - calls)} lines more than calls)`;
    cells.push([r.caseId, r.target, int(calls), lines === undefined ? '–' : int(lines), dropped, spans === undefined ? '–' : int(spans), spans === undefined ? '–' : `${fmt((spans / calls) * 100, 1)} %`]);
  }
  if (cells.length > 0) {
    out.push(
      `Access-log lines and spans of the measured runs (all rounds) against their calls: a line per call unless the log's buffer fills ` +
        `(then "dropped"); one server span per sampled call, so about ${fmt(sampleRatio * 100, 0)} % of the calls (the sink counts the spans ` +
        `that started within each run, once the exporter's batch timeout has passed after it).`,
    );
    out.push('');
    out.push(markdownTable(['case', 'target', 'calls', 'access-log lines', 'dropped lines', 'spans received', 'spans / calls'], cells));
    out.push('');
  }
  const summary = input.observability;
  for (const c of summary?.counters ?? []) {
    const parts: string[] = [];
    if (c.accessLog !== undefined) parts.push(`access-log lines ${int(c.accessLog.written)} written, ${int(c.accessLog.dropped)} dropped`);
    if (c.spans !== undefined) parts.push(`spans ${int(c.spans.exported)} exported, ${int(c.spans.dropped)} dropped (queue full), ${int(c.spans.failed)} failed`);
    if (parts.length > 0) out.push(`- ${c.target}'s own counters after the last load run (apisix_access_log_lines, apisix_opentelemetry_spans; warm-ups and samples included): ${parts.join('; ')}.`);
  }
  if (summary?.sink !== undefined) {
    out.push(`- The OTLP sink received ${int(summary.sink.spans)} spans in ${int(summary.sink.ok)} export requests over the whole run (the gateways' last batches at their stop included; ${int(summary.sink.refused)} requests refused).`);
  }
  if ((summary?.counters.length ?? 0) > 0 || summary?.sink !== undefined) out.push('');
  return out;
}
