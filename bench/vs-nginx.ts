/**
 * The gateway's two HTTP/2 engines against nginx's grpc_pass on the same machine (issues #6 and #12), what its
 * observability costs (issue #14), and what grpc-web and JSON transcoding cost against plain gRPC (issue #17), in one go:
 *
 *   npm run bench -- [--quick] [--rounds N] [--seconds S] [--cases idle,unary-100,...]
 *                    [--targets direct,nginx,gateway-native,gateway-node,gateway-observed,gateway-traced,gateway-plugins,gateway-redis]
 *                    [--workers auto|N] [--nginx-reuseport]
 *                    [--idle-connections N] [--skip-setup] [--help]
 *
 * Full run (about 20 minutes): `npm run bench`. Smoke run (a few minutes): `npm run bench -- --quick`.
 * Issue #14's cost of observability (a few minutes): `npm run bench -- --cases unary-100
 * --targets gateway-native,gateway-observed,gateway-traced` (add nginx for the × nginx column). Issue #16's cost of
 * plugins: `npm run bench -- --cases unary-100 --targets nginx,gateway-native,gateway-plugins` (add gateway-redis, and the
 * case unary-1, for limit-count with `policy: redis`: calls/s and the p50 it adds). Issue #17's browser and REST
 * clients (a few minutes): `npm run bench -- --cases unary-100,web-h1-100,web-h2-100,json-100,json-h1-100
 * --targets gateway-native` (nginx, direct and gateway-node serve neither protocol: named, they skip those cases).
 *
 * --targets: any subset, in any order, of direct (the Go upstream itself), nginx, gateway-native and gateway-node
 * (the gateway with `apisix.http2_engine: native` / `node`, issue #14's observability off), gateway-observed (native
 * with metrics, the access log to a file and request ids on) and gateway-traced (that plus OTLP span export at
 * 10 % sampling to a sink in this process), gateway-plugins (native, observability off, key-auth + limit-count on
 * the routes and the consumer's key in every call), gateway-redis (the same with limit-count's `policy: redis`
 * against a redis-server of its own); `gateway` is an alias of the engine a deployment runs when the setting
 * is unset (shared/config.ts DEFAULT_HTTP2_ENGINE). Default: direct, nginx, gateway-native, gateway-node (the
 * observability targets only when named: they answer one question, unary-100 against gateway-native, and would
 * make a full run half as long again). The goals against nginx need nginx in the selection, issue #14's need
 * gateway-native. --cases: any subset of idle, idle-tls, unary-100, unary-1, tls-100, grpcs-100, mib-8,
 * stream-16, web-h1-100, web-h2-100, json-100, json-h1-100, slow-reader (default: all). web-h1-100 to json-h1-100
 * are issue #17's, each a 64 B unary echo with 100 in flight as unary-100, through a gateway's own routes:
 * web-h1-100 grpc-web+proto over HTTP/1.1 keep-alive (h2load --h1 -c 100 -m 1: one request at a time per
 * connection, as browsers do not pipeline; h2load's -m pipelines on HTTP/1.1), web-h2-100 grpc-web+proto over h2c
 * (-c 10 -m 10), json-100 JSON transcoded to the call over h2c (-c 10 -m 10), json-h1-100 the same over HTTP/1.1
 * (--h1 -c 100 -m 1); native-engine gateway targets only (skipped, with a note, for direct, nginx and gateway-node,
 * whose node:http2 engine serves neither). --quick: 1 round of 2 s runs, 2,000 instead of 10,000 idle TLS connections
 * and a 32 MiB instead of 200 MiB slow-reader stream (the goals table says when a figure is not at the goal's size);
 * default 3 rounds of 8 s runs. --idle-connections sets the count of both idle cases. --workers sets
 * the gateways' GATEWAY_WORKER_PROCESSES (default auto, like nginx's worker_processes auto). --nginx-reuseport adds
 * `reuseport` to nginx's listeners (the kernel spreads connections over its workers; without it a worker may take
 * most of a handful of connections, as the default nginx does).
 *
 * 1. bench/setup.sh installs what is missing from Debian (h2load, nginx, Go + grpc-go sources, etcd) and builds the
 *    Go upstream offline (bench/.build/upstream-go).
 * 2. Starts the upstream, nginx (grpc_pass with upstream keepalive) and one whole gateway per gateway target (its own
 *    etcd, control plane and data plane with a worker per core, on their own free ports; routes PUT through the admin
 *    API), all on loopback and all at once. Each gateway reads its own copy of conf/config.yaml with
 *    `apisix.http2_engine` set to its engine (the file's setting wins over GATEWAY_HTTP2_ENGINE, also set), the client
 *    limits lifted that nginx does not have here either, and observability off or, for gateway-observed and
 *    gateway-traced, on (bench/vs-nginx/targets.ts GATEWAY_BENCH_SETTINGS, writeGatewayBenchConfig; the GATEWAY_*
 *    observability variables set to match, and the file and environment read back); before it is used, every one
 *    of its serving processes must have logged that engine (startGateway), or the run stops.
 * 3. The idle-connection cases first (fresh processes; h2c, then TLS), then ROUNDS rounds of the load cases; in each
 *    round every case runs once per target that serves it, targets interleaved (their order rotates per round). Each run: a short
 *    h2load -D warm-up that also sizes the run, then `h2load -n N --log-file` so every request completes and is
 *    counted. Last, the slow-reader case runs bench/memory-slow-reader.ts for the selected engines.
 * 4. Every run is verified: h2load's succeeded == N == 200s in its log, the upstream's count of OK calls grew by
 *    exactly N with no failed call, and the response bytes received (DATA, or HTTP/1.1 bodies) are N × the expected
 *    response; before a case's first run, a sample of grpc-js calls checks grpc-status 0 and the payload through each
 *    target. For grpc-web and JSON the sample is raw requests (bench/vs-nginx/verify.ts): status 200, the content
 *    type, the echoed message then a trailers frame with grpc-status 0, or JSON deep-equal to the request's; their
 *    answers' length is the expected response (grpc-web's trailers frame is what the upstream's trailers make it).
 * 5. CPU per call of every process of each target from /proc/<pid>/stat (utime+stime deltas, master/primary and
 *    workers), the client's from bash `times`, and the CPU that other programs took meanwhile (noise; this
 *    process's own, the OTLP sink's included, is not counted as noise). gateway-observed and gateway-traced runs
 *    also count the access-log lines and the spans the run produced (bench/vs-nginx/observability.ts).
 * 6. Writes a markdown report to bench/results/<timestamp>.md and prints it: issue #12's goals per engine and issue
 *    #14's for the observability targets (measured, target, pass/fail; bench/vs-nginx/goals.ts) with the access-log
 *    lines and spans against the calls, issue #17's cases next to unary-100 of the same gateway target (calls/s,
 *    its ratio, gateway CPU per call and its difference; bench/vs-nginx/report-web.ts), one table of every case ×
 *    every target, then the details.
 *    Everything started is stopped at the end, on failure and on Ctrl-C.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from '../shared/config.ts';
import { selfSignedCert } from '../examples/self-signed.ts';
import { percentile } from './lib/stats.ts';
import { CASES, requestHeaders, responseDataBytes, writeBody, type IdleCase, type LoadCase, type SlowReaderCase } from './vs-nginx/cases.ts';
import { register, stopAll, stopAllOnSignals } from './vs-nginx/children.ts';
import { runH2load } from './vs-nginx/h2load.ts';
import { measureIdle } from './vs-nginx/idle.ts';
import { cpuDelta, cpuSnapshot, machineCpu, openFilesLimit, processTree, US_PER_TICK } from './vs-nginx/proc.ts';
import { renderReport, type IdleRecord, type MachineInfo, type ObservabilitySummary, type RunRecord, type SampleRecord } from './vs-nginx/report.ts';
import { runObserver, scrapeCounters, startOtlpSink, type OtlpSink, type RunObserver } from './vs-nginx/observability.ts';
import { runSlowReader, type SlowReaderRecord } from './vs-nginx/slow-reader.ts';
import {
  DEFAULT_TARGETS,
  directTarget,
  engineOf,
  GATEWAY_BENCH_SETTINGS,
  GATEWAY_TARGETS,
  isEngineTarget,
  isGatewayTarget,
  nginxBinary,
  parseTargets,
  PLUGIN_API_KEY,
  servesCase,
  settingText,
  startGateway,
  startNginx,
  startUpstream,
  TRACE_SAMPLE_RATIO,
  url,
  writeGatewayBenchConfig,
  type GatewayTarget,
  type Target,
  type TargetName,
} from './vs-nginx/targets.ts';
import { sampleCalls } from './vs-nginx/verify.ts';

/** The usage: this file's header comment. */
function usage(): string {
  const text = readFileSync(new URL(import.meta.url), 'utf8');
  const header = /^\/\*\*\n([\s\S]*?)\n \*\//.exec(text)?.[1] ?? '';
  return `${header.replace(/^ \* ?/gm, '')}\n`;
}

const OPTIONS = {
  help: { type: 'boolean', short: 'h', default: false },
  quick: { type: 'boolean', default: false },
  rounds: { type: 'string' },
  seconds: { type: 'string' },
  cases: { type: 'string' },
  targets: { type: 'string', default: DEFAULT_TARGETS },
  workers: { type: 'string', default: 'auto' },
  'skip-setup': { type: 'boolean', default: false },
  'idle-connections': { type: 'string' },
  'nginx-reuseport': { type: 'boolean', default: false },
} as const;

let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>;
try {
  parsed = parseArgs({ options: OPTIONS });
} catch (err) {
  console.error(`${err instanceof Error ? err.message : String(err)}\n(npm run bench -- --help for the options)`);
  process.exit(2);
}
const { values } = parsed;
if (values.help) {
  process.stdout.write(usage());
  process.exit(0);
}

const quick = values.quick;
const rounds = Number(values.rounds ?? (quick ? 1 : 3));
/** Measured seconds per run; a case's own `seconds` is scaled to this. */
const secondsOverride = values.seconds === undefined ? undefined : Number(values.seconds);
const WARMUP_SECONDS = quick ? 0.5 : 1;
const wantedCases = values.cases?.split(',').map((s) => s.trim()) ?? CASES.map((c) => c.id);
const unknownCase = wantedCases.find((id) => !CASES.some((c) => c.id === id));
if (unknownCase !== undefined) {
  console.error(`unknown case ${unknownCase}; cases: ${CASES.map((c) => c.id).join(', ')}`);
  process.exit(2);
}
let targetNames: TargetName[];
try {
  targetNames = parseTargets(values.targets);
} catch (err) {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(2);
}
const gatewayNames = targetNames.filter(isGatewayTarget);
const selected = CASES.filter((c) => wantedCases.includes(c.id));
const loadCases = selected.filter((c): c is LoadCase => c.kind === 'load');
const idleCases = selected.filter((c): c is IdleCase => c.kind === 'idle');
const slowReaderCases = selected.filter((c): c is SlowReaderCase => c.kind === 'slow-reader');
const idleConnections = values['idle-connections'] === undefined ? undefined : Number(values['idle-connections']);
const idleCount = (c: IdleCase): number => idleConnections ?? (quick ? c.quickConnections : c.connections);

function say(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

function seconds(c: LoadCase): number {
  return secondsOverride ?? (quick ? 2 : c.seconds);
}

function versionOf(command: string): string {
  const out = spawnSync('bash', ['-c', command], { encoding: 'utf8' });
  return `${orEmpty(out.stdout)}${orEmpty(out.stderr)}`.trim().split('\n')[0] ?? '?';
}

/** spawnSync's output, null when the process could not start (its types say string). */
function orEmpty(output: string | null): string {
  return output ?? '';
}

function machineInfo(): MachineInfo {
  const model = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? '?';
  return {
    date: new Date().toISOString(),
    cpu: model.trim(),
    cores: cpus().length,
    kernel: release(),
    node: process.version,
    nginx: versionOf(`${nginxBinary()} -v`).replace(/^nginx version: nginx\//, ''),
    go: versionOf('go version').replace(/^go version go/, ''),
    grpcGo: versionOf("dpkg-query -W -f='${Version}' golang-google-grpc-dev"),
    h2load: versionOf('h2load --version'),
    nginxListen: values['nginx-reuseport'] ? 'reuseport' : 'default accept',
    gatewayWorkers: values.workers,
    gatewaySettings: GATEWAY_BENCH_SETTINGS.map(settingText).join(', '),
    loadAverage: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  };
}

/**
 * The proxies hold 10,000 client sockets in the idle case (their workers inherit this process's limit): raise
 * RLIMIT_NOFILE to 65536 where allowed (root with CAP_SYS_RESOURCE), else the soft limit to the hard one.
 */
function raiseOpenFiles(needed: number): void {
  const wanted = 65_536;
  if (spawnSync('prlimit', [`--pid=${process.pid}`, `--nofile=${wanted}:${wanted}`]).status === 0) return;
  const [soft, hard] = openFilesLimit();
  if (soft < hard) spawnSync('prlimit', [`--pid=${process.pid}`, `--nofile=${hard}:${hard}`]);
  const [now] = openFilesLimit();
  if (now < needed) say(`RLIMIT_NOFILE is ${now} and cannot be raised (no CAP_SYS_RESOURCE): the idle case needs about ${needed}`);
}

async function main(): Promise<void> {
  stopAllOnSignals();
  if (!values['skip-setup']) {
    const setup = spawnSync('bash', [join(REPO_ROOT, 'bench/setup.sh')], { stdio: 'inherit' });
    if (setup.status !== 0) throw new Error(`bench/setup.sh failed (exit ${String(setup.status)})`);
  }
  raiseOpenFiles(Math.max(0, ...idleCases.map(idleCount)) + 1_024);
  const machine = machineInfo();
  const dir = mkdtempSync(join(tmpdir(), 'gw-bench-'));
  const records: RunRecord[] = [];
  const samples: SampleRecord[] = [];
  const idle: IdleRecord[] = [];
  const slowReader: SlowReaderRecord[] = [];
  const notes: string[] = [];
  const gatewayOutputs = new Map<TargetName, () => string>();
  const observers = new Map<TargetName, RunObserver>();
  const observability: ObservabilitySummary = { sampleRatio: TRACE_SAMPLE_RATIO, counters: [], sink: undefined };
  let sink: OtlpSink | undefined;
  try {
    const pems = await selfSignedCert({ sans: ['127.0.0.1', 'localhost'] });
    const tls = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
    writeFileSync(tls.cert, pems.cert);
    writeFileSync(tls.key, pems.key, { mode: 0o644 });

    say(`starting the upstream and ${targetNames.join(', ')}`);
    const upstream = await startUpstream(tls);
    if (gatewayNames.some((name) => GATEWAY_TARGETS[name].observability.tracing)) {
      const started = await startOtlpSink();
      sink = started;
      // Stopped after the gateways (newest first), so that their last batches, sent as they stop, are received.
      register('otlp-sink', 0, () => started.close());
      say(`OTLP sink on ${started.address}`);
    }
    const targets: Target[] = [];
    const gateways: GatewayTarget[] = [];
    for (const name of targetNames) {
      if (name === 'direct') targets.push(directTarget(upstream));
      else if (name === 'nginx') targets.push(await startNginx(join(dir, 'nginx'), upstream, tls, values['nginx-reuseport']));
      else {
        const engine = engineOf(name);
        const wants = GATEWAY_TARGETS[name].observability;
        const accessLogFile = wants.accessLog ? join(dir, name, 'access.log') : undefined;
        const config = writeGatewayBenchConfig(join(dir, name), name, { accessLogFile, collector: wants.tracing ? sink?.address : undefined });
        // startGateway checks that every serving process logged this engine before the target is used.
        const gateway = await startGateway(upstream, { name, workers: values.workers, engine, configFile: config.file, env: config.env, plugins: GATEWAY_TARGETS[name].plugins });
        gatewayOutputs.set(name, () => gateway.output());
        if (wants.accessLog || wants.tracing) {
          observers.set(name, runObserver({ accessLogFile, sink: wants.tracing ? sink : undefined, batchTimeoutMs: config.observability.tracing.batch.batchTimeoutMs }));
        }
        targets.push(gateway);
        gateways.push(gateway);
      }
    }
    const described = (name: TargetName): string => {
      if (!isGatewayTarget(name)) return '';
      const on = Object.entries(GATEWAY_TARGETS[name].observability).filter(([, v]) => v).map(([k]) => k);
      return ` (HTTP/2 engine ${engineOf(name)}, checked in its log; observability ${on.length === 0 ? 'off' : on.join(', ')})`;
    };
    for (const t of targets) say(`${t.name}: processes ${t.proxyPids().join(', ')}${described(t.name)}`);
    const upstreamPids = (): number[] => processTree([upstream.pid]);

    // Idle connections first, while every process is fresh: later cases grow heaps that would hide the cost.
    for (const c of idleCases) {
      for (const target of targets) {
        const count = idleCount(c);
        say(`${c.id}: ${count} idle ${c.tls ? 'TLS' : 'h2c'} connections to ${target.name}`);
        const result = await measureIdle(c.tls ? target.tlsAddress : target.h2c, count, () => target.proxyPids(), c.tls);
        idle.push({ caseId: c.id, target: target.name, result });
        if (result.established !== count || result.openAtMeasure !== result.established) {
          notes.push(`${c.id} ${target.name}: ${result.established}/${count} established, ${result.openAtMeasure} open when measured${result.firstError === '' ? '' : ` (first error: ${result.firstError})`}`);
        }
      }
    }

    const bodies = new Map(loadCases.map((c) => [c.id, writeBody(dir, c)]));
    const sampled = new Set<string>();
    /** Response bytes per call, by `case/target`: the case's own, or a checked sample answer's (grpc-web, JSON). */
    const answerBytes = new Map<string, number>();
    for (const c of loadCases) {
      const skipped = targets.filter((t) => !servesCase(t.name, c)).map((t) => t.name);
      if (skipped.length > 0) notes.push(`${c.id}: skipped for ${skipped.join(', ')} (${c.protocol} is served by the ${c.protocol === 'json' ? 'grpc-transcode' : 'grpc-web'} plugin of the gateway's native engine only)`);
    }
    for (let round = 0; round < rounds; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length] as Target);
      for (const c of loadCases) {
        for (const target of order) {
          if (!servesCase(target.name, c)) continue;
          const key = `${c.id}/${target.name}`;
          if (!sampled.has(key)) {
            sampled.add(key);
            const before = await upstream.stats();
            const { address, tls: useTls } = target.endpoint(c);
            const sample = await sampleCalls(address, useTls, c, extraHeaders(target));
            const after = await upstream.stats();
            const upstreamOk = after[c.method === 'Unary' ? 'unary' : 'stream'] - before[c.method === 'Unary' ? 'unary' : 'stream'];
            samples.push({ caseId: c.id, target: target.name, ...sample, upstreamOk });
            answerBytes.set(key, responseDataBytes(c) ?? sample.answerBytes ?? Number.NaN);
            const client = c.protocol === 'grpc' ? 'grpc-js' : `raw ${c.protocol}`;
            if (sample.ok !== sample.calls || sample.problems.length > 0) notes.push(`${key}: ${client} sample ${sample.ok}/${sample.calls} ok: ${sample.problems.join('; ')}`);
          }
          say(`round ${round + 1}/${rounds} ${c.id} → ${target.name}`);
          const perCall = answerBytes.get(key) ?? Number.NaN;
          records.push(await measure(c, target, round, bodies.get(c.id) as string, perCall, upstream, upstreamPids, dir, observers.get(target.name)));
          const last = records[records.length - 1] as RunRecord;
          if (last.problems.length > 0) notes.push(`round ${round + 1} ${key}: ${last.problems.join('; ')}`);
          const seen = last.observation;
          if (seen?.accessLogLines !== undefined && seen.accessLogLines !== last.requests) {
            const gap = last.requests - seen.accessLogLines;
            notes.push(`round ${round + 1} ${key}: ${seen.accessLogLines} access-log lines for ${last.requests} calls (${gap > 0 ? `${gap} dropped` : `${-gap} lines of other calls`})`);
          }
          if (seen?.accessLogLineProblem !== undefined && seen.accessLogLineProblem !== '') notes.push(`round ${round + 1} ${key}: access log: ${seen.accessLogLineProblem}`);
          if (seen?.spans === 0) notes.push(`round ${round + 1} ${key}: the OTLP sink received no span of the run's ${last.requests} calls`);
        }
      }
    }

    // The gateways' own count of what they logged and exported, every call included (warm-ups, samples).
    for (const gateway of gateways) {
      if (!GATEWAY_TARGETS[gateway.name].observability.metrics) continue;
      try {
        observability.counters.push({ target: gateway.name, ...(await scrapeCounters(gateway.statusAddress)) });
      } catch (err) {
        notes.push(`${gateway.name}: metrics scrape failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }

    // The slow reader starts its own etcd, upstream and single-process data planes: last, so that its memory
    // churn cannot disturb the figures above. It runs the engines as they are (observability as conf/config.yaml).
    for (const c of slowReaderCases) {
      const engines = gatewayNames.filter(isEngineTarget).map(engineOf);
      if (engines.length === 0) {
        notes.push(`${c.id}: neither gateway-native nor gateway-node selected, not run`);
        continue;
      }
      const totalMiB = quick ? c.quickTotalMiB : c.totalMiB;
      say(`${c.id}: ${totalMiB} MiB of ${c.messageKiB} KiB messages to a slow reader, engines ${engines.join(', ')}`);
      const result = await runSlowReader(c, engines, totalMiB);
      slowReader.push(...result.records);
      notes.push(...result.notes);
    }
  } finally {
    const gatewayLogs = [...gatewayOutputs].map(([name, output]) => [name, output()] as const);
    say('stopping everything');
    await stopAll();
    if (sink !== undefined) observability.sink = { spans: sink.spans(), ...sink.requests };
    let nginxLog = '';
    try {
      nginxLog = readFileSync(join(dir, 'nginx', 'error.log'), 'utf8');
    } catch {
      // nginx was not started
    }
    const nginxLines = nginxLog.split('\n').filter((l) => /\[(warn|error|crit|alert|emerg)\]/.test(l));
    if (nginxLines.length > 0) notes.push(`nginx error.log (last ${Math.min(nginxLines.length, 5)} of ${nginxLines.length} warn+ lines): ${nginxLines.slice(-5).join(' | ').slice(0, 1500)}`);
    rmSync(dir, { recursive: true, force: true });
    for (const [name, log] of gatewayLogs) {
      // The gateways log at info (their engine at start): warn and above of the JSON lines, and any other line that warns.
      const lines = log.split('\n').filter((l) => (l.startsWith('{') ? /"level":(40|50|60)\b/.test(l) : /warn|error/i.test(l)));
      if (lines.length > 0) notes.push(`${name} log (warn and above, last ${Math.min(lines.length, 5)} of ${lines.length}): ${lines.slice(-5).join(' | ').slice(0, 1500)}`);
    }
  }
  const leftovers = [...cpuSnapshot(processTree([process.pid]).filter((pid) => pid !== process.pid)).comm];
  if (leftovers.length > 0) notes.push(`processes left behind: ${leftovers.map(([pid, comm]) => `${pid} (${comm})`).join(', ')}`);

  const report = renderReport({ machine, rounds, quick, records, samples, idle, slowReader, notes, observability, seconds: loadCases.map((c) => seconds(c)),
    command: ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
  });
  const resultsDir = join(REPO_ROOT, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${machine.date.replace(/[:.]/g, '-')}.md`);
  writeFileSync(file, report);
  process.stdout.write(`${report}\n`);
  say(`written to ${file}`);
}

/** gateway-plugins' routes take only calls that carry the consumer's key (key-auth). */
function extraHeaders(target: Target): string[] {
  return isGatewayTarget(target.name) && GATEWAY_TARGETS[target.name].plugins !== undefined ? [`apikey: ${PLUGIN_API_KEY}`] : [];
}

async function measure(
  c: LoadCase,
  target: Target,
  round: number,
  bodyFile: string,
  /** Response body bytes each call must receive. */
  answerBytes: number,
  upstream: Awaited<ReturnType<typeof startUpstream>>,
  upstreamPids: () => number[],
  dir: string,
  observer: RunObserver | undefined,
): Promise<RunRecord> {
  const common = {
    url: url(target, c),
    bodyFile,
    connections: c.connections,
    streamsPerConnection: c.streamsPerConnection,
    http1: c.http1,
    headers: [...requestHeaders(c), ...extraHeaders(target)],
  };
  // Warm-up, which also sizes the measured run to last about `seconds`.
  const warm = await runH2load({ ...common, durationSeconds: WARMUP_SECONDS, limitMs: 60_000 });
  const rate = Number.isFinite(warm.succeeded) ? warm.succeeded / WARMUP_SECONDS : 0;
  const inFlight = c.connections * c.streamsPerConnection;
  const requests = Math.max(inFlight * 10, Math.min(20_000_000, Math.round(rate * seconds(c))));
  await sleep(200); // requests cut at the warm-up's end finish or fail before counting starts
  // After the warm-up's access-log lines have landed: what the run adds is the run's.
  const mark = await observer?.mark();

  const proxyPids = target.name === 'direct' ? [] : target.proxyPids();
  const upPids = upstreamPids();
  const countKey = c.method === 'Unary' ? 'unary' : 'stream';
  const statsBefore = await upstream.stats();
  const proxyBefore = cpuSnapshot(proxyPids);
  const upBefore = cpuSnapshot(upPids);
  const machineBefore = machineCpu();
  const selfBefore = process.cpuUsage();
  const startedUnixMs = Date.now();
  const started = process.hrtime.bigint();
  const logFile = join(dir, `${c.id}-${target.name}-${round}.log`);
  const run = await runH2load({ ...common, requests, logFile, limitMs: Math.max(60_000, seconds(c) * 20_000) });
  const elapsedUs = Number(process.hrtime.bigint() - started) / 1000;
  const endedUnixMs = Date.now();
  const machineAfter = machineCpu();
  const self = process.cpuUsage(selfBefore);
  const proxyAfter = cpuSnapshot(target.name === 'direct' ? [] : target.proxyPids());
  const upAfter = cpuSnapshot(upstreamPids());
  const statsAfter = await upstream.stats();
  rmSync(logFile, { force: true });
  const observation = mark === undefined || observer === undefined ? undefined : await observer.collect(mark, { startedUnixMs, endedUnixMs });

  const proxyCpu = cpuDelta(proxyBefore, proxyAfter);
  const upCpu = cpuDelta(upBefore, upAfter);
  const upstreamOk = statsAfter[countKey] - statsBefore[countKey];
  const upstreamFailed = statsAfter.failed - statsBefore.failed;
  const expectedData = requests * answerBytes;

  const problems: string[] = [];
  if (run.exitCode !== 0) problems.push(`h2load exit ${String(run.exitCode)}: ${run.stdout.slice(-400)}`);
  if (run.succeeded !== requests) problems.push(`h2load succeeded ${run.succeeded} of ${requests} (failed ${run.failed}, errored ${run.errored}, timeout ${run.timeouts})`);
  if (run.status2xx !== requests) problems.push(`${run.status2xx} 2xx of ${requests}`);
  if (run.latenciesUs.length !== requests) problems.push(`log: ${run.latenciesUs.length} status-200 lines of ${requests} (${run.logNon200} other)`);
  if (upstreamOk !== requests) problems.push(`upstream completed ${upstreamOk} calls OK for ${requests} requests`);
  if (upstreamFailed !== 0) problems.push(`upstream saw ${upstreamFailed} failed calls`);
  if (!Number.isFinite(answerBytes)) problems.push('no checked sample answer to compare the response bytes with');
  else if (run.dataBytes !== expectedData) problems.push(`response ${c.http1 ? 'body' : 'DATA'} ${run.dataBytes} B, expected ${expectedData} B (${answerBytes} B per call)`);
  for (const [name, delta] of [['proxy', proxyCpu], ['upstream', upCpu]] as const) {
    if (delta.vanished.length > 0 || delta.appeared.length > 0) {
      problems.push(`${name} processes changed during the run (gone: ${delta.vanished.join(',') || '-'}, new: ${delta.appeared.join(',') || '-'})`);
    }
  }

  const sorted = [...run.latenciesUs].sort((a, b) => a - b);
  const ok = run.latenciesUs.length;
  const machineBusyUs = (machineAfter.busy - machineBefore.busy) * US_PER_TICK;
  // This process (the OTLP sink answers in it) is the benchmark's, not another program's.
  const ours = (target.name === 'direct' ? 0 : proxyCpu.totalUs) + upCpu.totalUs + (Number.isFinite(run.clientCpuUs) ? run.clientCpuUs : 0) + self.user + self.system;
  return {
    caseId: c.id,
    target: target.name,
    round,
    requests,
    verified: problems.length === 0,
    problems,
    reqPerSec: ok / (run.logWindowUs / 1e6),
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    proxyCpuUsPerCall: target.name === 'direct' ? Number.NaN : proxyCpu.totalUs / requests,
    proxyCpuPerProcess: [...proxyCpu.perPid].map(([pid, v]) => ({ pid, comm: v.comm, usPerCall: v.us / requests })),
    upstreamCpuUsPerCall: upCpu.totalUs / requests,
    clientCpuUsPerCall: run.clientCpuUs / requests,
    otherCores: Math.max(0, machineBusyUs - ours) / elapsedUs,
    ...(observation === undefined ? {} : { observation }),
  };
}

main()
  .then(() => process.exit(0))
  .catch(async (err: unknown) => {
    console.error(`[bench] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await stopAll();
    process.exit(1);
  });
