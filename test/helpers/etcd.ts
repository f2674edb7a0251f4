/**
 * Starts a real etcd member (Debian's etcd-server) on free loopback ports with its data in a fresh temporary
 * folder, and waits until it answers. `close()` kills it and removes the folder; a test run leaves nothing behind.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './ports.ts';
import { killService, startService } from './service-process.ts';

export interface EtcdProcess {
  endpoint: string;
  /** Stops the member, keeping its data folder, so `start()` can bring the same member back. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

const STARTUP_TIMEOUT_MS = 20_000;

export async function startEtcd(): Promise<EtcdProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'gw-etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const endpoint = `http://127.0.0.1:${clientPort}`;
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    child = await startService(
      'etcd',
      [
        '--name', 'test',
        '--data-dir', join(dir, 'data'),
        '--listen-client-urls', endpoint,
        '--advertise-client-urls', endpoint,
        '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
        '--initial-cluster', `test=http://127.0.0.1:${peerPort}`,
        '--logger', 'zap',
        '--log-level', 'error',
      ],
      'cannot start etcd (is etcd-server installed?)',
      () => waitHealthy(endpoint),
    );
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    await killService(proc);
  };

  await start();
  return {
    endpoint,
    start,
    stop,
    close: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function waitHealthy(endpoint: string): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${endpoint}/health`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new Error(`etcd at ${endpoint} did not become healthy in ${STARTUP_TIMEOUT_MS} ms`);
}
