/**
 * `npm start`: the local default, with nothing else to configure. Starts (or reuses) a local etcd member with its
 * data under ./data/etcd, then the control plane and one data plane as child processes, waits until each answers
 * and prints where it listens. Ctrl-C (SIGINT) or SIGTERM stops all three.
 *
 * If etcd is already reachable at the configured endpoint it is used as is; if not and the endpoint is local, the
 * `etcd` binary is started (Debian: `apt-get install etcd-server`), and a missing binary is reported with that hint.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT, isLoopback, loadConfig } from '../shared/config.ts';
import { describe } from '../shared/errors.ts';
import { dataPlaneNodeFlags } from '../data-plane/node-flags.ts';
import { entryPoint } from './local-processes.ts';

const READY_TIMEOUT_MS = 30_000;
const ETCD_PEER_PORT = 2380;
const config = loadConfig();
const children: { name: string; proc: ChildProcess }[] = [];
let stopping = false;

function say(line: string): void {
  process.stdout.write(`[start] ${line}\n`);
}

async function etcdHealthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    return res.ok;
  } catch {
    return false;
  }
}

async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (stopping) throw new Error('stopped');
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`${what} did not become ready within ${READY_TIMEOUT_MS / 1000} s`);
}

function start(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const proc = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'], env });
  children.push({ name, proc });
  proc.on('exit', (code, signal) => {
    if (stopping) return;
    say(`${name} exited (${signal ?? String(code)}); stopping everything`);
    void stopAll(1);
  });
  return proc;
}

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host, port });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

async function ensureEtcd(): Promise<string> {
  const endpoint = config.etcd.hosts[0] ?? 'http://127.0.0.1:2379';
  if (await etcdHealthy(endpoint)) {
    say(`etcd: using the member already running at ${endpoint}`);
    return endpoint;
  }
  const url = new URL(endpoint);
  if (!isLoopback(url.hostname)) throw new Error(`etcd at ${endpoint} is not reachable (deployment.etcd.host in conf/config.yaml)`);
  if (spawnSync('etcd', ['--version'], { stdio: 'ignore' }).error !== undefined) {
    throw new Error('the etcd binary is not installed. On Debian/Ubuntu: sudo apt-get install etcd-server (then run npm start again)');
  }
  const dataDir = resolve(REPO_ROOT, 'data/etcd');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 }); // etcd warns about wider permissions
  const peer = `http://${url.hostname}:${ETCD_PEER_PORT}`;
  start('etcd', 'etcd', [
    '--name', 'local',
    '--data-dir', dataDir,
    '--listen-client-urls', endpoint,
    '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `local=${peer}`,
    '--logger', 'zap',
    '--log-level', 'warn',
  ]);
  await waitFor('etcd', () => etcdHealthy(endpoint));
  say(`etcd: started a local member at ${endpoint} (data in ${dataDir})`);
  return endpoint;
}

async function stopAll(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  // Gateways first, etcd last, so the planes never see their store vanish while draining.
  for (const { proc } of [...children].reverse()) {
    if (proc.exitCode !== null || proc.signalCode !== null) continue;
    await new Promise<void>((done) => {
      proc.once('exit', () => done());
      proc.kill('SIGTERM');
    });
  }
  process.exit(code);
}

process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));

try {
  await ensureEtcd();
  // The same kind of entry as this script: dist/'s JavaScript under `npm start`, the .ts sources when run directly.
  start('control-plane', process.execPath, [entryPoint('control-plane/main')]);
  const admin = config.admin;
  const adminUrl = `http://${admin.ip}:${admin.port}/apisix/admin`;
  await waitFor('control plane', () => tcpOpen(admin.ip, admin.port));
  // The data plane keeps its last config from etcd in ./data, so a restart while etcd is down still serves.
  start('data-plane', process.execPath, [...dataPlaneNodeFlags(), entryPoint('data-plane/main')], { GATEWAY_SNAPSHOT_CACHE: 'data/config-cache.json', GATEWAY_ACCESS_LOG_FORMAT: 'readable', ...process.env });
  for (const address of [...config.nodeListen, ...(config.ssl.enable ? config.ssl.listen : [])]) {
    await waitFor(`data plane port ${address.port}`, () => tcpOpen(address.ip, address.port));
  }
  say(`admin API:  ${adminUrl}  (X-API-KEY: ${admin.keys[0]?.key ?? '(none)'})`);
  for (const address of config.nodeListen) say(`gRPC h2c:   ${address.ip}:${address.port}`);
  if (config.ssl.enable) for (const address of config.ssl.listen) say(`gRPC TLS:   ${address.ip}:${address.port}`);
  if (config.status !== undefined) say(`status:     http://${config.status.ip}:${config.status.port}/readyz  (${config.dataPlane.workerProcesses} data-plane worker processes)`);
  say('ready; Ctrl-C stops everything');
} catch (err) {
  say(`cannot start: ${describe(err)}`);
  await stopAll(1);
}
