/**
 * The cost of active gRPC health probes (issue #13; goal: 1,000 nodes probed every second under 5 % of one core).
 * One prober (data-plane/upstream/health/probes.ts) probes N distinct targets with grpc.health.v1.Health/Check
 * once a second for S seconds, and its process's CPU (process.cpuUsage: user + system, this process only) is
 * reported as a share of one core, per round and overall.
 *
 * The servers, in a child process (their CPU is not the prober's), listening on N ports of 127.0.0.1, so every
 * target is its own (host, port) with its own persistent connection:
 *   --server go    grpc-go's own health server (google.golang.org/grpc/health), built offline from Debian's
 *                  golang-google-grpc-dev like bench/upstream-go (bench/setup.sh installs it) into bench/.build.
 *                  The default when `go` and those sources are there: most gRPC services that get health-checked
 *                  are grpc-go, and it answers a unary call in one write (one read for the prober).
 *   --server node  @grpc/grpc-js (test/helpers/grpc-health.ts): its answer comes in two or three TCP segments, so
 *                  the prober reads about twice per probe. Each second's probes start in BATCHES groups 1000/BATCHES ms apart, as the
 * health registry starts due probes on its 100 ms tick (registry.ts); `--batches 1` starts them all at once.
 * The first round dials every connection and is reported apart (a handshake per node, once), and so are the
 * WARMUP rounds after it, while V8 still compiles the hot path (a gateway probes for hours: the steady rounds are
 * what it costs).
 *
 *   node bench/health-probes.ts [--nodes 1000] [--seconds 20] [--warmup 10] [--timeout 1000] [--batches 10]
 *                                            [--server go|node]
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/health-probes.ts     (where the time goes)
 *
 * Loopback only; the child is stopped in `finally`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Prober } from '../data-plane/upstream/health/probes.ts';
import type { ActiveProbe, ProbeOutcome, ProbeResult, ProbeTarget } from '../data-plane/upstream/health/types.ts';
import { silentLogger } from '../shared/logger.ts';
import { fmt, markdownTable, summarize } from './lib/stats.ts';

const SERVER_SCRIPT = fileURLToPath(new URL('../test/helpers/grpc-health.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const GOAL_PERCENT = 5;
const BUILD_DIR = fileURLToPath(new URL('./.build/', import.meta.url));
const GO_SOURCES = '/usr/share/gocode/src/google.golang.org/grpc';
/** The first round dials every connection at once: it gets this long, whatever --timeout says. */
const DIAL_TIMEOUT_MS = 20_000;

/** grpc-go's health server (all services SERVING at "") on N listeners; prints {"ports":[…]} like the node one. */
const GO_HEALTH_SERVER = `package main

import (
	"encoding/json"
	"flag"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	listeners := flag.Int("listeners", 1, "ports to listen on")
	flag.Parse()
	server := grpc.NewServer()
	healthpb.RegisterHealthServer(server, health.NewServer())
	ports := []int{}
	for i := 0; i < *listeners; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		go server.Serve(l)
	}
	if err := json.NewEncoder(os.Stdout).Encode(map[string][]int{"ports": ports}); err != nil {
		panic(err)
	}
	select {}
}
`;

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '10' },
    timeout: { type: 'string', default: '1000' },
    batches: { type: 'string', default: '10' },
    server: { type: 'string' },
  },
});
const nodes = boundedInt(values.nodes, '--nodes', 1, 10_000);
const seconds = boundedInt(values.seconds, '--seconds', 1, 3_600);
const warmup = boundedInt(values.warmup, '--warmup', 0, 3_600);
const timeoutMs = boundedInt(values.timeout, '--timeout', 1, 60_000);
const batches = boundedInt(values.batches, '--batches', 1, 1_000);
const serverKind = values.server ?? (goAvailable() ? 'go' : 'node');
if (serverKind !== 'go' && serverKind !== 'node') throw new Error('--server must be go or node');

const check: ActiveProbe = {
  type: 'grpc',
  timeoutMs,
  host: undefined,
  httpPath: '/',
  reqHeaders: [],
  grpcService: '',
  healthyStatuses: [200],
  unhealthyStatuses: [],
};

interface Round {
  cpuMs: number;
  /** Of cpuMs, in the kernel (socket reads and writes, loopback delivery). */
  systemMs: number;
  wallMs: number;
  outcomes: Map<ProbeOutcome, number>;
  /** Slowest probe of the round (start to result), ms. */
  slowestMs: number;
  serverCpuMs: number;
}

async function main(): Promise<void> {
  const server = await spawnServers(serverKind === 'go' ? [buildGoServer(), '-listeners', String(nodes)] : [process.execPath, SERVER_SCRIPT, '--listeners', String(nodes)]);
  const prober = new Prober(silentLogger());
  const targets: ProbeTarget[] = server.ports.map((port) => ({ host: '127.0.0.1', port, scheme: 'grpc', tls: undefined }));
  const failures = new Map<string, number>();
  try {
    const dial = await round(prober, targets, server.child, failures, 0, { ...check, timeoutMs: Math.max(timeoutMs, DIAL_TIMEOUT_MS) });
    const rounds: Round[] = [];
    const started = performance.now();
    for (let i = 0; i < warmup + seconds; i++) {
      // Rounds start on whole seconds from the first (a slow round does not shift the ones after it).
      const wait = started + i * 1000 - performance.now();
      if (wait > 0) await sleep(wait);
      rounds.push(await round(prober, targets, server.child, failures, 1000));
    }
    const warm = totals(rounds.slice(0, warmup));
    const steady = totals(rounds.slice(warmup));
    const first = totals([dial]);
    const row = (label: string, t: Totals): string[] => [
      label,
      fmt(t.cpuPercent, 2),
      fmt(t.systemPercent, 2),
      fmt(t.cpuUsPerProbe, 1),
      String(t.probes),
      String(t.successes),
      fmt(t.slowestMs, 1),
      fmt(t.serverPercent, 1),
    ];

    console.log(`\n# Active gRPC health probes: ${nodes} targets (${serverKind === 'go' ? 'grpc-go' : 'grpc-js'} health servers), every second\n`);
    console.log(
      markdownTable(
        ['', 'prober CPU, % of one core', 'of which kernel', 'CPU µs per probe', 'probes', 'successes', 'slowest probe ms', 'server CPU, % of one core'],
        [
          row('first round (dials every connection)', first),
          ...(warmup > 0 ? [row(`warm-up (${warmup} rounds: V8 optimizes the hot path)`, warm)] : []),
          row(`steady (${seconds} rounds)`, steady),
        ],
      ),
    );
    const perRound = summarize(rounds.slice(warmup).map((r) => (100 * r.cpuMs) / r.wallMs));
    console.log(`\nsteady, per-round prober CPU %: p50 ${fmt(perRound.p50, 2)}, p90 ${fmt(perRound.p90, 2)}, max ${fmt(perRound.max, 2)}`);
    console.log(`every round: ${rounds.map((r) => fmt((100 * r.cpuMs) / r.wallMs, 1)).join(' ')}`);
    console.log(`prober connections at the end: ${prober.connections} (one per target)`);
    if (failures.size > 0) console.log(`not successes: ${JSON.stringify(Object.fromEntries(failures))}`);
    const all = totals([dial, ...rounds]);
    console.log(`goal < ${GOAL_PERCENT} % of one core (steady): ${steady.cpuPercent < GOAL_PERCENT ? 'met' : 'MISSED'}; all successes: ${all.successes === all.probes ? 'yes' : 'NO'}`);
    console.log(`\n  node bench/health-probes.ts --nodes ${nodes} --seconds ${seconds} --warmup ${warmup} --timeout ${timeoutMs} --batches ${batches} --server ${serverKind}`);
    if (all.successes !== all.probes || steady.cpuPercent >= GOAL_PERCENT) process.exitCode = 1;
  } finally {
    await prober.close();
    await server.stop();
  }
}

/** One round: every target probed once, in `batches` groups spread over `spreadMs`. */
async function round(
  prober: Prober,
  targets: readonly ProbeTarget[],
  child: ChildProcess,
  failures: Map<string, number>,
  spreadMs = 0,
  probeCheck = check,
): Promise<Round> {
  const outcomes = new Map<ProbeOutcome, number>();
  let slowestMs = 0;
  const serverBefore = childCpuMs(child);
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  const record = (startedAt: number) => (result: ProbeResult): void => {
    outcomes.set(result.outcome, (outcomes.get(result.outcome) ?? 0) + 1);
    if (result.outcome !== 'success') failures.set(`${result.outcome}: ${result.reason}`, (failures.get(`${result.outcome}: ${result.reason}`) ?? 0) + 1);
    slowestMs = Math.max(slowestMs, performance.now() - startedAt);
  };
  const pending: Promise<void>[] = [];
  const per = Math.ceil(targets.length / batches);
  for (let b = 0; b < batches; b++) {
    if (b > 0 && spreadMs > 0) await sleep(Math.max(0, wallBefore + (b * spreadMs) / batches - performance.now()));
    const startedAt = performance.now();
    for (const target of targets.slice(b * per, (b + 1) * per)) pending.push(prober.probe(target, probeCheck).then(record(startedAt)));
  }
  await Promise.all(pending);
  // The round's CPU is measured over the whole second it owns (what the probes cost includes the idle rest).
  if (spreadMs > 0) await sleep(Math.max(0, wallBefore + spreadMs - 1 - performance.now()));
  const cpu = process.cpuUsage(cpuBefore);
  return {
    cpuMs: (cpu.user + cpu.system) / 1000,
    systemMs: cpu.system / 1000,
    wallMs: performance.now() - wallBefore,
    outcomes,
    slowestMs,
    serverCpuMs: childCpuMs(child) - serverBefore,
  };
}

interface Totals {
  cpuPercent: number;
  systemPercent: number;
  cpuUsPerProbe: number;
  probes: number;
  successes: number;
  slowestMs: number;
  serverPercent: number;
}

function totals(rounds: readonly Round[]): Totals {
  const sum = (f: (r: Round) => number): number => rounds.reduce((acc, r) => acc + f(r), 0);
  const wall = sum((r) => r.wallMs);
  const cpu = sum((r) => r.cpuMs);
  const probes = sum((r) => [...r.outcomes.values()].reduce((a, b) => a + b, 0));
  return {
    cpuPercent: (100 * cpu) / wall,
    systemPercent: (100 * sum((r) => r.systemMs)) / wall,
    cpuUsPerProbe: (1000 * cpu) / probes,
    probes,
    successes: sum((r) => r.outcomes.get('success') ?? 0),
    slowestMs: Math.max(0, ...rounds.map((r) => r.slowestMs)),
    serverPercent: (100 * sum((r) => r.serverCpuMs)) / wall,
  };
}

interface Servers {
  readonly child: ChildProcess;
  readonly ports: readonly number[];
  stop(): Promise<void>;
}

async function spawnServers(command: readonly string[]): Promise<Servers> {
  const env = { ...process.env };
  delete env['NODE_TEST_CONTEXT'];
  const child = spawn(command[0] as string, command.slice(1), {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ports = await new Promise<number[]>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const newline = out.indexOf('\n');
      if (newline >= 0) resolve((JSON.parse(out.slice(0, newline)) as { ports: number[] }).ports);
    });
    child.once('exit', (code) => reject(new Error(`health servers exited (${String(code)}) before they listened`)));
  });
  return {
    child,
    ports,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

function goAvailable(): boolean {
  if (!existsSync(GO_SOURCES)) return false;
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Builds the Go health server into bench/.build/health-go (offline, as bench/setup.sh builds upstream-go). */
function buildGoServer(): string {
  const dir = `${BUILD_DIR}health-go-src`;
  const bin = `${BUILD_DIR}health-go`;
  mkdirSync(dir, { recursive: true });
  const source = `${dir}/main.go`;
  const current = existsSync(source) ? readFileSync(source, 'utf8') : '';
  if (current !== GO_HEALTH_SERVER) writeFileSync(source, GO_HEALTH_SERVER);
  if (!existsSync(bin) || statSync(source).mtimeMs > statSync(bin).mtimeMs) {
    console.error(`building ${bin} (offline, GOPATH=/usr/share/gocode)`);
    execFileSync('go', ['build', '-o', bin, '.'], {
      cwd: dir,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOPROXY: 'off', GOCACHE: `${BUILD_DIR}gocache` },
    });
  }
  return bin;
}

/** The child's user + system CPU so far (Linux /proc; NaN elsewhere). */
function childCpuMs(child: ChildProcess): number {
  try {
    const stat = readFileSync(`/proc/${String(child.pid)}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
}

function boundedInt(text: string | undefined, name: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer in [${min}, ${max}]`);
  return n;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exitCode = 1;
});
