/**
 * Real Redis for the tests (Debian's redis-server), like etcd.ts: a server on a free loopback port, no persistence,
 * its files in a fresh temporary folder; or a 3-master Redis Cluster formed with redis-cli. stop()/start() bring the
 * same server down and back on its port; pause()/resume() freeze it (SIGSTOP), so that it accepts connections and
 * never answers; close() kills what is left and removes the folder: a test run leaves nothing behind.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './ports.ts';
import { killService, startService } from './service-process.ts';

export interface RedisProcess {
  readonly port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

const STARTUP_TIMEOUT_MS = 15_000;
export const REDIS_INSTALL_HINT = 'cannot start redis-server (Debian: apt-get install redis-server)';

export async function startRedis(options: { cluster?: boolean; dir?: string; port?: number; password?: string } = {}): Promise<RedisProcess> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'gw-redis-')));
  const port = options.port ?? (await freePort());
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'];
    if (options.password !== undefined) args.push('--requirepass', options.password);
    if (options.cluster === true) args.push('--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${String(port)}.conf`, '--cluster-node-timeout', '2000');
    child = await startService('redis-server', args, REDIS_INSTALL_HINT, () => waitPing(port));
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    await killService(proc);
  };

  await start();
  return {
    port,
    start,
    stop,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    close: async () => {
      await stop();
      if (ownDir) await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisCluster {
  /** `host:port` of every master, as `redis_cluster_nodes` takes them. */
  readonly nodes: string[];
  close(): Promise<void>;
}

/** Three masters with every slot assigned (redis-cli --cluster create), ready when the cluster says `ok`. */
export async function startRedisCluster(): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'gw-redis-cluster-'));
  const members: RedisProcess[] = [];
  const close = async (): Promise<void> => {
    for (const member of members) await member.close();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 3; i++) members.push(await startRedis({ cluster: true, dir }));
    const nodes = members.map((m) => `127.0.0.1:${String(m.port)}`);
    const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: 30_000 });
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    for (const member of members) {
      while (!/cluster_state:ok/.test(redisCli(member.port, 'cluster', 'info'))) {
        if (Date.now() > deadline) throw new Error(`redis cluster did not become ok: ${redisCli(member.port, 'cluster', 'info')}`);
        await sleep(100);
      }
    }
    return { nodes, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** One redis-cli command against the server on `port`; its output. */
export function redisCli(port: number, ...args: string[]): string {
  const res = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout: 10_000 });
  return `${res.stdout}${res.stderr}`;
}

async function waitPing(port: number): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (await ping(port)) return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${String(port)} did not answer PING`);
    await sleep(50);
  }
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.setTimeout(1000, () => socket.destroy());
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
      if (answer.includes('\r\n')) socket.end();
    });
    socket.on('error', () => resolve(false));
    socket.on('close', () => resolve(answer.startsWith('+PONG') || answer.startsWith('-NOAUTH'))); // NOAUTH: up, with a password
  });
}
