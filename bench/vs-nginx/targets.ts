/**
 * The targets of the benchmark, each started the way its users run it:
 *
 * - direct: the Go upstream itself (bench/upstream-go), plaintext and TLS ports: the limit.
 * - nginx: `grpc_pass grpc://` (and `grpcs://` for /bench.EchoTls/) to upstream blocks with `keepalive 100`,
 *   `worker_processes auto`, h2c and TLS listeners, from a config generated into the run's folder, as a foreground
 *   child (`-g 'daemon off;'`), not the system service.
 * - gateway-native, gateway-node: the gateway with one HTTP/2 engine each (`apisix.http2_engine`, given to the data
 *   plane as GATEWAY_HTTP2_ENGINE) and issue #14's observability all off (no metrics, access log, request id or span
 *   export), so they measure the proxy as it was before it. Each is a whole gateway of its own: its own etcd on free
 *   ports, its own control plane and data plane (`worker_processes` auto, one per core like nginx's) on free ports,
 *   routes created with PUTs to the admin API, ready once /readyz shows every worker with the routes. All run at
 *   once, so a round measures every target on the same machine state; an idle gateway costs a few etcd heartbeats.
 *   `gateway` names the engine an unconfigured deployment runs (shared/config.ts DEFAULT_HTTP2_ENGINE).
 * - gateway-observed, gateway-traced (issue #14, only when asked for): the native engine started the same way with
 *   observability on: Prometheus metrics, the access log in its default JSON lines to a file in the run's folder,
 *   and request ids; gateway-traced also exports spans over OTLP/HTTP at TRACE_SAMPLE_RATIO (parent_base over a
 *   trace_id_ratio root) to the benchmark's own sink (observability.ts). Their cost is gateway-native's figures
 *   against theirs (goals.ts).
 *
 * Every gateway target also serves issue #17's cases: a `grpc-web` route (`/web/*`, the plugin strips the prefix) and
 * a `grpc-transcode` route (`/json/unary`, bench.Echo/Unary of cases.ts BENCH_PROTO, PUT to /apisix/admin/protos),
 * both to the upstream's plaintext port (gateway-node's engine serves neither: its routes are there, unused); direct,
 * nginx and gateway-node skip those cases (servesCase).
 *
 * The gateways read a config generated from conf/config.yaml (gatewayBenchConfig) that lifts the limits a benchmark
 * client trips by design and nginx does not have here either: every connection comes from 127.0.0.1 (no per-address
 * cap), idle connections are kept as nginx's `keepalive_timeout 600s` keeps them, and connections are never recycled.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDocument } from 'yaml';
import { DEFAULT_HTTP2_ENGINE, loadConfig, REPO_ROOT, type Http2Engine } from '../../shared/config.ts';
import type { ObservabilityConfig } from '../../shared/config-observability.ts';
import { startEtcd } from '../../test/helpers/etcd.ts';
import { startRedis } from '../../test/helpers/redis.ts';
import { freePort } from '../../test/helpers/ports.ts';
import { spawnControlPlane, spawnDataPlane } from '../lib/processes.ts';
import { BENCH_PROTO, BENCH_PROTO_ID, JSON_PATH, requestPath, WEB_PREFIX, type LoadCase } from './cases.ts';
import { register, spawnTracked, type Spawned } from './children.ts';
import { openFilesLimit, processTree } from './proc.ts';

/** A gateway with one HTTP/2 engine and observability off. */
export type EngineTargetName = `gateway-${Http2Engine}`;
/**
 * The native engine with something on that gateway-native lacks: issue #14's observability (without and with span
 * export), or issue #16's plugins (gateway-plugins: key-auth + limit-count on the routes, observability off;
 * gateway-redis: the same with limit-count's `policy: redis`, against a redis-server the target starts).
 */
export type ObservedTargetName = 'gateway-observed' | 'gateway-traced' | 'gateway-plugins' | 'gateway-redis';
export type GatewayTargetName = EngineTargetName | ObservedTargetName;
export type TargetName = 'direct' | 'nginx' | GatewayTargetName;

/** Every target, in the order of the report's tables. */
export const TARGET_NAMES: readonly TargetName[] = ['direct', 'nginx', 'gateway-native', 'gateway-node', 'gateway-observed', 'gateway-traced', 'gateway-plugins', 'gateway-redis'];
/**
 * Without gateway-observed and gateway-traced: two more whole gateways in every case would make the full run half as
 * long again, for a question (issue #14's cost) that only unary-100 against gateway-native answers.
 */
export const DEFAULT_TARGETS = 'direct,nginx,gateway-native,gateway-node';
/** `--targets gateway` means the engine a deployment runs when `apisix.http2_engine` is unset. */
export const GATEWAY_ALIAS = 'gateway';

/** What a gateway target turns on of issue #14's observability. */
export interface Observability {
  /** plugin_attr.prometheus.enable */
  metrics: boolean;
  /** nginx_config.http.enable_access_log, to a file in the target's folder, default (JSON) format. */
  accessLog: boolean;
  /** plugin_attr.request-id.enable */
  requestId: boolean;
  /** plugin_attr.opentelemetry: spans to the benchmark's OTLP sink at TRACE_SAMPLE_RATIO. */
  tracing: boolean;
}

const OBSERVABILITY_OFF: Observability = { metrics: false, accessLog: false, requestId: false, tracing: false };
const OBSERVED: Observability = { metrics: true, accessLog: true, requestId: true, tracing: false };

/** Each gateway target's engine and observability. */
/** Which limit-count policy a plugins target runs (with key-auth before it). */
export type PluginsPolicy = 'local' | 'redis';

export const GATEWAY_TARGETS: Readonly<Record<GatewayTargetName, { engine: Http2Engine; observability: Observability; plugins?: PluginsPolicy }>> = {
  'gateway-native': { engine: 'native', observability: OBSERVABILITY_OFF },
  'gateway-node': { engine: 'node', observability: OBSERVABILITY_OFF },
  'gateway-observed': { engine: 'native', observability: OBSERVED },
  'gateway-traced': { engine: 'native', observability: { ...OBSERVED, tracing: true } },
  'gateway-plugins': { engine: 'native', observability: OBSERVABILITY_OFF, plugins: 'local' },
  'gateway-redis': { engine: 'native', observability: OBSERVABILITY_OFF, plugins: 'redis' },
};

/**
 * gateway-plugins' routes: key-auth (the consumer's key in every call's `apikey` header) then limit-count per
 * consumer with a quota no run reaches, so that every call pays both plugins and none is refused (a refusal would
 * show as a missing upstream call in the run's verification). Issue #16's goal: at most 5 µs more gateway CPU per
 * call than gateway-native.
 */
export const PLUGIN_API_KEY = 'bench-consumer-key-7e1f';
const PLUGIN_CONSUMER = { username: 'bench', plugins: { 'key-auth': { key: PLUGIN_API_KEY } } };
/** The routes' plugins; with `policy: redis`, every call is one round trip to the Redis on `redisPort`. */
function routePlugins(policy: PluginsPolicy, redisPort: number): Record<string, unknown> {
  const limit = { count: 1_000_000_000, time_window: 86_400, key: 'consumer_name' };
  return {
    'key-auth': {},
    'limit-count': policy === 'local' ? limit : { ...limit, policy: 'redis', redis_host: '127.0.0.1', redis_port: redisPort },
  };
}

/** gateway-traced's root sampling fraction (issue #14: "tracing at 10 % sampling"). */
export const TRACE_SAMPLE_RATIO = 0.1;

export function isGatewayTarget(name: TargetName): name is GatewayTargetName {
  return Object.hasOwn(GATEWAY_TARGETS, name);
}

/** gateway-native and gateway-node: the engines as they are, observability off (issue #12's goals are theirs). */
export function isEngineTarget(name: TargetName): name is EngineTargetName {
  return isGatewayTarget(name) && name === `gateway-${engineOf(name)}`;
}

export function engineOf(name: GatewayTargetName): Http2Engine {
  return GATEWAY_TARGETS[name].engine;
}

/**
 * `--targets` as given (any subset, any order, `gateway` = the default engine), deduplicated in the given order;
 * throws on an unknown or empty list.
 */
export function parseTargets(list: string): TargetName[] {
  const names: TargetName[] = [];
  for (const raw of list.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const name = raw === GATEWAY_ALIAS ? (`gateway-${DEFAULT_HTTP2_ENGINE}` as const) : raw;
    if (!(TARGET_NAMES as readonly string[]).includes(name)) {
      throw new Error(`unknown target ${raw}; targets: ${TARGET_NAMES.join(', ')} (${GATEWAY_ALIAS} = gateway-${DEFAULT_HTTP2_ENGINE}, the default engine)`);
    }
    if (!names.includes(name as TargetName)) names.push(name as TargetName);
  }
  if (names.length === 0) throw new Error(`--targets is empty; targets: ${TARGET_NAMES.join(', ')}`);
  return names;
}

/**
 * The engines a data plane's output says its processes started (data-plane/data-plane.ts logs `{"engine":…,
 * "msg":"HTTP/2 engine"}` at info level once per serving process: every worker, or the single process), in order.
 */
export function enginesLogged(output: string): string[] {
  const engines: string[] = [];
  for (const line of output.split('\n')) {
    if (!line.includes('"HTTP/2 engine"')) continue;
    try {
      const entry = JSON.parse(line) as { msg?: unknown; engine?: unknown };
      if (entry.msg === 'HTTP/2 engine') engines.push(String(entry.engine));
    } catch {
      // not a log line of ours
    }
  }
  return engines;
}

/**
 * Waits until `processes` serving processes of a data plane logged their HTTP/2 engine and throws unless every one
 * runs `engine`: what proves that a gateway target measures the engine its name says (the setting could be
 * overridden by a config file, or ignored).
 */
export async function expectEngine(what: string, output: () => string, engine: Http2Engine, processes: number, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const logged = enginesLogged(output());
    const wrong = logged.filter((e) => e !== engine);
    if (wrong.length > 0) throw new Error(`${what}: started with the HTTP/2 engine ${wrong.join(', ')}, not ${engine}:\n${output().slice(-2_000)}`);
    if (logged.length >= processes) return;
    if (Date.now() > deadline) {
      throw new Error(`${what}: ${logged.length} of ${processes} serving processes logged their HTTP/2 engine within ${limitMs / 1000} s:\n${output().slice(-2_000)}`);
    }
    await sleep(50);
  }
}

export interface Target {
  readonly name: TargetName;
  /** The proxy's processes now (master/primary and workers); the upstream's for direct. */
  proxyPids(): number[];
  /** `host:port` and TLS or not for a case: what h2load and grpc-js call. */
  endpoint(c: LoadCase): { address: string; tls: boolean };
  /** h2c `host:port` (the idle h2c connections case). */
  readonly h2c: string;
  /** TLS (ALPN h2) `host:port` (the idle TLS connections case). */
  readonly tlsAddress: string;
}

export function url(target: Target, c: LoadCase): string {
  const { address, tls } = target.endpoint(c);
  return `${tls ? 'https' : 'http'}://${address}${requestPath(c)}`;
}

/**
 * Whether a target serves a case. grpc-web and JSON transcoding are the gateway's plugins, served by the native
 * engine only (the node:http2 engine answers any non-gRPC request 415, and HTTP/1.1 505: data-plane/listeners.ts);
 * nginx and direct have neither.
 */
export function servesCase(name: TargetName, c: LoadCase): boolean {
  return c.protocol === 'grpc' || (isGatewayTarget(name) && engineOf(name) === 'native');
}

export interface TlsFiles {
  cert: string;
  key: string;
}

// ---------------------------------------------------------------------------------------------------------------
// upstream

export interface Upstream {
  readonly plain: string;
  readonly tls: string;
  readonly pid: number;
  /** Calls completed with status OK so far, and calls that ended in an error. */
  stats(): Promise<{ unary: number; stream: number; failed: number }>;
}

export const UPSTREAM_BINARY = join(REPO_ROOT, 'bench/.build/upstream-go');

export async function startUpstream(tls: TlsFiles): Promise<Upstream> {
  const [port, tlsPort, statsPort] = [await freePort(), await freePort(), await freePort()];
  const child = spawnTracked('upstream-go', UPSTREAM_BINARY, [
    '-port', String(port), '-tls-port', String(tlsPort), '-stats-port', String(statsPort), '-cert', tls.cert, '-key', tls.key,
  ]);
  await waitFor('upstream-go', child, () => child.output().includes('ready '));
  const statsUrl = `http://127.0.0.1:${statsPort}/stats`;
  return {
    plain: `127.0.0.1:${port}`,
    tls: `127.0.0.1:${tlsPort}`,
    pid: child.pid,
    async stats() {
      const res = await fetch(statsUrl);
      return (await res.json()) as { unary: number; stream: number; failed: number };
    },
  };
}

export function directTarget(upstream: Upstream): Target {
  return {
    name: 'direct',
    h2c: upstream.plain,
    tlsAddress: upstream.tls,
    proxyPids: () => processTree([upstream.pid]),
    // The upstream's TLS port is both "TLS downstream" and "grpcs upstream" when nothing is in between.
    endpoint: (c) =>
      c.downstreamTls || c.service === 'bench.EchoTls' ? { address: upstream.tls, tls: true } : { address: upstream.plain, tls: false },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// nginx

export function nginxBinary(): string {
  const found = spawnSync('bash', ['-c', 'command -v nginx'], { encoding: 'utf8' }).stdout.trim();
  return found !== '' ? found : '/usr/sbin/nginx';
}

export function nginxConfig(options: { dir: string; h2cPort: number; tlsPort: number; upstream: Upstream; tls: TlsFiles; reuseport: boolean }): string {
  const reuseport = options.reuseport ? ' reuseport' : '';
  // Workers cannot raise their limit above the hard one without CAP_SYS_RESOURCE.
  const files = Math.min(65_536, openFilesLimit()[1]);
  const temp = (name: string): string => join(options.dir, 'tmp', name);
  return `# generated by bench/vs-nginx/targets.ts
worker_processes auto;
worker_rlimit_nofile ${files};
pid ${join(options.dir, 'nginx.pid')};
error_log ${join(options.dir, 'error.log')} warn;

events {
    worker_connections ${Math.min(32_768, files)};
}

http {
    access_log off;
    client_body_temp_path ${temp('client_body')};
    proxy_temp_path ${temp('proxy')};
    fastcgi_temp_path ${temp('fastcgi')};
    uwsgi_temp_path ${temp('uwsgi')};
    scgi_temp_path ${temp('scgi')};

    # gRPC messages of any size, many streams per client connection, connections kept for the whole run.
    client_max_body_size 0;
    http2_max_concurrent_streams 1000;
    keepalive_requests 10000000;
    keepalive_timeout 600s;

    upstream echo_grpc {
        server ${options.upstream.plain};
        keepalive 100;
        keepalive_requests 10000000;
        keepalive_timeout 600s;
    }

    upstream echo_grpcs {
        server ${options.upstream.tls};
        keepalive 100;
        keepalive_requests 10000000;
        keepalive_timeout 600s;
    }

    server {
        listen 127.0.0.1:${options.h2cPort} http2${reuseport};
        listen 127.0.0.1:${options.tlsPort} ssl http2${reuseport};
        ssl_certificate ${options.tls.cert};
        ssl_certificate_key ${options.tls.key};

        location /bench.EchoTls/ {
            grpc_pass grpcs://echo_grpcs;
        }

        location / {
            grpc_pass grpc://echo_grpc;
        }
    }
}
`;
}

export async function startNginx(dir: string, upstream: Upstream, tls: TlsFiles, reuseport = false): Promise<Target & { master: Spawned }> {
  const [h2cPort, tlsPort] = [await freePort(), await freePort()];
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  // Workers run as nobody when the master is root: they must be able to write the temp folders.
  for (const name of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) {
    mkdirSync(join(dir, 'tmp', name), { recursive: true });
    chmodSync(join(dir, 'tmp', name), 0o777);
  }
  chmodSync(join(dir, 'tmp'), 0o777);
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, nginxConfig({ dir, h2cPort, tlsPort, upstream, tls, reuseport }));
  const master = spawnTracked('nginx', nginxBinary(), ['-e', join(dir, 'error.log'), '-p', dir, '-c', conf, '-g', 'daemon off;']);
  const h2c = `127.0.0.1:${h2cPort}`;
  const tlsAddress = `127.0.0.1:${tlsPort}`;
  await waitFor('nginx', master, async () => (await tcpOpen(h2c)) && (await tcpOpen(tlsAddress)) && processTree([master.pid]).length > 1);
  return {
    name: 'nginx',
    master,
    h2c,
    tlsAddress,
    proxyPids: () => processTree([master.pid]),
    endpoint: (c) => (c.downstreamTls ? { address: tlsAddress, tls: true } : { address: h2c, tls: false }),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// gateway

/** A change to conf/config.yaml: `value` at `path`; `undefined` removes the key (the gateway's default applies). */
export interface ConfigSetting {
  path: readonly string[];
  value: string | number | boolean | object | undefined;
}

/**
 * What the generated gateway config changes in conf/config.yaml, each to what the nginx config above does, so that
 * both proxies hold what the benchmark's clients open: 10,000 idle connections from one address (nginx has no
 * per-address cap), connections that sent only a preface kept as long as nginx keeps them (its keepalive_timeout
 * 600s; the gateway's client_header_timeout would close them after 10 s), and h2load's connections never recycled
 * (nginx keepalive_requests 10000000; h2load does not reconnect after GOAWAY). Issue #14's observability is off
 * (nginx runs with `access_log off` too); gateway-observed and gateway-traced turn it on over these
 * (observabilitySettings).
 */
export const GATEWAY_BENCH_SETTINGS: readonly ConfigSetting[] = [
  { path: ['nginx_config', 'max_connections_per_ip'], value: 0 },
  { path: ['nginx_config', 'http', 'client_header_timeout'], value: '600s' },
  { path: ['nginx_config', 'http', 'keepalive_timeout'], value: '600s' },
  { path: ['nginx_config', 'http2', 'keepalive_requests'], value: 0 },
  { path: ['plugin_attr', 'prometheus', 'enable'], value: false },
  { path: ['nginx_config', 'http', 'enable_access_log'], value: false },
  { path: ['plugin_attr', 'request-id', 'enable'], value: false },
  { path: ['plugin_attr', 'opentelemetry', 'collector'], value: undefined },
  { path: ['plugin_attr', 'opentelemetry', 'sampler'], value: { name: 'always_off' } },
];

/** A setting as the report lists it. */
export function settingText({ path, value }: ConfigSetting): string {
  const shown = value === undefined ? '(unset)' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return `${path.join('.')}: ${shown}`;
}

/** Where a target's observability goes: its access-log file, and the OTLP sink's `host:port` (tracing only). */
export interface ObservabilityOutputs {
  accessLogFile?: string | undefined;
  collector?: string | undefined;
}

function observabilitySettings(o: Observability, out: ObservabilityOutputs): ConfigSetting[] {
  const settings: ConfigSetting[] = [];
  if (o.metrics) settings.push({ path: ['plugin_attr', 'prometheus', 'enable'], value: true });
  if (o.accessLog) {
    settings.push(
      { path: ['nginx_config', 'http', 'enable_access_log'], value: true },
      { path: ['nginx_config', 'http', 'access_log'], value: out.accessLogFile },
      // No format: the default JSON line, what the issue measures.
      { path: ['nginx_config', 'http', 'access_log_format'], value: undefined },
    );
  }
  if (o.requestId) settings.push({ path: ['plugin_attr', 'request-id', 'enable'], value: true });
  if (o.tracing) {
    settings.push(
      { path: ['plugin_attr', 'opentelemetry', 'collector'], value: { address: out.collector } },
      { path: ['plugin_attr', 'opentelemetry', 'sampler'], value: traceSampler() },
    );
  }
  return settings;
}

function traceSampler(): object {
  return { name: 'parent_base', options: { root: { name: 'trace_id_ratio', options: { fraction: TRACE_SAMPLE_RATIO } } } };
}

/**
 * The observability environment of a target's data plane: the same as its config file says, every variable set, so
 * that one exported in the shell running the benchmark (GATEWAY_METRICS=on…) cannot turn a baseline's observability
 * back on (the environment wins over the file: shared/config-observability.ts). An empty value counts as unset there.
 */
export function observabilityEnv(o: Observability, out: ObservabilityOutputs): Record<string, string> {
  return {
    GATEWAY_METRICS: o.metrics ? 'on' : 'off',
    GATEWAY_ACCESS_LOG: o.accessLog ? (out.accessLogFile as string) : 'off',
    GATEWAY_ACCESS_LOG_FORMAT: o.accessLog ? 'json' : '',
    GATEWAY_REQUEST_ID: o.requestId ? 'on' : 'off',
    GATEWAY_OTEL_COLLECTOR: o.tracing ? (out.collector as string) : 'off',
    GATEWAY_OTEL_SAMPLE_RATIO: o.tracing ? String(TRACE_SAMPLE_RATIO) : '',
  };
}

/**
 * Writes conf/config.yaml with `settings` applied (comments kept) and `apisix.http2_engine: <engine>` as `file`, and
 * checks that the file, read as the data plane reads it (with GATEWAY_HTTP2_ENGINE=<engine> and `env` over this
 * process's environment), resolves to that engine. The engine goes into the file as well as into
 * GATEWAY_HTTP2_ENGINE because the file's setting wins over the environment (shared/config.ts): a conf/config.yaml
 * that names an engine would otherwise run it in every gateway.
 */
export function writeEngineConfig(file: string, engine: Http2Engine, settings: readonly ConfigSetting[] = [], env: Record<string, string> = {}): string {
  const doc = parseDocument(readFileSync(join(REPO_ROOT, 'conf/config.yaml'), 'utf8'));
  for (const { path, value } of settings) {
    if (value !== undefined) doc.setIn(path, value);
    else if (doc.hasIn(path)) doc.deleteIn(path);
  }
  doc.setIn(['apisix', 'http2_engine'], engine);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, doc.toString());
  const effective = loadConfig({ ...process.env, ...env, GATEWAY_HTTP2_ENGINE: engine }, file).http2Engine;
  if (effective !== engine) throw new Error(`${file}: resolves to the HTTP/2 engine ${effective}, not ${engine}`);
  return file;
}

/**
 * A gateway target's config (writeEngineConfig with GATEWAY_BENCH_SETTINGS and the target's observability) in
 * `dir`, and the environment its data plane needs for it. Read back as the data plane reads it, the file and the
 * environment must give exactly the target's observability, or this throws: a baseline that logged or traced
 * would not be one.
 */
export function writeGatewayBenchConfig(
  dir: string,
  name: GatewayTargetName,
  out: ObservabilityOutputs = {},
): { file: string; env: Record<string, string>; observability: ObservabilityConfig } {
  const { engine, observability } = GATEWAY_TARGETS[name];
  if (observability.accessLog && out.accessLogFile === undefined) throw new Error(`${name}: needs an access-log file`);
  if (observability.tracing && out.collector === undefined) throw new Error(`${name}: needs an OTLP collector address`);
  const env = observabilityEnv(observability, out);
  const file = writeEngineConfig(join(dir, `${name}-config.yaml`), engine, [
    ...GATEWAY_BENCH_SETTINGS,
    // Per worker, as nginx's worker_connections: room for every idle connection of the largest case in one worker.
    { path: ['nginx_config', 'event', 'worker_connections'], value: Math.max(10_620, Math.min(65_536, openFilesLimit()[1]) - 1_024) },
    ...observabilitySettings(observability, out),
  ], env);
  const got = loadConfig({ ...process.env, ...env, GATEWAY_HTTP2_ENGINE: engine }, file).observability;
  const resolved: Observability = {
    metrics: got.metrics.enable,
    accessLog: got.accessLog.enable,
    requestId: got.requestId.enable,
    tracing: got.tracing.collector !== undefined,
  };
  const problems = (Object.keys(observability) as (keyof Observability)[])
    .filter((key) => resolved[key] !== observability[key])
    .map((key) => `${key} ${resolved[key] ? 'on' : 'off'}, not ${observability[key] ? 'on' : 'off'}`);
  if (observability.accessLog && (got.accessLog.path !== out.accessLogFile || got.accessLog.format !== undefined)) {
    problems.push(`access log to ${got.accessLog.path} in ${got.accessLog.format ?? 'JSON'}, not to ${String(out.accessLogFile)} in JSON`);
  }
  if (observability.tracing && (got.tracing.collector?.address !== out.collector || JSON.stringify(got.tracing.sampler) !== JSON.stringify(traceSampler()))) {
    problems.push(`spans to ${String(got.tracing.collector?.address)} with ${JSON.stringify(got.tracing.sampler)}, not to ${String(out.collector)} with ${JSON.stringify(traceSampler())}`);
  }
  if (problems.length > 0) throw new Error(`${file}: resolves to ${problems.join('; ')}`);
  return { file, env, observability: got };
}

export interface GatewayOptions {
  /** The target's name; `gateway-<engine>` by default. */
  name?: GatewayTargetName;
  /** GATEWAY_WORKER_PROCESSES; 'auto' (one per core) by default, as nginx's worker_processes auto. */
  workers: string;
  /** The HTTP/2 engine of the data plane (GATEWAY_HTTP2_ENGINE). */
  engine: Http2Engine;
  /** GATEWAY_CONFIG of the data plane (writeGatewayBenchConfig with the same engine). */
  configFile: string;
  /** More environment for the data plane (over LOG_LEVEL=info and the listeners set here): writeGatewayBenchConfig's. */
  env?: Record<string, string>;
  /** gateway-plugins / gateway-redis: a consumer, and key-auth + limit-count on every route (routePlugins). */
  plugins?: PluginsPolicy | undefined;
}

export interface GatewayTarget extends Target {
  readonly name: GatewayTargetName;
  output(): string;
  /** `host:port` of the data plane's status server (/readyz, and the metrics when they are on). */
  readonly statusAddress: string;
}

export async function startGateway(upstream: Upstream, options: GatewayOptions): Promise<GatewayTarget> {
  const name: GatewayTargetName = options.name ?? `gateway-${options.engine}`;
  const etcd = await startEtcd();
  register(`${name} etcd`, 0, () => etcd.close());
  const controlPlane = await spawnControlPlane(etcd.endpoint);
  register(`${name} control-plane`, controlPlane.pid, () => controlPlane.stop());
  const [tlsPort, statusPort] = [await freePort(), await freePort()];
  const dataPlane = await spawnDataPlane(etcd.endpoint, {
    env: {
      GATEWAY_CONFIG: options.configFile,
      GATEWAY_HTTP2_ENGINE: options.engine,
      GATEWAY_WORKER_PROCESSES: options.workers,
      GATEWAY_TLS_LISTEN: `127.0.0.1:${tlsPort}`,
      GATEWAY_STATUS_LISTEN: `127.0.0.1:${statusPort}`,
      GATEWAY_SHUTDOWN_TIMEOUT: '2',
      // Connections kept for the whole run, as nginx's keepalive_requests above: h2load does not reconnect after GOAWAY.
      GATEWAY_KEEPALIVE_REQUESTS: '0',
      // info: each serving process logs its HTTP/2 engine once (checked below); nothing is logged per call at info.
      LOG_LEVEL: 'info',
      ...options.env,
    },
  });
  register(`${name} data-plane`, dataPlane.pid, () => dataPlane.stop());

  // Routes as a user creates them: PUTs to the admin API.
  const routes: Record<string, { plugins?: Record<string, unknown> } & Record<string, unknown>> = {
    'bench-echo': {
      uri: '/bench.Echo/*',
      methods: ['POST'],
      upstream: { scheme: 'grpc', type: 'roundrobin', nodes: { [upstream.plain]: 1 } },
    },
    'bench-echo-tls': {
      uri: '/bench.EchoTls/*',
      methods: ['POST'],
      upstream: { scheme: 'grpcs', type: 'roundrobin', nodes: { [upstream.tls]: 1 } },
    },
    // Issue #17. grpc-web: a prefix of its own beside the plain route's /bench.Echo/*; OPTIONS for a browser's CORS preflight.
    'bench-web': {
      uri: `${WEB_PREFIX}/*`,
      methods: ['POST', 'OPTIONS'],
      upstream: { scheme: 'grpc', type: 'roundrobin', nodes: { [upstream.plain]: 1 } },
      plugins: { 'grpc-web': {} },
    },
    'bench-json': {
      uri: JSON_PATH,
      methods: ['POST'],
      upstream: { scheme: 'grpc', type: 'roundrobin', nodes: { [upstream.plain]: 1 } },
      plugins: { 'grpc-transcode': { proto_id: BENCH_PROTO_ID, service: 'bench.Echo', method: 'Unary' } },
    },
  };
  // The transcoding route's proto first: a route that names a missing proto is refused.
  await adminPut(controlPlane, `/protos/${BENCH_PROTO_ID}`, { content: BENCH_PROTO });
  if (options.plugins !== undefined) {
    let redisPort = 0;
    if (options.plugins === 'redis') {
      const redis = await startRedis();
      register(`${name} redis`, 0, () => redis.close());
      redisPort = redis.port;
    }
    await adminPut(controlPlane, '/consumers', PLUGIN_CONSUMER);
    // Over the route's own plugins (grpc-web, grpc-transcode): every call pays key-auth and limit-count too.
    for (const body of Object.values(routes)) body.plugins = { ...body.plugins, ...routePlugins(options.plugins, redisPort) };
  }
  for (const [id, body] of Object.entries(routes)) await adminPut(controlPlane, `/routes/${id}`, body);
  const wanted = Object.keys(routes).length;
  const readyz = `http://127.0.0.1:${statusPort}/readyz`;
  await waitFor(`${name} /readyz with every route in every worker`, dataPlane, async () => {
    try {
      const res = await fetch(readyz);
      const body = (await res.json()) as { routes?: number; workers?: { routes?: number; status?: string }[] };
      const workers = body.workers ?? [];
      return res.status === 200 && body.routes === wanted && workers.every((w) => w.routes === wanted && w.status === 'ok');
    } catch {
      return false;
    }
  });
  // Every serving process (each worker, or the single process) must have started the engine of the target's name.
  const serving = workerCount(options.workers);
  await expectEngine(name, () => dataPlane.output(), options.engine, serving);
  const h2c = dataPlane.h2cAddress;
  const tlsAddress = `127.0.0.1:${tlsPort}`;
  return {
    name,
    h2c,
    tlsAddress,
    proxyPids: () => processTree([dataPlane.pid]),
    endpoint: (c) => (c.downstreamTls ? { address: tlsAddress, tls: true } : { address: h2c, tls: false }),
    output: () => dataPlane.output(),
    statusAddress: `127.0.0.1:${statusPort}`,
  };
}

/** A PUT to the admin API (`path` under /apisix/admin); throws unless it was stored (200 or 201). */
async function adminPut(controlPlane: { adminUrl: string; adminKey: string }, path: string, body: unknown): Promise<void> {
  const res = await fetch(`${controlPlane.adminUrl}${path}`, {
    method: 'PUT',
    headers: { 'X-API-KEY': controlPlane.adminKey, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 200 && res.status !== 201) throw new Error(`admin PUT ${path}: ${res.status} ${text}`);
}

/** Serving processes of a data plane for GATEWAY_WORKER_PROCESSES (`auto` = one per core; 1 = the process itself). */
export function workerCount(workers: string): number {
  return workers === 'auto' ? Math.max(1, availableParallelism()) : Math.max(1, Number(workers));
}

// ---------------------------------------------------------------------------------------------------------------

const START_LIMIT_MS = 60_000;

async function waitFor(what: string, proc: { exited: boolean; output(): string }, ready: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + START_LIMIT_MS;
  for (;;) {
    if (proc.exited) throw new Error(`${what} exited before it was ready:\n${proc.output()}`);
    if (await ready()) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${START_LIMIT_MS / 1000} s:\n${proc.output()}`);
    await sleep(50);
  }
}

function tcpOpen(address: string): Promise<boolean> {
  const separator = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const socket = connect({ host: address.slice(0, separator), port: Number(address.slice(separator + 1)) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

