/**
 * GATEWAY_* variables (and LOG_LEVEL): single-value overrides of conf/config.yaml, for containers, tests and the
 * benchmarks, applied to the GatewayConfig made from the file. A value is checked as the key it overrides would
 * be (with that key's schema where it has one) and a mistake is reported under the variable's name.
 */
import { applyObservabilityEnv } from './config-observability.ts';
import { allowAdmin, keyring, resolvePath, workerProcesses } from './config-map.ts';
import { DEFAULT_STATUS_LISTEN, type EtcdTlsConfig, type Env, type GatewayConfig, type Http2Engine } from './config-types.ts';
import { checkValue } from './config-validate.ts';
import { commaList, durationMs, parseHostPortEnv, port, type ListenAddress } from './config-values.ts';
import { normalizePrefix } from './etcd-keys.ts';
import { Enum } from './schema/common.ts';
import { DurationSchema } from './schema/config-common.ts';
import { CONFIG_PROVIDERS, HTTP2_ENGINES, LOG_LEVELS } from './schema/config-file.ts';
import { WorkerProcessesSchema } from './schema/config-nginx.ts';

const SecondsSchema = DurationSchema();
const ProviderSchema = Enum(CONFIG_PROVIDERS);
const EngineSchema = Enum(HTTP2_ENGINES);
const LogLevelSchema = Enum(LOG_LEVELS);

export function applyEnvOverrides(config: GatewayConfig, env: Env): void {
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
  if (allow) config.admin.allowAdmin = allowAdmin(commaList(allow), 'GATEWAY_ADMIN_ALLOW');
  const ring = env['GATEWAY_DATA_ENCRYPTION_KEYRING'];
  if (ring !== undefined && ring !== '') config.dataEncryption.keyring = keyring(commaList(ring), 'GATEWAY_DATA_ENCRYPTION_KEYRING');
  const h2c = env['GATEWAY_H2C_LISTEN'];
  if (h2c) config.nodeListen = h2c.split(',').map((a) => parseHostPortEnv(a, 'GATEWAY_H2C_LISTEN'));
  const tls = env['GATEWAY_TLS_LISTEN'];
  if (tls) config.ssl.listen = tls.split(',').map((a) => parseHostPortEnv(a, 'GATEWAY_TLS_LISTEN'));
  const status = env['GATEWAY_STATUS_LISTEN'];
  if (status) config.status = parseStatusEnv(status);
  const workers = env['GATEWAY_WORKER_PROCESSES'];
  if (workers) config.dataPlane.workerProcesses = workerProcesses(checkValue(WorkerProcessesSchema, numeric(workers), 'GATEWAY_WORKER_PROCESSES'));
  const shutdown = env['GATEWAY_SHUTDOWN_TIMEOUT'];
  if (shutdown) config.dataPlane.shutdownTimeoutMs = durationMs(checkValue(SecondsSchema, numeric(shutdown), 'GATEWAY_SHUTDOWN_TIMEOUT'));
  const provider = env['GATEWAY_CONFIG_PROVIDER'];
  if (provider) config.dataPlane.configProvider = checkValue(ProviderSchema, provider, 'GATEWAY_CONFIG_PROVIDER');
  const standalone = env['GATEWAY_STANDALONE_FILE'];
  if (standalone) config.dataPlane.standaloneFile = resolvePath(standalone);
  const cache = env['GATEWAY_SNAPSHOT_CACHE'];
  if (cache) config.dataPlane.snapshotCache = cache === 'off' ? undefined : resolvePath(cache);
  const level = env['LOG_LEVEL'];
  if (level) config.log.level = checkValue(LogLevelSchema, level, 'LOG_LEVEL');
  applyObservabilityEnv(config.observability, env);
}

/** The engine when conf/config.yaml leaves `apisix.http2_engine` unset: the file wins over the environment here. */
export function engineFromEnv(value: string | undefined): Http2Engine | undefined {
  return value ? checkValue(EngineSchema, value, 'GATEWAY_HTTP2_ENGINE') : undefined;
}

/** A variable's text as the file would have typed it: digits are a number. */
function numeric(text: string): string | number {
  const trimmed = text.trim();
  return trimmed !== '' && !Number.isNaN(Number(trimmed)) ? Number(trimmed) : text;
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

function emptyTls(): EtcdTlsConfig {
  return { caFile: undefined, certFile: undefined, keyFile: undefined, sni: undefined };
}
