/**
 * Issue #17's part of the report: what grpc-web and JSON transcoding cost against plain gRPC. For each gateway
 * target, its unary-100 row, then each browser/REST case (same 64 B message, same 100 calls in flight) with its
 * calls/s as a fraction of unary-100's and its gateway CPU per call against unary-100's. The issue sets no bound:
 * the figures are measured, not judged.
 *
 * The ratios are medians of per-round ratios (a case's run against unary-100's run of the same round, minutes
 * apart at most) when the rounds pair up, as perRoundSection in report.ts does for observability: this machine's
 * speed drifts between phases, which a ratio of medians taken separately would carry into the figure.
 */
import { fmt, markdownTable, median } from '../lib/stats.ts';
import { CASES, type LoadCase } from './cases.ts';
import type { Row, RunRecord } from './report.ts';
import { isGatewayTarget, type TargetName } from './targets.ts';

/** What the browser/REST cases are measured against: plain gRPC, the same message, 100 in flight, h2c. */
export const WEB_BASELINE_CASE = 'unary-100';

/** Issue #17's cases (anything not gRPC), in CASES' order. */
export const WEB_CASES: readonly LoadCase[] = CASES.filter((c): c is LoadCase => c.kind === 'load' && c.protocol !== 'grpc');

const int = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '–' : Math.round(v).toLocaleString('en-US'));
const signed = (v: number): string => (Number.isFinite(v) ? `${v >= 0 ? '+' : '−'}${fmt(Math.abs(v), 1)} µs` : '–');

/**
 * A case's calls/s and gateway CPU per call against unary-100 of the same target: median over the rounds of the
 * round's ratio and difference; the medians' own ratio and difference when no round has both.
 */
export function againstBaseline(r: Row, base: Row): { ratio: number; cpuDelta: number } {
  const ratios: number[] = [];
  const deltas: number[] = [];
  for (const run of r.runs) {
    const same: RunRecord | undefined = base.runs.find((b) => b.round === run.round);
    if (same === undefined) continue;
    ratios.push(run.reqPerSec / same.reqPerSec);
    deltas.push(run.proxyCpuUsPerCall - same.proxyCpuUsPerCall);
  }
  const finite = (values: number[]): number[] => values.filter((v) => Number.isFinite(v));
  return {
    ratio: finite(ratios).length > 0 ? median(finite(ratios)) : r.reqPerSec / base.reqPerSec,
    cpuDelta: finite(deltas).length > 0 ? median(finite(deltas)) : r.proxyCpu - base.proxyCpu,
  };
}

/** The section, or nothing when no browser/REST case ran. */
export function webSection(rows: readonly Row[], present: readonly TargetName[]): string[] {
  const row = (caseId: string, target: TargetName): Row | undefined => rows.find((r) => r.caseId === caseId && r.target === target);
  const cells: string[][] = [];
  for (const target of present.filter(isGatewayTarget)) {
    const base = row(WEB_BASELINE_CASE, target);
    const mine = WEB_CASES.map((c) => ({ c, r: row(c.id, target) })).filter((x): x is { c: LoadCase; r: Row } => x.r !== undefined);
    if (mine.length === 0) continue;
    const bad = (r: Row): string => (r.runs.some((run) => !run.verified) ? ' ✗' : '');
    if (base !== undefined) {
      cells.push([target, WEB_BASELINE_CASE, 'gRPC, h2c', `${int(base.reqPerSec)}${bad(base)}`, '1.00×', fmt(base.proxyCpu, 1), '', `${int(base.p50)} / ${int(base.p99)}`, fmt(base.clientCpu, 1)]);
    }
    for (const { c, r } of mine) {
      const vs = base === undefined ? undefined : againstBaseline(r, base);
      cells.push([
        target,
        c.id,
        `${c.protocol === 'json' ? 'JSON' : 'grpc-web+proto'}, ${c.http1 ? `HTTP/1.1 ${c.connections} × 1` : `h2c ${c.connections} × ${c.streamsPerConnection}`}`,
        `${int(r.reqPerSec)}${bad(r)}`,
        vs === undefined ? '–' : `${vs.ratio.toFixed(2)}×`,
        fmt(r.proxyCpu, 1),
        vs === undefined ? '–' : signed(vs.cpuDelta),
        `${int(r.p50)} / ${int(r.p99)}`,
        fmt(r.clientCpu, 1),
      ]);
    }
  }
  if (cells.length === 0) return [];
  return [
    `## grpc-web and JSON transcoding against plain gRPC (issue #17), computed from this run`,
    '',
    `Each gateway target's ${WEB_BASELINE_CASE} (plain gRPC, 64 B, 100 in flight over h2c), then the same unary call as a browser ` +
      'or REST client makes it through its `grpc-web` or `grpc-transcode` route, 100 in flight. "× unary-100" and "CPU vs unary-100" ' +
      'are medians of per-round comparisons with the same target\'s unary-100. Client CPU is h2load\'s (HTTP/1.1 costs it more per ' +
      'call than HTTP/2, and it shares the machine). nginx, direct and gateway-node (node:http2 engine) serve neither protocol. ' +
      '–: that target\'s unary-100 is not in this run. ✗: runs that failed verification (see Notes).',
    '',
    markdownTable(['target', 'case', 'protocol, connections × in flight', 'calls/s', '× unary-100', 'gateway CPU µs/call', 'CPU vs unary-100', 'p50 / p99 µs', 'client CPU µs/call'], cells),
    '',
  ];
}
