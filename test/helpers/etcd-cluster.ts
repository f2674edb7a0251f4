/**
 * A real 3-member etcd cluster (Debian's etcd-server) on free loopback ports, each member with its data in a fresh
 * temporary folder, bootstrapped statically with a token unique to this cluster (scripts/local-processes.ts builds
 * the command line). `startEtcdCluster()` resolves once every member reports healthy (it has a leader, so the
 * cluster has quorum).
 *
 * Per member: `kill()` is SIGKILL (a crash), `stop()` is SIGTERM (a clean shutdown, SIGKILL if it takes too long),
 * `start()` brings the same member back on the same ports and data dir (`--initial-cluster-state existing`) and waits
 * until it is healthy. `close()` kills every member and removes the folders; a test run leaves no process behind.
 *
 * `watchers()` reads etcd's `etcd_debugging_mvcc_watcher_total` gauge from the member's /metrics, the number of
 * watches open on that member: a test uses it to find which member a client's watch stream is on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  clientUrl,
  etcdHealthy,
  etcdInstalled,
  etcdIsLeader,
  etcdMemberArgs,
  ETCD_INSTALL_HINT,
  hasExited,
  killChild,
  stopChild,
  waitFor,
  type EtcdClusterSpec,
  type EtcdMemberSpec,
} from '../../scripts/local-processes.ts';
import { freePort } from './ports.ts';

/** Members of a cluster: three tolerate one failure (quorum 2). */
const DEFAULT_SIZE = 3;
/** First start of all members, or a restart of one: a leader election takes ~1 s with etcd's defaults. */
const HEALTHY_LIMIT_MS = 20_000;
/** A clean etcd shutdown is fast; anything slower is killed. */
const STOP_GRACE_MS = 5_000;
/** stderr kept per member for diagnostics. */
const STDERR_TAIL_CHARS = 4_000;

export interface EtcdMember {
  readonly name: string;
  /** `http://127.0.0.1:<client port>`. */
  readonly endpoint: string;
  readonly running: boolean;
  readonly pid: number | undefined;
  /** SIGKILL, as a crash; the data dir stays. */
  kill(): Promise<void>;
  /** SIGTERM (SIGKILL after a bound); the data dir stays. */
  stop(): Promise<void>;
  /** Starts the member again on its data dir and waits until it is healthy. */
  start(): Promise<void>;
  /** SIGSTOP: the member hangs with its sockets open (a paused VM, a blackholed host); resume() is SIGCONT. */
  pause(): void;
  resume(): void;
  /** Watches open on this member (etcd_debugging_mvcc_watcher_total); undefined if it does not answer. */
  watchers(): Promise<number | undefined>;
  /** Whether this member is the raft leader (Maintenance.Status via etcd's JSON gateway); undefined if it does not answer. */
  isLeader(): Promise<boolean | undefined>;
  /** Last lines of the member's stderr (its log at the configured level). */
  stderr(): string;
}

export interface EtcdCluster {
  /** Client URLs of every member, in member order: the value of `deployment.etcd.host`. */
  readonly endpoints: string[];
  readonly members: readonly EtcdMember[];
  /** Resolves once every running member is healthy (bounded). */
  waitHealthy(limitMs?: number): Promise<void>;
  /** One line per member: name, endpoint, running, pid, health. For failure messages. */
  describe(): Promise<string>;
  close(): Promise<void>;
}

export async function startEtcdCluster(options: { size?: number; logLevel?: string } = {}): Promise<EtcdCluster> {
  if (!etcdInstalled()) throw new Error(`cannot start an etcd cluster: ${ETCD_INSTALL_HINT}`);
  const size = options.size ?? DEFAULT_SIZE;
  const root = await mkdtemp(join(tmpdir(), 'gw-etcd-cluster-'));
  const ports = await distinctFreePorts(size * 2);
  const specs: EtcdMemberSpec[] = Array.from({ length: size }, (_, i) => ({
    name: `member-${i + 1}`,
    host: '127.0.0.1',
    clientPort: ports[i * 2] ?? 0,
    peerPort: ports[i * 2 + 1] ?? 0,
    dataDir: join(root, `member-${i + 1}`),
  }));
  const cluster: EtcdClusterSpec = { members: specs, token: `gw-test-${randomUUID()}`, logLevel: options.logLevel ?? 'warn' };
  const members = specs.map((spec) => new Member(cluster, spec));

  const waitHealthy = async (limitMs = HEALTHY_LIMIT_MS): Promise<void> => {
    await Promise.all(members.filter((m) => m.running).map((m) => m.waitHealthy(limitMs)));
  };
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      await Promise.all(members.map((m) => m.kill()));
      await rm(root, { recursive: true, force: true });
    })();
    return closed;
  };

  try {
    // All at once: each member waits for its peers before it has a leader and reports healthy.
    for (const member of members) member.spawn('new');
    await waitHealthy();
  } catch (err) {
    const detail = members.map((m) => `${m.name}: ${m.stderr()}`).join('\n');
    await close();
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${detail}`);
  }

  return {
    endpoints: specs.map((s) => clientUrl(s)),
    members,
    waitHealthy,
    async describe() {
      const lines = await Promise.all(
        members.map(
          async (m) =>
            `${m.name} ${m.endpoint} running=${String(m.running)} pid=${String(m.pid)} healthy=${String(await etcdHealthy(m.endpoint))} ` +
            `leader=${String(await m.isLeader())} watchers=${String(await m.watchers())}`,
        ),
      );
      return lines.join('\n');
    },
    close,
  };
}

class Member implements EtcdMember {
  readonly #cluster: EtcdClusterSpec;
  readonly #spec: EtcdMemberSpec;
  #proc: ChildProcess | undefined;
  #stderr = '';
  #failure: string | undefined;

  constructor(cluster: EtcdClusterSpec, spec: EtcdMemberSpec) {
    this.#cluster = cluster;
    this.#spec = spec;
  }

  get name(): string {
    return this.#spec.name;
  }

  get endpoint(): string {
    return clientUrl(this.#spec);
  }

  get running(): boolean {
    return this.#proc !== undefined && !hasExited(this.#proc);
  }

  get pid(): number | undefined {
    return this.running ? this.#proc?.pid : undefined;
  }

  spawn(state: 'new' | 'existing'): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.#failure = undefined;
    const proc = spawn('etcd', etcdMemberArgs(this.#cluster, this.#spec, state), { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#proc = proc;
    proc.stderr.on('data', (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-STDERR_TAIL_CHARS);
    });
    proc.once('error', (err) => (this.#failure = `cannot start etcd: ${err.message}`));
    proc.once('exit', (code, signal) => (this.#failure ??= `exited (code ${String(code)}, signal ${String(signal)})`));
  }

  waitHealthy(limitMs: number): Promise<void> {
    const proc = this.#proc;
    return waitFor(`${this.name} (${this.endpoint}) did not become healthy`, () => etcdHealthy(this.endpoint), limitMs, {
      everyMs: 50,
      abort: () => (proc !== this.#proc || !this.running ? (this.#failure ?? 'not running') + `\n${this.#stderr}` : undefined),
    });
  }

  async kill(): Promise<void> {
    if (this.#proc !== undefined) await killChild(this.#proc);
  }

  async stop(): Promise<void> {
    if (this.#proc !== undefined) await stopChild(this.#proc, STOP_GRACE_MS);
  }

  async start(): Promise<void> {
    this.spawn('existing');
    await this.waitHealthy(HEALTHY_LIMIT_MS);
  }

  pause(): void {
    if (this.#proc?.pid !== undefined && this.running) process.kill(this.#proc.pid, 'SIGSTOP');
  }

  resume(): void {
    if (this.#proc?.pid !== undefined && this.running) process.kill(this.#proc.pid, 'SIGCONT');
  }

  watchers(): Promise<number | undefined> {
    return etcdWatchers(this.endpoint);
  }

  isLeader(): Promise<boolean | undefined> {
    return etcdIsLeader(this.endpoint);
  }

  stderr(): string {
    return this.#stderr;
  }
}

/**
 * Watches open on the etcd member at `endpoint`: its `etcd_debugging_mvcc_watcher_total` gauge (/metrics, etcd
 * 3.4 and 3.5); undefined when the member does not answer.
 */
export async function etcdWatchers(endpoint: string): Promise<number | undefined> {
  try {
    const res = await fetch(`${endpoint}/metrics`, { signal: AbortSignal.timeout(1_000) });
    if (!res.ok) return undefined;
    const match = /^etcd_debugging_mvcc_watcher_total\s+(\d+)/m.exec(await res.text());
    return match?.[1] === undefined ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

/** `count` free loopback ports, all different (freePort alone may hand the same port out twice). */
async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}
