/**
 * Memory per idle client connection: the RSS of a target's processes before and while COUNT idle HTTP/2
 * connections (bench/vs-nginx/idle-connector.ts, run under `prlimit --nofile`), h2c or TLS, are held open, divided
 * by the connections established.
 */
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from '../../shared/config.ts';
import { spawnTracked } from './children.ts';
import { openFilesLimit, totalRssKiB } from './proc.ts';

export interface IdleResult {
  connections: number;
  established: number;
  failed: number;
  /** Still open when the memory was read. */
  openAtMeasure: number;
  connectMs: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  /** (after − before) / established */
  perConnectionKiB: number;
  firstError: string;
}

const SETTLE_MS = 2_000;
const CONNECT_LIMIT_MS = 120_000;

export async function measureIdle(address: string, count: number, pids: () => number[], tls = false): Promise<IdleResult> {
  const rssBeforeKiB = totalRssKiB(pids());
  // The connector's own limit: what it needs, within the hard limit it inherits (raising that needs CAP_SYS_RESOURCE).
  const limit = String(Math.min(count + 2_048, openFilesLimit()[1]));
  const connector = spawnTracked(
    'idle-connector',
    'prlimit',
    [`--nofile=${limit}:${limit}`, '--', process.execPath, 'bench/vs-nginx/idle-connector.ts', address, String(count), '256', tls ? 'tls' : 'h2c'],
    { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const { stdout } = connector.child;
  if (stdout === null) throw new Error('the idle connector has no stdout pipe');
  const lines = createInterface({ input: stdout });
  const iterator = lines[Symbol.asyncIterator]();
  const nextJson = async (): Promise<Record<string, unknown>> => {
    const timeout = sleep(CONNECT_LIMIT_MS).then(() => ({ done: true, value: undefined }) as const);
    const result = await Promise.race([iterator.next(), timeout]);
    if (result.done === true) throw new Error(`idle connector gave no answer:\n${connector.output()}`);
    return JSON.parse(result.value) as Record<string, unknown>;
  };
  try {
    const setup = await nextJson();
    await sleep(SETTLE_MS);
    connector.child.stdin?.write('count\n');
    const counted = await nextJson();
    const rssAfterKiB = totalRssKiB(pids());
    const established = Number(setup['established']);
    return {
      connections: count,
      established,
      failed: Number(setup['failed']),
      openAtMeasure: Number(counted['open']),
      connectMs: Number(setup['ms']),
      rssBeforeKiB,
      rssAfterKiB,
      perConnectionKiB: established > 0 ? (rssAfterKiB - rssBeforeKiB) / established : Number.NaN,
      firstError: typeof setup['firstError'] === 'string' ? setup['firstError'] : '',
    };
  } finally {
    connector.child.stdin?.end();
    const exited = await Promise.race([connector.exit.then(() => true), sleep(10_000).then(() => false)]);
    if (!exited) await connector.stop();
    lines.close();
    await sleep(1_000); // let the server side close its sessions before the next case
  }
}
