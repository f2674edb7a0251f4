/**
 * A data plane in its own process, `node data-plane/main.ts`, configured the way a container is
 * (GATEWAY_ETCD_HOSTS, GATEWAY_H2C_LISTEN, GATEWAY_TLS_LISTEN, LOG_LEVEL; shared/config-env.ts applyEnvOverrides), so
 * that its resident memory can be measured alone (/proc/<pid>/status VmRSS) while a test process drives traffic
 * through it. Routes are written straight into etcd with an etcd3 client, as the control plane would.
 *
 * stop() sends SIGTERM (main.ts drains) and SIGKILL if the process has not exited within STOP_LIMIT_MS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import { REPO_ROOT } from '../../shared/config.ts';
import { keepOutputTail, stopChild } from '../../scripts/local-processes.ts';
import { freePort } from '../helpers/ports.ts';

/** How long a SIGTERM may take before the process is killed. */
const STOP_LIMIT_MS = 5_000;
/** Output kept for diagnostics when something fails. */
const OUTPUT_TAIL_CHARS = 8_000;

export interface ChildGateway {
  readonly pid: number;
  /** `127.0.0.1:<port>` of the h2c listener. */
  readonly h2cAddress: string;
  readonly tlsAddress: string;
  /** `127.0.0.1:<port>` of the status port (/healthz, /readyz). */
  readonly statusAddress: string;
  /** VmRSS of the process in KiB; undefined once it has exited. */
  rssKiB(): number | undefined;
  /** The process exited (on its own or stopped). */
  readonly exited: boolean;
  /** Last lines of stdout and stderr. */
  output(): string;
  stop(): Promise<void>;
}

export interface ChildGatewayOptions {
  /** GATEWAY_WORKER_PROCESSES; default 1 (the data plane runs in the child itself, whose RSS is then its own). */
  workers?: number;
  /** Fixed ports (a restarted replica keeps its addresses); free ones by default. */
  ports?: { h2c: number; tls: number; status: number };
  /** More environment (GATEWAY_SHUTDOWN_TIMEOUT, GATEWAY_SNAPSHOT_CACHE, …). */
  env?: Record<string, string>;
  /** A command that execs the node command line it is given, e.g. `['prlimit', '--nofile=400']` (same pid). */
  launcher?: readonly string[];
  /** The script to run, relative to the repository: the sources by default, `dist/data-plane/main.js` for the build. */
  entry?: string;
}

export async function spawnChildGateway(etcdEndpoint: string, options: ChildGatewayOptions = {}): Promise<ChildGateway> {
  const h2cPort = options.ports?.h2c ?? (await freePort());
  const tlsPort = options.ports?.tls ?? (await freePort());
  const statusPort = options.ports?.status ?? (await freePort());
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GATEWAY_ETCD_HOSTS: etcdEndpoint,
    GATEWAY_H2C_LISTEN: `127.0.0.1:${h2cPort}`,
    GATEWAY_TLS_LISTEN: `127.0.0.1:${tlsPort}`,
    GATEWAY_STATUS_LISTEN: `127.0.0.1:${statusPort}`,
    GATEWAY_WORKER_PROCESSES: String(options.workers ?? 1),
    LOG_LEVEL: 'warn',
    ...options.env,
  };
  // The test runner marks its own children; the gateway is not one of them.
  delete env['NODE_TEST_CONTEXT'];
  const command = [...(options.launcher ?? []), process.execPath, options.entry ?? 'data-plane/main.ts'];
  const child: ChildProcess = spawn(command[0] ?? process.execPath, command.slice(1), {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail = keepOutputTail(child, OUTPUT_TAIL_CHARS);
  let exited = false;
  child.once('exit', (code, signal) => {
    exited = true;
    tail.note(`[gateway exited: code ${String(code)}, signal ${String(signal)}]`);
  });
  const spawned = await new Promise<number>((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid ?? 0));
    child.once('error', reject);
  });

  let stopping: Promise<void> | undefined;
  return {
    pid: spawned,
    h2cAddress: `127.0.0.1:${h2cPort}`,
    tlsAddress: `127.0.0.1:${tlsPort}`,
    statusAddress: `127.0.0.1:${statusPort}`,
    get exited() {
      return exited;
    },
    rssKiB() {
      if (exited) return undefined;
      try {
        const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${spawned}/status`, 'utf8'));
        return match?.[1] === undefined ? undefined : Number(match[1]);
      } catch {
        return undefined;
      }
    },
    output: () => tail.text(),
    stop() {
      // SIGTERM (the data plane drains), SIGKILL if it has not exited within STOP_LIMIT_MS.
      stopping ??= stopChild(child, STOP_LIMIT_MS);
      return stopping;
    },
  };
}

/** Writes `value` (JSON) at `key` in etcd with a short-lived etcd3 client. */
export async function putEtcdJson(etcdEndpoint: string, key: string, value: unknown): Promise<void> {
  const client = new Etcd3({ hosts: etcdEndpoint });
  try {
    await client.put(key).value(JSON.stringify(value));
  } finally {
    client.close();
  }
}
