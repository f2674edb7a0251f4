/**
 * The configuration the rest of the gateway consumes (GatewayConfig), and the documented defaults it falls back on.
 * It is made from conf/config.yaml (shape: shared/schema/config-file.ts) and GATEWAY_* variables by
 * shared/config.ts; field names are the gateway's, units are ms and bytes, paths are absolute.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ListenAddress } from './config-values.ts';
import type { ConnectionLimits } from './config-connections.ts';
import type { TlsPolicyConfig } from './config-tls.ts';
import type { Http2Limits } from './config-http2.ts';
import type { ObservabilityConfig } from './config-observability.ts';
import type { ConfigProvider, Http2Engine } from './schema/config-file.ts';

export type { ConfigProvider, Http2Engine } from './schema/config-file.ts';

export const DOCUMENTED_ADMIN_KEY = 'edd1c9f034335f136f87ad84b625c8f1';
/** APISIX's default `apisix.data_encryption.keyring` (apisix/cli/config.lua): public, so only obfuscation. */
export const DOCUMENTED_KEYRING: readonly string[] = ['qeddd145sfvddff3', 'edd1c9f0985e76a2'];
/** Loopback only. APISIX's default is `127.0.0.0/24`; all of 127/8 and ::1 are this host as well. */
export const DEFAULT_ALLOW_ADMIN: readonly string[] = ['127.0.0.0/8', '::1/128'];
/**
 * The repository (or image) root, where conf/ is: this file's parent directory when it runs from the sources
 * (shared/config-types.ts), two levels up when it runs from the build (dist/shared/config-types.js).
 */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), import.meta.url.endsWith('.js') ? '../..' : '..');
export const DEFAULT_CONFIG_PATH = resolve(REPO_ROOT, 'conf/config.yaml');
/** APISIX's conf/apisix.yaml, next to conf/config.yaml. */
export const DEFAULT_STANDALONE_FILE = resolve(REPO_ROOT, 'conf/apisix.yaml');
/**
 * APISIX's status API address (`apisix.status`): loopback, since it tells anyone who asks the config revision, and
 * port 7085 as in APISIX's docs. Used for a `status` mapping that leaves `ip` or `port` out.
 */
export const DEFAULT_STATUS_LISTEN: Readonly<ListenAddress> = { ip: '127.0.0.1', port: 7085 };
export const DEFAULT_HTTP2_ENGINE: Http2Engine = 'native';

export type Env = Record<string, string | undefined>;

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
  /**
   * Keys of the file this gateway does not read (`apisix.enable_admin`): APISIX settings it does not implement, or
   * misspelt keys. Not an error, so that an APISIX config.yaml works as is; the processes log them at start.
   */
  ignoredKeys: string[];
}

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
}
