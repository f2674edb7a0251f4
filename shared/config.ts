/**
 * conf/config.yaml + environment → one typed, validated config. This is the only module that reads process.env
 * (through the `env` argument, so tests pass their own). Defaults are the seed document's: admin on
 * 127.0.0.1:9080, h2c on 9081, TLS on 9443, etcd at http://127.0.0.1:2379 under /apisix; the admin API answers
 * loopback clients only, and private keys are encrypted with APISIX's default keyring. The data plane's status port
 * is on only when configured (conf/config.yaml: 127.0.0.1:7085).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import {
  asObject,
  commaList,
  optionalBoolean,
  optionalNumber,
  optionalString,
  parseCidr,
  parseHostPortEnv,
  port,
  stringList,
  type ListenAddress,
} from './config-values.ts';
import { parseConnectionLimits, type ConnectionLimits } from './config-connections.ts';
import { parseTlsPolicy, type TlsPolicyConfig } from './config-tls.ts';
import { parseHttp2Limits, type Http2Limits } from './config-http2.ts';
import { parseObservability, type ObservabilityConfig } from './config-observability.ts';
import { keyringEntryProblem } from './crypto.ts';
import { ConfigError, describe } from './errors.ts';
import { normalizePrefix } from './etcd-keys.ts';

export { isLoopback, type ListenAddress } from './config-values.ts';

export const DOCUMENTED_ADMIN_KEY = 'edd1c9f034335f136f87ad84b625c8f1';
/** APISIX's default `apisix.data_encryption.keyring` (apisix/cli/config.lua): public, so only obfuscation. */
export const DOCUMENTED_KEYRING: readonly string[] = ['qeddd145sfvddff3', 'edd1c9f0985e76a2'];
/** Loopback only. APISIX's default is `127.0.0.0/24`; all of 127/8 and ::1 are this host as well. */
export const DEFAULT_ALLOW_ADMIN: readonly string[] = ['127.0.0.0/8', '::1/128'];
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_CONFIG_PATH = resolve(REPO_ROOT, 'conf/config.yaml');
/**
 * APISIX's status API address (`apisix.status`): loopback, since it tells anyone who asks the config revision, and
 * port 7085 as in APISIX's docs. Used for a `status` mapping that leaves `ip` or `port` out.
 */
export const DEFAULT_STATUS_LISTEN: Readonly<ListenAddress> = { ip: '127.0.0.1', port: 7085 };

export interface AdminKey {
  name: string;
  key: string;
  role: 'admin' | 'viewer';
}

/** TLS towards etcd (`https://` hosts): file paths, read when the client is made (shared/etcd-tls.ts). */
export interface EtcdTlsConfig {
  /** CA bundle that signed etcd's certificate; the system roots when unset. */
  caFile: string | undefined;
  /** Client certificate and key, for etcd's `--client-cert-auth`. */
  certFile: string | undefined;
  keyFile: string | undefined;
  /** Name to verify etcd's certificate against instead of the host's. */
  sni: string | undefined;
}

export interface EtcdConfig {
  hosts: string[];
  prefix: string;
  timeoutMs: number;
  username: string | undefined;
  password: string | undefined;
  tls: EtcdTlsConfig | undefined;
}

export interface GatewayConfig {
  /** h2c gRPC listeners of the data plane. */
  nodeListen: ListenAddress[];
  ssl: {
    enable: boolean;
    listen: ListenAddress[];
    fallbackSni: string | undefined;
    defaultCertFile: string | undefined;
    defaultKeyFile: string | undefined;
  };
  /** TLS versions and ciphers of the TLS listeners, CA for `grpcs` upstreams (`apisix.ssl`, shared/config-tls.ts). */
  tls: TlsPolicyConfig;
  /** `allowAdmin`: CIDR blocks whose clients may use the admin API; others get 403. */
  admin: ListenAddress & { keys: AdminKey[]; allowAdmin: string[] };
  etcd: EtcdConfig;
  /** Keyring for private keys at rest (shared/crypto.ts); empty = stored in clear. */
  dataEncryption: { keyring: string[] };
  /** The data plane's plain HTTP status port (/healthz, /readyz); undefined = no status server. */
  status: ListenAddress | undefined;
  dataPlane: DataPlaneProcessConfig;
  /** Client connection timeouts and caps of the data plane (shared/config-connections.ts). */
  connections: ConnectionLimits;
  /** HTTP/2 limits of the data plane's listeners and its memory watermark (`nginx_config.http2`, `.overload`). */
  http2: Http2Limits;
  /**
   * Which HTTP/2 implementation serves both legs of the data plane (`apisix.http2_engine`): `native`, the gateway's
   * own frame-level engine (data-plane/http2/), or `node`, node:http2, kept one release as a fallback and benchmark
   * reference. Unset: $GATEWAY_HTTP2_ENGINE, else the default.
   */
  http2Engine: Http2Engine;
  /** Metrics, access log, request ids and tracing of the data plane (shared/config-observability.ts). */
  observability: ObservabilityConfig;
  log: { level: string };
}

export type Http2Engine = 'native' | 'node';
const HTTP2_ENGINES: readonly Http2Engine[] = ['native', 'node'];
export const DEFAULT_HTTP2_ENGINE: Http2Engine = 'native';

/** Where a data plane's configuration comes from (APISIX `deployment.role_data_plane.config_provider`). */
export type ConfigProvider = 'etcd' | 'yaml';

export interface DataPlaneProcessConfig {
  /** Worker processes serving the same ports (`nginx_config.worker_processes`; `auto` = one per core). 1 = no workers. */
  workerProcesses: number;
  /** How long calls in flight may go on after SIGTERM before their sessions are closed (`nginx_config.worker_shutdown_timeout`). */
  shutdownTimeoutMs: number;
  configProvider: ConfigProvider;
  /** The standalone file read when `configProvider` is `yaml` (APISIX's conf/apisix.yaml). */
  standaloneFile: string;
  /** etcd provider: where the last config read from etcd is kept, to start from when etcd is down; undefined = off. */
  snapshotCache: string | undefined;
  /** yaml provider: how often the file is checked for changes, in ms; 1000 (APISIX's) when unset. For tests only. */
  standalonePollMs?: number;
  /** yaml provider: the environment `${{VAR}}` in the standalone file is replaced from (the one this config was read with). */
  standaloneEnv: Env;
  /**
   * Set in a worker process by its primary (data-plane/workers.ts, through the environment of the fork): the
   * worker's id and the primary's default certificate (PEM pair as JSON), so that every worker presents the same one.
   */
  worker: { id: number; defaultCertJson: string | undefined } | undefined;
}

/** The environment variables a data-plane primary gives each worker it forks (read here, like every variable). */
export const WORKER_ID_ENV = 'GATEWAY_WORKER_ID';
export const WORKER_DEFAULT_CERT_ENV = 'GATEWAY_WORKER_DEFAULT_CERT';

export type Env = Record<string, string | undefined>;

/** Reads the file at `path` (default conf/config.yaml, or $GATEWAY_CONFIG) and applies the environment. */
export function loadConfig(env: Env = process.env, path?: string): GatewayConfig {
  const file = path ?? env['GATEWAY_CONFIG'] ?? DEFAULT_CONFIG_PATH;
  const absolute = isAbsolute(file) ? file : resolve(process.cwd(), file);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${absolute}: ${describe(err)}`);
  }
  return parseConfig(text, env);
}

export function parseConfig(text: string, env: Env = {}): GatewayConfig {
  const substituted = substituteEnv(text, env);
  let raw: unknown;
  try {
    raw = parseYaml(substituted) ?? {};
  } catch (err) {
    throw new ConfigError(`config is not valid YAML: ${describe(err)}`);
  }
  const root = asObject(raw, '(root)');
  const apisix = asObject(root['apisix'] ?? {}, 'apisix');
  const ssl = asObject(apisix['ssl'] ?? {}, 'apisix.ssl');
  const encryption = asObject(apisix['data_encryption'] ?? {}, 'apisix.data_encryption');
  const deployment = asObject(root['deployment'] ?? {}, 'deployment');
  const admin = asObject(deployment['admin'] ?? {}, 'deployment.admin');
  const etcd = asObject(deployment['etcd'] ?? {}, 'deployment.etcd');
  const log = asObject(root['log'] ?? {}, 'log');
  const nginx = asObject(root['nginx_config'] ?? {}, 'nginx_config');
  const roleDataPlane = asObject(deployment['role_data_plane'] ?? deployment['role_traditional'] ?? {}, 'deployment.role_data_plane');
  const globalHttp2 = optionalBoolean(apisix['enable_http2'], 'apisix.enable_http2') ?? true;

  const config: GatewayConfig = {
    nodeListen: parseListen(apisix['node_listen'] ?? [{ port: 9081, enable_http2: true }], 'apisix.node_listen', globalHttp2),
    ssl: {
      enable: optionalBoolean(ssl['enable'], 'apisix.ssl.enable') ?? true,
      listen: parseListen(ssl['listen'] ?? [{ port: 9443 }], 'apisix.ssl.listen', true),
      fallbackSni: optionalString(ssl['fallback_sni'], 'apisix.ssl.fallback_sni'),
      defaultCertFile: optionalString(ssl['default_cert'], 'apisix.ssl.default_cert'),
      defaultKeyFile: optionalString(ssl['default_key'], 'apisix.ssl.default_key'),
    },
    tls: parseTlsPolicy(ssl),
    admin: {
      ...parseAddress(admin['admin_listen'] ?? {}, 'deployment.admin.admin_listen', { ip: '127.0.0.1', port: 9080 }),
      keys: parseAdminKeys(admin['admin_key'] ?? [{ name: 'admin', key: DOCUMENTED_ADMIN_KEY, role: 'admin' }]),
      allowAdmin: parseAllowAdmin(admin['allow_admin'] ?? DEFAULT_ALLOW_ADMIN, 'deployment.admin.allow_admin'),
    },
    etcd: {
      hosts: stringList(etcd['host'] ?? ['http://127.0.0.1:2379'], 'deployment.etcd.host'),
      prefix: normalizePrefix(optionalString(etcd['prefix'], 'deployment.etcd.prefix') ?? '/apisix'),
      timeoutMs: (optionalNumber(etcd['timeout'], 'deployment.etcd.timeout') ?? 30) * 1000,
      username: optionalString(etcd['user'], 'deployment.etcd.user'),
      password: optionalString(etcd['password'], 'deployment.etcd.password'),
      tls: parseEtcdTls(etcd['tls'], optionalString(ssl['ssl_trusted_certificate'], 'apisix.ssl.ssl_trusted_certificate')),
    },
    dataEncryption: {
      // `keyring: ~` or `[]` turns encryption off; absent means APISIX's default keyring.
      keyring: parseKeyring(Object.hasOwn(encryption, 'keyring') ? (encryption['keyring'] ?? []) : DOCUMENTED_KEYRING, 'apisix.data_encryption.keyring'),
    },
    status: parseStatus(apisix['status']),
    dataPlane: {
      workerProcesses: parseWorkerProcesses(nginx['worker_processes'] ?? 1, 'nginx_config.worker_processes'),
      shutdownTimeoutMs: parseSeconds(nginx['worker_shutdown_timeout'] ?? 10, 'nginx_config.worker_shutdown_timeout'),
      configProvider: parseProvider(roleDataPlane['config_provider'] ?? 'etcd', 'deployment.role_data_plane.config_provider'),
      standaloneFile: resolvePath(optionalString(roleDataPlane['config_file'], 'deployment.role_data_plane.config_file') ?? DEFAULT_STANDALONE_FILE),
      snapshotCache: optionalPath(etcd['snapshot_cache'], 'deployment.etcd.snapshot_cache'),
      standaloneEnv: env,
      worker: env[WORKER_ID_ENV] === undefined ? undefined : { id: Number(env[WORKER_ID_ENV]), defaultCertJson: env[WORKER_DEFAULT_CERT_ENV] },
    },
    connections: parseConnectionLimits(nginx),
    http2: parseHttp2Limits(nginx),
    http2Engine: parseEngine(apisix['http2_engine'] ?? env['GATEWAY_HTTP2_ENGINE'] ?? process.env['GATEWAY_HTTP2_ENGINE'] ?? DEFAULT_HTTP2_ENGINE),
    observability: parseObservability(root, nginx, env),
    log: { level: optionalString(log['level'], 'log.level') ?? 'info' },
  };
  applyEnvOverrides(config, env);
  checkStatusPort(config);
  return config;
}

/** Single-value overrides, for containers and tests. */
function applyEnvOverrides(config: GatewayConfig, env: Env): void {
  const etcdHosts = env['GATEWAY_ETCD_HOSTS'];
  if (etcdHosts) config.etcd.hosts = commaList(etcdHosts);
  const prefix = env['GATEWAY_ETCD_PREFIX'];
  if (prefix) config.etcd.prefix = normalizePrefix(prefix);
  const user = env['GATEWAY_ETCD_USER'];
  if (user) config.etcd.username = user;
  const password = env['GATEWAY_ETCD_PASSWORD'];
  if (password) config.etcd.password = password;
  for (const [name, field] of [['GATEWAY_ETCD_TLS_CA', 'caFile'], ['GATEWAY_ETCD_TLS_CERT', 'certFile'], ['GATEWAY_ETCD_TLS_KEY', 'keyFile']] as const) {
    const value = env[name];
    if (value) config.etcd.tls = { ...(config.etcd.tls ?? emptyTls()), [field]: value };
  }
  const adminListen = env['GATEWAY_ADMIN_LISTEN'];
  if (adminListen) Object.assign(config.admin, parseHostPortEnv(adminListen, 'GATEWAY_ADMIN_LISTEN'));
  const adminKey = env['GATEWAY_ADMIN_KEY'];
  if (adminKey) config.admin.keys = [{ name: 'admin', key: adminKey, role: 'admin' }];
  const viewerKey = env['GATEWAY_ADMIN_VIEWER_KEY'];
  if (viewerKey) config.admin.keys = [...config.admin.keys.filter((k) => k.role !== 'viewer'), { name: 'viewer', key: viewerKey, role: 'viewer' }];
  const allow = env['GATEWAY_ADMIN_ALLOW'];
  if (allow) config.admin.allowAdmin = parseAllowAdmin(commaList(allow), 'GATEWAY_ADMIN_ALLOW');
  const keyring = env['GATEWAY_DATA_ENCRYPTION_KEYRING'];
  if (keyring !== undefined && keyring !== '') config.dataEncryption.keyring = parseKeyring(commaList(keyring), 'GATEWAY_DATA_ENCRYPTION_KEYRING');
  const h2c = env['GATEWAY_H2C_LISTEN'];
  if (h2c) config.nodeListen = h2c.split(',').map((a) => parseHostPortEnv(a, 'GATEWAY_H2C_LISTEN'));
  const tls = env['GATEWAY_TLS_LISTEN'];
  if (tls) config.ssl.listen = tls.split(',').map((a) => parseHostPortEnv(a, 'GATEWAY_TLS_LISTEN'));
  const status = env['GATEWAY_STATUS_LISTEN'];
  if (status) config.status = parseStatusEnv(status);
  const workers = env['GATEWAY_WORKER_PROCESSES'];
  if (workers) config.dataPlane.workerProcesses = parseWorkerProcesses(/^\d+$/.test(workers) ? Number(workers) : workers, 'GATEWAY_WORKER_PROCESSES');
  const shutdown = env['GATEWAY_SHUTDOWN_TIMEOUT'];
  if (shutdown) config.dataPlane.shutdownTimeoutMs = parseSeconds(Number.isNaN(Number(shutdown)) ? shutdown : Number(shutdown), 'GATEWAY_SHUTDOWN_TIMEOUT');
  const provider = env['GATEWAY_CONFIG_PROVIDER'];
  if (provider) config.dataPlane.configProvider = parseProvider(provider, 'GATEWAY_CONFIG_PROVIDER');
  const standalone = env['GATEWAY_STANDALONE_FILE'];
  if (standalone) config.dataPlane.standaloneFile = resolvePath(standalone);
  const cache = env['GATEWAY_SNAPSHOT_CACHE'];
  if (cache) config.dataPlane.snapshotCache = cache === 'off' ? undefined : resolvePath(cache);
  const level = env['LOG_LEVEL'];
  if (level) config.log.level = level;
}

function parseEngine(value: unknown): Http2Engine {
  if (typeof value === 'string' && (HTTP2_ENGINES as readonly string[]).includes(value)) return value as Http2Engine;
  throw new ConfigError(`apisix.http2_engine: expected one of ${HTTP2_ENGINES.join(', ')}, got ${JSON.stringify(value)}`);
}

/** APISIX's conf/apisix.yaml, next to conf/config.yaml. */
export const DEFAULT_STANDALONE_FILE = resolve(REPO_ROOT, 'conf/apisix.yaml');

/** `auto` (one per core, as nginx) or a count from 1; 1 runs the data plane in the main process. */
function parseWorkerProcesses(value: unknown, what: string): number {
  if (value === 'auto') return Math.max(1, availableParallelism());
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 256) {
    throw new ConfigError(`${what}: expected auto or a whole number from 1 to 256`);
  }
  return value;
}

/** A number of seconds, or nginx's `10s` / `1m` form. */
export function parseSeconds(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return Math.round(value * 1000);
  if (typeof value === 'string') {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
    if (m !== null && m[1] !== undefined) {
      const n = Number(m[1]);
      return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000);
    }
  }
  throw new ConfigError(`${what}: expected seconds (a number, or 10s / 500ms / 2m)`);
}

function parseProvider(value: unknown, what: string): ConfigProvider {
  if (value === 'etcd' || value === 'yaml') return value;
  throw new ConfigError(`${what}: expected etcd or yaml (json and xds are not supported)`);
}

function optionalPath(value: unknown, what: string): string | undefined {
  const text = optionalString(value, what);
  return text === undefined || text === '' ? undefined : resolvePath(text);
}

/** Relative paths are relative to the working directory, as an operator typing them expects. */
function resolvePath(path: string): string {
  return isAbsolute(path) ? path : resolve(process.cwd(), path);
}

/**
 * `apisix.status`, as APISIX 3 has it: absent (or `~`, or `false`) means no status server, as in APISIX, where the
 * status API is off unless configured; a mapping (or `true`) enables it, `ip` defaulting to 127.0.0.1 and `port` to 7085.
 * conf/config.yaml ships it enabled on 127.0.0.1:7085.
 */
function parseStatus(value: unknown): ListenAddress | undefined {
  if (value === undefined || value === null || value === false) return undefined;
  if (value === true) return { ...DEFAULT_STATUS_LISTEN };
  return parseAddress(value, 'apisix.status', DEFAULT_STATUS_LISTEN);
}

/**
 * GATEWAY_STATUS_LISTEN: `ip:port` (port 0 picks a free port), a bare port (on 127.0.0.1, like the file's default:
 * the status port is for probes on this host unless an address is named), or `off`. Several data planes on one
 * machine each need their own port, or `off`.
 */
function parseStatusEnv(text: string): ListenAddress | undefined {
  const trimmed = text.trim();
  if (trimmed === 'off') return undefined;
  if (/^\d+$/.test(trimmed)) return { ip: DEFAULT_STATUS_LISTEN.ip, port: port(Number(trimmed), 'GATEWAY_STATUS_LISTEN') };
  return parseHostPortEnv(trimmed, 'GATEWAY_STATUS_LISTEN');
}

/** The status server is plain HTTP/1.1 and never shares a port with a gRPC listener: refuse the clash up front. */
function checkStatusPort(config: GatewayConfig): void {
  const status = config.status;
  if (status === undefined || status.port === 0) return;
  const grpc = [...config.nodeListen, ...(config.ssl.enable ? config.ssl.listen : [])];
  if (grpc.some((address) => address.port === status.port)) {
    throw new ConfigError(`apisix.status.port: ${status.port} is also a gRPC listener's port; the status server needs its own`);
  }
}

function parseAllowAdmin(value: unknown, what: string): string[] {
  const list = stringList(value, what);
  // An empty list would lock every client out, including the operator on this host: almost surely a mistake.
  if (list.length === 0) throw new ConfigError(`${what}: must list at least one address block (0.0.0.0/0 and ::/0 allow everyone)`);
  return list.map((entry, i) => parseCidr(entry, `${what}[${i}]`));
}

function parseKeyring(value: unknown, what: string): string[] {
  const list = stringList(value, what);
  list.forEach((entry, i) => {
    const problem = keyringEntryProblem(entry);
    if (problem !== undefined) throw new ConfigError(`${what}[${i}]: ${problem}`);
  });
  return list;
}

function emptyTls(): EtcdTlsConfig {
  return { caFile: undefined, certFile: undefined, keyFile: undefined, sni: undefined };
}

/** APISIX's `deployment.etcd.tls` ({cert, key, verify, sni}); its CA is `apisix.ssl.ssl_trusted_certificate`. */
function parseEtcdTls(value: unknown, trustedCertificate: string | undefined): EtcdTlsConfig | undefined {
  if ((value === undefined || value === null) && trustedCertificate === undefined) return undefined;
  const tls = asObject(value ?? {}, 'deployment.etcd.tls');
  // etcd3's gRPC channel always verifies the server's certificate; pretending otherwise would be a lie.
  if (optionalBoolean(tls['verify'], 'deployment.etcd.tls.verify') === false) {
    throw new ConfigError('deployment.etcd.tls.verify: false is not supported; name the CA of etcd\'s certificate in apisix.ssl.ssl_trusted_certificate');
  }
  const result: EtcdTlsConfig = {
    caFile: trustedCertificate,
    certFile: optionalString(tls['cert'], 'deployment.etcd.tls.cert'),
    keyFile: optionalString(tls['key'], 'deployment.etcd.tls.key'),
    sni: optionalString(tls['sni'], 'deployment.etcd.tls.sni'),
  };
  if ((result.certFile === undefined) !== (result.keyFile === undefined)) {
    throw new ConfigError('deployment.etcd.tls: cert and key must be set together');
  }
  return result;
}

/** `${{VAR}}` and `${{VAR:=default}}`, as APISIX's CLI resolves them; comment lines are left alone. */
export function substituteEnv(text: string, env: Env): string {
  return text
    .split('\n')
    .map((line) => (line.trimStart().startsWith('#') ? line : substituteLine(line, env)))
    .join('\n');
}

function substituteLine(line: string, env: Env): string {
  return line.replace(/\$\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::=\s*([^}]*?))?\s*\}\}/g, (_m, name: string, def?: string) => {
    const value = env[name];
    if (value !== undefined && value !== '') return value;
    if (def !== undefined) return def;
    throw new ConfigError(`config references \${{${name}}} but it is not set in the environment`);
  });
}

function parseListen(value: unknown, what: string, globalHttp2: boolean): ListenAddress[] {
  const items = typeof value === 'number' ? [value] : value;
  if (!Array.isArray(items)) throw new ConfigError(`${what}: expected a port or a list`);
  const out: ListenAddress[] = [];
  items.forEach((item: unknown, i) => {
    if (typeof item === 'number') {
      if (globalHttp2) out.push({ ip: '0.0.0.0', port: port(item, `${what}[${i}]`) });
      return;
    }
    const entry = asObject(item, `${what}[${i}]`);
    const http2 = optionalBoolean(entry['enable_http2'], `${what}[${i}].enable_http2`) ?? globalHttp2;
    if (!http2) return; // an HTTP/1.1-only port: nothing for a gRPC gateway to serve there
    out.push(parseAddress(entry, `${what}[${i}]`, { ip: '0.0.0.0', port: 0 }));
  });
  return out;
}

function parseAddress(value: unknown, what: string, defaults: ListenAddress): ListenAddress {
  const entry = asObject(value, what);
  const ip = optionalString(entry['ip'], `${what}.ip`) ?? defaults.ip;
  const p = optionalNumber(entry['port'], `${what}.port`) ?? defaults.port;
  return { ip, port: port(p, `${what}.port`) };
}

function parseAdminKeys(value: unknown): AdminKey[] {
  if (!Array.isArray(value)) throw new ConfigError('deployment.admin.admin_key: expected a list');
  return value.map((item: unknown, i) => {
    const entry = asObject(item, `deployment.admin.admin_key[${i}]`);
    const key = optionalString(entry['key'], `deployment.admin.admin_key[${i}].key`);
    if (key === undefined || key === '') throw new ConfigError(`deployment.admin.admin_key[${i}].key must be set`);
    const role = entry['role'] ?? 'admin';
    if (role !== 'admin' && role !== 'viewer') {
      throw new ConfigError(`deployment.admin.admin_key[${i}].role must be admin or viewer`);
    }
    return { name: optionalString(entry['name'], 'name') ?? `key${i}`, key, role };
  });
}
