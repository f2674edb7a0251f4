/**
 * Pieces shared by `npm run local-cluster` (scripts/local-cluster.ts) and the tests that start a real etcd cluster
 * (test/helpers/etcd-cluster.ts): the command line of one member of a static etcd cluster, etcd's health probe,
 * the install hint for a missing binary, and stopping a child process within a bound. No module state; nothing
 * here starts anything by itself.
 *
 * A static cluster (etcd's "Clustering Guide", static bootstrap): every member is told the whole `--initial-cluster`
 * and a token unique to the cluster, so members of two clusters started on one host can never join each other. The
 * `--initial-cluster-*` flags are read only when a member's data dir is empty; a member restarted on its data dir
 * gets `--initial-cluster-state existing` so that its intent is written down, and it rejoins from its WAL.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { extname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

/**
 * The path of a process's entry file (`control-plane/main`, `data-plane/main`) of the same kind as this module:
 * dist/…/main.js when the scripts run from the build (`npm start`), the .ts source when they run from the sources.
 */
export function entryPoint(name: 'control-plane/main' | 'data-plane/main'): string {
  return fileURLToPath(new URL(`../${name}${extname(fileURLToPath(import.meta.url))}`, import.meta.url));
}

/** What `npm start` says too (scripts/start-local.ts): the binary comes from Debian's etcd-server package. */
export const ETCD_INSTALL_HINT =
  'the etcd binary is not installed. On Debian/Ubuntu: sudo apt-get install etcd-server; ' +
  'elsewhere put the etcd binary of a release from https://github.com/etcd-io/etcd/releases on the PATH';

export interface EtcdMemberSpec {
  /** `--name`; unique in the cluster. */
  name: string;
  host: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
}

export interface EtcdClusterSpec {
  members: readonly EtcdMemberSpec[];
  /** `--initial-cluster-token`: different for every cluster that could share a host. */
  token: string;
  /** etcd's `--log-level` (debug, info, warn, error, panic, fatal). */
  logLevel: string;
}

export function clientUrl(member: Pick<EtcdMemberSpec, 'host' | 'clientPort'>): string {
  return `http://${member.host}:${member.clientPort}`;
}

export function peerUrl(member: Pick<EtcdMemberSpec, 'host' | 'peerPort'>): string {
  return `http://${member.host}:${member.peerPort}`;
}

/** The arguments of `etcd` for one member; `state` is `new` on first start and `existing` on a restart. */
export function etcdMemberArgs(cluster: EtcdClusterSpec, member: EtcdMemberSpec, state: 'new' | 'existing'): string[] {
  return [
    '--name', member.name,
    '--data-dir', member.dataDir,
    '--listen-client-urls', clientUrl(member),
    '--advertise-client-urls', clientUrl(member),
    '--listen-peer-urls', peerUrl(member),
    '--initial-advertise-peer-urls', peerUrl(member),
    '--initial-cluster', cluster.members.map((m) => `${m.name}=${peerUrl(m)}`).join(','),
    '--initial-cluster-token', cluster.token,
    '--initial-cluster-state', state,
    '--logger', 'zap',
    '--log-level', cluster.logLevel,
  ];
}

/** True when `etcd --version` runs, i.e. the binary is on the PATH. */
export function etcdInstalled(): boolean {
  return spawnSync('etcd', ['--version'], { stdio: 'ignore' }).error === undefined;
}

/**
 * etcd's own health check, `GET /health` on the client URL: 200 `{"health":"true"}` once the member has a leader
 * and can serve a linearizable read, so a member of a cluster without quorum is not healthy.
 */
export async function etcdHealthy(endpoint: string, timeoutMs = 1_000): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return false;
    const body = (await res.json()) as { health?: unknown };
    return body.health === 'true' || body.health === true;
  } catch {
    return false;
  }
}

/**
 * Whether the member at `endpoint` is its cluster's raft leader, from Maintenance.Status through etcd's JSON gateway
 * (`POST /v3/maintenance/status`: the answering member's id is `header.member_id`, the leader's is `leader`);
 * undefined when it does not answer.
 */
export async function etcdIsLeader(endpoint: string, timeoutMs = 1_000): Promise<boolean | undefined> {
  try {
    const res = await fetch(`${endpoint}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return undefined;
    const body = (await res.json()) as { header?: { member_id?: unknown }; leader?: unknown };
    const member = idText(body.header?.member_id);
    const leader = idText(body.leader);
    if (member === undefined || leader === undefined) return undefined;
    return member === leader;
  } catch {
    return undefined;
  }
}

/** An etcd member id from its JSON gateway: a uint64 as a string (or a number from an older gateway). */
function idText(value: unknown): string | undefined {
  return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
}

/** Polls `check` every `everyMs` until it is true; throws naming `what` once `limitMs` has passed. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  limitMs: number,
  options: { everyMs?: number; abort?: () => string | undefined } = {},
): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const aborted = options.abort?.();
    if (aborted !== undefined) throw new Error(`${what}: ${aborted}`);
    if (await check()) return;
    if (Date.now() >= deadline) throw new Error(`${what} within ${limitMs} ms`);
    await sleep(options.everyMs ?? 100);
  }
}

export function hasExited(proc: ChildProcess): boolean {
  return proc.exitCode !== null || proc.signalCode !== null;
}

/**
 * SIGTERM, then SIGKILL if the process is still there after `graceMs`; resolves once it has exited. Safe to call
 * on a process that already exited (or never spawned).
 */
export async function stopChild(proc: ChildProcess, graceMs: number): Promise<void> {
  if (hasExited(proc) || proc.pid === undefined) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const overdue = new Promise<'overdue'>((resolve) => {
    timer = setTimeout(() => resolve('overdue'), graceMs);
  });
  const first = await Promise.race([exited, overdue]);
  clearTimeout(timer);
  if (first === 'overdue' && !hasExited(proc)) {
    proc.kill('SIGKILL');
    await exited;
  }
}

/** The last `maxChars` of what a child writes to stdout and stderr, to explain a failure. */
export interface OutputTail {
  text(): string;
  /** Appends a line of our own (an exit, a spawn failure) to the tail. */
  note(line: string): void;
}

export function keepOutputTail(proc: ChildProcess, maxChars: number): OutputTail {
  let tail = '';
  const keep = (chunk: Buffer | string): void => {
    tail = (tail + chunk.toString()).slice(-maxChars);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  return { text: () => tail, note: (line) => keep(`\n${line}\n`) };
}

/** SIGKILL and wait for the exit. */
export async function killChild(proc: ChildProcess): Promise<void> {
  if (hasExited(proc) || proc.pid === undefined) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGKILL');
  await exited;
}
