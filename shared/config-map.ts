/**
 * A validated conf/config.yaml (shared/schema/config-file.ts) → GatewayConfig: defaults for what the file leaves
 * out, units and names the gateway uses, and the checks the schema cannot make (CIDR blocks, keyring entries, etcd
 * TLS, the TLS policy and the limits, through their own modules). GATEWAY_* variables are applied after this, by
 * shared/config-env.ts.
 */
import { availableParallelism } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { parseConnectionLimits } from './config-connections.ts';
import { parseHttp2Limits } from './config-http2.ts';
import { parseObservability } from './config-observability.ts';
import { parseTlsPolicy } from './config-tls.ts';
import {
  DEFAULT_ALLOW_ADMIN,
  DEFAULT_HTTP2_ENGINE,
  DEFAULT_STANDALONE_FILE,
  DEFAULT_STATUS_LISTEN,
  DOCUMENTED_ADMIN_KEY,
  DOCUMENTED_KEYRING,
  type AdminKey,
  type EtcdTlsConfig,
  type Env,
  type GatewayConfig,
} from './config-types.ts';
import { durationMs, parseCidr, type ListenAddress } from './config-values.ts';
import { keyringEntryProblem } from './crypto.ts';
import { ConfigError } from './errors.ts';
import { normalizePrefix } from './etcd-keys.ts';
import type { Address, ListenFile } from './schema/config-common.ts';
import type { AdminKeyFile, ApisixFile, ConfigFile, EtcdFile } from './schema/config-file.ts';

export function mapConfigFile(file: ConfigFile, env: Env): GatewayConfig {
  const apisix = file.apisix ?? {};
  const ssl = apisix.ssl ?? {};
  const deployment = file.deployment ?? {};
  const admin = deployment.admin ?? {};
  const etcd = deployment.etcd ?? {};
  const nginx = file.nginx_config ?? {};
  const role = deployment.role_data_plane ?? deployment.role_traditional ?? {};
  const globalHttp2 = apisix.enable_http2 ?? true;
  return {
    nodeListen: listen(apisix.node_listen ?? [{ port: 9081, enable_http2: true }], globalHttp2),
    ssl: {
      enable: ssl.enable ?? true,
      listen: listen(ssl.listen ?? [{ port: 9443 }], true),
      fallbackSni: ssl.fallback_sni ?? undefined,
      defaultCertFile: ssl.default_cert ?? undefined,
      defaultKeyFile: ssl.default_key ?? undefined,
    },
    tls: parseTlsPolicy(ssl),
    admin: {
      ...address(admin.admin_listen, { ip: '127.0.0.1', port: 9080 }),
      keys: adminKeys(admin.admin_key ?? [{ name: 'admin', key: DOCUMENTED_ADMIN_KEY, role: 'admin' }]),
      allowAdmin: allowAdmin(list(admin.allow_admin ?? [...DEFAULT_ALLOW_ADMIN]), 'deployment.admin.allow_admin'),
    },
    etcd: {
      hosts: list(etcd.host ?? ['http://127.0.0.1:2379']),
      prefix: normalizePrefix(etcd.prefix ?? '/apisix'),
      timeoutMs: (etcd.timeout ?? 30) * 1000,
      username: etcd.user ?? undefined,
      password: etcd.password ?? undefined,
      tls: etcdTls(etcd.tls ?? undefined, ssl.ssl_trusted_certificate ?? undefined),
    },
    dataEncryption: { keyring: keyring(apisix.data_encryption?.keyring, 'apisix.data_encryption.keyring') },
    status: status(apisix.status),
    dataPlane: {
      workerProcesses: workerProcesses(nginx.worker_processes ?? 1),
      shutdownTimeoutMs: durationMs(nginx.worker_shutdown_timeout ?? 10),
      configProvider: role.config_provider ?? 'etcd',
      standaloneFile: resolvePath(role.config_file ?? DEFAULT_STANDALONE_FILE),
      snapshotCache: etcd.snapshot_cache === undefined || etcd.snapshot_cache === null || etcd.snapshot_cache === '' ? undefined : resolvePath(etcd.snapshot_cache),
      standaloneEnv: env,
    },
    connections: parseConnectionLimits(nginx),
    http2: parseHttp2Limits(nginx),
    http2Engine: apisix.http2_engine ?? DEFAULT_HTTP2_ENGINE,
    observability: parseObservability(file.plugin_attr ?? {}, nginx.http ?? {}),
    log: { level: file.log?.level ?? 'info' },
    ignoredKeys: [],
  };
}

/** `auto` (one per core, as nginx) or a count from 1; 1 runs the data plane in the main process. */
export function workerProcesses(value: 'auto' | number): number {
  return value === 'auto' ? Math.max(1, availableParallelism()) : value;
}

/** Relative paths are relative to the working directory, as an operator typing them expects. */
export function resolvePath(path: string): string {
  return isAbsolute(path) ? path : resolve(process.cwd(), path);
}

/** APISIX's CLI schema takes a single string for a list of one. */
function list(value: string | string[]): string[] {
  return typeof value === 'string' ? [value] : value;
}

/** An entry without HTTP/2 is an HTTP/1.1-only port: nothing for a gRPC gateway to serve there. */
function listen(value: ListenFile, globalHttp2: boolean): ListenAddress[] {
  const out: ListenAddress[] = [];
  for (const item of typeof value === 'number' ? [value] : value) {
    if (typeof item === 'number') {
      if (globalHttp2) out.push({ ip: '0.0.0.0', port: item });
    } else if (item.enable_http2 ?? globalHttp2) {
      out.push(address(item, { ip: '0.0.0.0', port: 0 }));
    }
  }
  return out;
}

function address(value: Address | null | undefined, defaults: ListenAddress): ListenAddress {
  return { ip: value?.ip ?? defaults.ip, port: value?.port ?? defaults.port };
}

/**
 * `apisix.status`, as APISIX 3 has it: absent (or `~`, or `false`) means no status server, as in APISIX, where the
 * status API is off unless configured; a mapping (or `true`) enables it, `ip` defaulting to 127.0.0.1 and `port` to 7085.
 * conf/config.yaml ships it enabled on 127.0.0.1:7085.
 */
function status(value: ApisixFile['status']): ListenAddress | undefined {
  if (value === undefined || value === null || value === false) return undefined;
  if (value === true) return { ...DEFAULT_STATUS_LISTEN };
  return address(value, DEFAULT_STATUS_LISTEN);
}

function adminKeys(value: AdminKeyFile[]): AdminKey[] {
  return value.map((entry, i) => ({ name: entry.name ?? `key${i}`, key: entry.key, role: entry.role ?? 'admin' }));
}

export function allowAdmin(list: string[], what: string): string[] {
  // An empty list would lock every client out, including the operator on this host: almost surely a mistake.
  if (list.length === 0) throw new ConfigError(`${what}: must list at least one address block (0.0.0.0/0 and ::/0 allow everyone)`);
  return list.map((entry, i) => parseCidr(entry, `${what}[${i}]`));
}

/** `keyring: ~` or `[]` turns encryption off; absent means APISIX's default keyring. */
export function keyring(value: string | string[] | null | undefined, what: string): string[] {
  const entries = value === undefined ? [...DOCUMENTED_KEYRING] : value === null ? [] : list(value);
  entries.forEach((entry, i) => {
    const problem = keyringEntryProblem(entry);
    if (problem !== undefined) throw new ConfigError(`${what}[${i}]: ${problem}`);
  });
  return entries;
}

/** APISIX's `deployment.etcd.tls` ({cert, key, verify, sni}); its CA is `apisix.ssl.ssl_trusted_certificate`. */
function etcdTls(tls: EtcdFile['tls'] | undefined, trustedCertificate: string | undefined): EtcdTlsConfig | undefined {
  if (tls === undefined && trustedCertificate === undefined) return undefined;
  // etcd3's gRPC channel always verifies the server's certificate; pretending otherwise would be a lie.
  if (tls?.verify === false) {
    throw new ConfigError('deployment.etcd.tls.verify: false is not supported; name the CA of etcd\'s certificate in apisix.ssl.ssl_trusted_certificate');
  }
  const result: EtcdTlsConfig = { caFile: trustedCertificate, certFile: tls?.cert ?? undefined, keyFile: tls?.key ?? undefined, sni: tls?.sni ?? undefined };
  if ((result.certFile === undefined) !== (result.keyFile === undefined)) {
    throw new ConfigError('deployment.etcd.tls: cert and key must be set together');
  }
  return result;
}
