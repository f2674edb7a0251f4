/**
 * The gateway's two processes as the benchmarks run them: `node data-plane/main.ts` and
 * `control-plane/main.ts`, configured through the environment the way a container is (shared/config.ts), on free
 * loopback ports, the status port off and one worker process per data plane, so that several replicas fit on one
 * machine. Each is ready once it answers (a gRPC call gets a grpc-status; the admin API lists routes).
 *
 * stop() sends SIGTERM and SIGKILL after STOP_LIMIT_MS; output is kept to explain a failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from '../../shared/config.ts';
import { freePort } from '../../test/helpers/ports.ts';
import { keepOutputTail, stopChild } from '../../scripts/local-processes.ts';
import { withDataPlaneNodeFlags } from '../../data-plane/node-flags.ts';
import { NO_STATUS, openProbe } from './grpc.ts';

const STOP_LIMIT_MS = 5_000;
const OUTPUT_TAIL_CHARS = 8_000;
const POLL_MS = 20;
/** A data plane's readiness is what some benchmarks time, so it is polled finely. */
const READY_POLL_MS = 2;

export interface BenchProcess {
  readonly pid: number;
  readonly exited: boolean;
  output(): string;
  stop(): Promise<void>;
}

export interface DataPlaneProcess extends BenchProcess {
  /** `127.0.0.1:<port>` of the h2c listener. */
  readonly h2cAddress: string;
}

export interface ControlPlaneProcess extends BenchProcess {
  /** `http://127.0.0.1:<port>/apisix/admin` */
  readonly adminUrl: string;
  readonly adminKey: string;
}

/** The key the benchmarks' control planes accept (loopback only). */
export const BENCH_ADMIN_KEY = 'bench-admin-key-5f2c';

export interface SpawnDataPlaneOptions {
  /** More environment (GATEWAY_ETCD_PREFIX, LOG_LEVEL, …), over the defaults here. */
  env?: Record<string, string>;
  /** Node options before the script, e.g. `--cpu-prof`. */
  nodeArgs?: readonly string[];
  readyLimitMs?: number;
}

export async function spawnDataPlane(etcdEndpoint: string, options: SpawnDataPlaneOptions = {}): Promise<DataPlaneProcess> {
  const readyLimitMs = options.readyLimitMs ?? 60_000;
  const h2cPort = await freePort();
  const tlsPort = await freePort();
  const child = spawnNode([...withDataPlaneNodeFlags(options.nodeArgs ?? []), 'data-plane/main.ts'], {
    GATEWAY_ETCD_HOSTS: etcdEndpoint,
    GATEWAY_H2C_LISTEN: `127.0.0.1:${h2cPort}`,
    GATEWAY_TLS_LISTEN: `127.0.0.1:${tlsPort}`,
    GATEWAY_STATUS_LISTEN: 'off',
    GATEWAY_WORKER_PROCESSES: '1',
    LOG_LEVEL: 'warn',
    ...options.env,
  });
  const h2cAddress = `127.0.0.1:${h2cPort}`;
  const deadline = Date.now() + readyLimitMs;
  for (;;) {
    if (child.exited) throw new Error(`data plane exited before it served:\n${child.output()}`);
    if (Date.now() > deadline) {
      await child.stop();
      throw new Error(`data plane did not serve within ${readyLimitMs} ms:\n${child.output()}`);
    }
    if (await answers(h2cAddress)) break;
    await sleep(READY_POLL_MS);
  }
  return Object.assign(child, { h2cAddress });
}

async function answers(address: string): Promise<boolean> {
  try {
    const probe = await openProbe(address);
    try {
      return (await probe.call('/bench.Ready/Probe')) !== NO_STATUS;
    } finally {
      probe.close();
    }
  } catch {
    return false; // not listening yet
  }
}

export async function spawnControlPlane(etcdEndpoint: string): Promise<ControlPlaneProcess> {
  const port = await freePort();
  const child = spawnNode(['control-plane/main.ts'], {
    GATEWAY_ETCD_HOSTS: etcdEndpoint,
    GATEWAY_ADMIN_LISTEN: `127.0.0.1:${port}`,
    GATEWAY_ADMIN_KEY: BENCH_ADMIN_KEY,
    LOG_LEVEL: 'warn',
  });
  const adminUrl = `http://127.0.0.1:${port}/apisix/admin`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exited) throw new Error(`control plane exited before it listened:\n${child.output()}`);
    try {
      const res = await fetch(`${adminUrl}/routes`, { headers: { 'X-API-KEY': BENCH_ADMIN_KEY } });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await child.stop();
      throw new Error(`control plane did not answer within 30 s:\n${child.output()}`);
    }
    await sleep(POLL_MS);
  }
  return Object.assign(child, { adminUrl, adminKey: BENCH_ADMIN_KEY });
}

interface SpawnedNode extends BenchProcess {
  readonly exited: boolean;
}

function spawnNode(args: readonly string[], env: Record<string, string>): SpawnedNode {
  const fullEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete fullEnv['NODE_TEST_CONTEXT'];
  const child: ChildProcess = spawn(process.execPath, [...args], {
    cwd: REPO_ROOT,
    env: fullEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail = keepOutputTail(child, OUTPUT_TAIL_CHARS);
  let exited = false;
  child.once('exit', (code, signal) => {
    exited = true;
    tail.note(`[exited: code ${String(code)}, signal ${String(signal)}]`);
  });
  child.once('error', (err) => {
    exited = true;
    tail.note(`[spawn failed: ${err.message}]`);
  });
  let stopping: Promise<void> | undefined;
  return {
    pid: child.pid ?? 0,
    get exited() {
      return exited;
    },
    output: () => tail.text(),
    stop() {
      // SIGTERM (the data plane drains), SIGKILL if it has not exited within STOP_LIMIT_MS.
      stopping ??= stopChild(child, STOP_LIMIT_MS);
      return stopping;
    },
  };
}
