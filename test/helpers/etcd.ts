/**
 * Starts a real etcd member (Debian's etcd-server) on free loopback ports with its data in a fresh temporary
 * folder, and waits until it answers. `close()` kills it and removes the folder; a test run leaves nothing behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './ports.ts';

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
    const proc = spawn(
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
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child = proc;
    let stderr = '';
    proc.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    const exited = new Promise<never>((_, reject) => {
      proc.once('error', (err) => reject(new Error(`cannot start etcd (is etcd-server installed?): ${err.message}`)));
      proc.once('exit', (code) => reject(new Error(`etcd exited with ${String(code)}: ${stderr}`)));
    });
    exited.catch(() => undefined);
    await Promise.race([waitHealthy(endpoint), exited]);
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGKILL');
    });
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
