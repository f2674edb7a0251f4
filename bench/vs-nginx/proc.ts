/**
 * What the benchmark reads from /proc: process trees (a proxy's master/primary and its workers), CPU time per
 * process (utime + stime of /proc/<pid>/stat, all threads included), resident memory (VmRSS), and the machine's
 * busy time (/proc/stat), so a run can say how much CPU other programs took while it measured.
 *
 * This kernel has no /proc/<pid>/task/<tid>/children, so children are found by scanning every /proc/<pid>/stat for
 * its parent pid.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of utime/stime (USER_HZ), 100 on Linux unless getconf says otherwise. */
export const CLOCK_TICKS: number = (() => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  // stdout is null when getconf is missing (though typed string): Number('') is 0, and 100 it is.
  const ticks = Number(out.stdout ? out.stdout.trim() : '');
  return Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
})();

interface StatFields {
  ppid: number;
  comm: string;
  /** utime + stime, in clock ticks. */
  cpuTicks: number;
  /** Start time after boot, in clock ticks: with the pid, identifies one process (pids are reused). */
  startTicks: number;
}

function readStat(pid: number): StatFields | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone
  }
  // comm may hold spaces and parentheses: it ends at the last ')'.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  const ppid = Number(rest[1]);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  // field 22: starttime
  return { ppid, comm: text.slice(open + 1, close), cpuTicks: utime + stime, startTicks: Number(rest[19]) };
}

/** The pids of `roots` and of all their descendants that are alive now. */
export function processTree(roots: readonly number[]): number[] {
  const byParent = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const stat = readStat(pid);
    if (stat === undefined) continue;
    const list = byParent.get(stat.ppid);
    if (list === undefined) byParent.set(stat.ppid, [pid]);
    else list.push(pid);
  }
  const out: number[] = [];
  const queue = roots.filter((pid) => readStat(pid) !== undefined);
  const seen = new Set<number>();
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    queue.push(...(byParent.get(pid) ?? []));
  }
  return out;
}

/** pid → start time, to tell a process from a later one that reuses its pid. */
export function identities(pids: readonly number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    const stat = readStat(pid);
    if (stat !== undefined) out.set(pid, stat.startTicks);
  }
  return out;
}

/** The pids of `known` that are still the same processes (same start time). */
export function stillAlive(known: ReadonlyMap<number, number>): number[] {
  return [...known].filter(([pid, start]) => readStat(pid)?.startTicks === start).map(([pid]) => pid);
}

export interface CpuSnapshot {
  /** pid → utime+stime ticks */
  readonly ticks: ReadonlyMap<number, number>;
  readonly comm: ReadonlyMap<number, string>;
}

export function cpuSnapshot(pids: readonly number[]): CpuSnapshot {
  const ticks = new Map<number, number>();
  const comm = new Map<number, string>();
  for (const pid of pids) {
    const stat = readStat(pid);
    if (stat === undefined) continue;
    ticks.set(pid, stat.cpuTicks);
    comm.set(pid, stat.comm);
  }
  return { ticks, comm };
}

export interface CpuDelta {
  /** Total CPU time of the group over the window, in microseconds. */
  totalUs: number;
  /** Per process, in microseconds. */
  perPid: Map<number, { comm: string; us: number }>;
  /** Processes seen at the start that were gone at the end (their last ticks are lost). */
  vanished: number[];
  /** Processes that appeared during the window (counted from zero). */
  appeared: number[];
}

/** CPU used between two snapshots of one process group; processes that appeared are counted from zero. */
export function cpuDelta(before: CpuSnapshot, after: CpuSnapshot): CpuDelta {
  const usPerTick = 1e6 / CLOCK_TICKS;
  const perPid = new Map<number, { comm: string; us: number }>();
  let totalUs = 0;
  const appeared: number[] = [];
  for (const [pid, ticks] of after.ticks) {
    const start = before.ticks.get(pid);
    if (start === undefined) appeared.push(pid);
    const us = (ticks - (start ?? 0)) * usPerTick;
    perPid.set(pid, { comm: after.comm.get(pid) ?? '?', us });
    totalUs += us;
  }
  const vanished = [...before.ticks.keys()].filter((pid) => !after.ticks.has(pid));
  return { totalUs, perPid, vanished, appeared };
}

/** Resident set size of one process in KiB (VmRSS), or undefined when it is gone. */
export function rssKiB(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match?.[1] === undefined ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

export function totalRssKiB(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + (rssKiB(pid) ?? 0), 0);
}

export interface MachineCpu {
  /** Busy ticks of all cores (user, nice, system, irq, softirq, steal). */
  busy: number;
  /** All ticks of all cores. */
  total: number;
}

export function machineCpu(): MachineCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const [, user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  const busy = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
  return { busy, total: busy + (idle ?? 0) + (iowait ?? 0) };
}

/** Microseconds of CPU time per clock tick of /proc/stat (the same USER_HZ). */
export const US_PER_TICK = 1e6 / CLOCK_TICKS;

/** RLIMIT_NOFILE of a process: [soft, hard] (Infinity for unlimited). */
export function openFilesLimit(pid: number = process.pid): [number, number] {
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  const value = (text: string | undefined): number => (text === undefined || text === 'unlimited' ? Number.POSITIVE_INFINITY : Number(text));
  return [value(match?.[1]), value(match?.[2])];
}
