/**
 * The slow-reader case of `npm run bench`: runs bench/memory-slow-reader.ts (its own etcd, bulk upstream and one
 * single-process data plane per engine) as a tracked child for the engines of the selected gateway targets, and
 * turns its JSON report into one record per engine: RSS growth against issue #12's goal (< 64 MiB), the call's
 * outcome and how far the upstream ran ahead while the client stalled.
 */
import { REPO_ROOT, type Http2Engine } from '../../shared/config.ts';
import type { SlowReaderCase } from './cases.ts';
import { spawnTracked } from './children.ts';

export interface SlowReaderRecord {
  engine: Http2Engine;
  totalMiB: number;
  /** The call ended with grpc-status 0 and every message arrived intact. */
  intact: boolean;
  rssBaselineMiB: number;
  rssPeakMiB: number;
  rssGrowthMiB: number;
  /** KiB the upstream wrote during each stall of the client. */
  stallAdvanceKiB: number[];
  /** Through the gateway / directly from the upstream. */
  elapsedRatio: number;
  /** What went wrong, if anything (status, problems, a failed start). */
  problem: string;
}

/** Generous: 200 MiB at a slow reader's pace plus starts, twice (direct, then each engine). */
const LIMIT_MS = 10 * 60_000;

/** Runs the case for `engines`, streaming `totalMiB` (the case's own, or its quickTotalMiB under --quick). */
export async function runSlowReader(c: SlowReaderCase, engines: readonly Http2Engine[], totalMiB = c.totalMiB): Promise<{ records: SlowReaderRecord[]; notes: string[] }> {
  const child = spawnTracked(
    'memory-slow-reader',
    process.execPath,
    ['bench/memory-slow-reader.ts', '--engine', engines.join(','), '--total-mib', String(totalMiB), '--message-kib', String(c.messageKiB)],
    { cwd: REPO_ROOT },
  );
  let stdout = '';
  child.child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  const timer = setTimeout(() => void child.stop(), LIMIT_MS);
  const exit = await child.exit;
  clearTimeout(timer);

  const notes: string[] = [];
  let report: { totalMiB?: number; engines?: Record<string, Record<string, unknown>> };
  try {
    const start = stdout.indexOf('{');
    report = JSON.parse(stdout.slice(start)) as typeof report;
  } catch {
    notes.push(`${c.id}: no report from bench/memory-slow-reader.ts (exit ${String(exit)}): ${child.output().slice(-1_500)}`);
    return { records: [], notes };
  }
  const records: SlowReaderRecord[] = [];
  for (const engine of engines) {
    const r = report.engines?.[engine];
    if (r === undefined) {
      notes.push(`${c.id} ${engine}: missing from the report`);
      continue;
    }
    const num = (key: string): number => (typeof r[key] === 'number' ? r[key] : Number.NaN);
    const problems = Array.isArray(r['problems']) ? (r['problems'] as unknown[]).map(String) : [];
    const status = r['status'];
    const error = typeof r['error'] === 'string' ? r['error'] : '';
    const messagesOk = num('messagesOk');
    const expected = ((report.totalMiB ?? totalMiB) * 1024) / c.messageKiB;
    const intact = error === '' && status === 0 && problems.length === 0 && messagesOk === expected;
    const problem = error !== '' ? error : intact ? '' : `grpc-status ${String(status)}, ${messagesOk}/${expected} messages intact${problems.length > 0 ? `: ${problems.join('; ')}` : ''}`;
    if (problem !== '') notes.push(`${c.id} gateway-${engine}: ${problem.slice(0, 1_500)}`);
    records.push({
      engine,
      totalMiB: report.totalMiB ?? totalMiB,
      intact,
      rssBaselineMiB: num('rssBaselineMiB'),
      rssPeakMiB: num('rssPeakMiB'),
      rssGrowthMiB: num('rssGrowthMiB'),
      stallAdvanceKiB: Array.isArray(r['stallAdvanceKiB']) ? (r['stallAdvanceKiB'] as unknown[]).map(Number) : [],
      elapsedRatio: num('elapsedRatio'),
      problem,
    });
  }
  return { records, notes };
}
