/**
 * The shape of conf/config.yaml, APISIX's layout: `apisix` (listeners, TLS, key encryption, status port),
 * `nginx_config` (./config-nginx.ts), `plugin_attr` (./config-plugin-attr.ts), `deployment` (admin API, etcd, where
 * a data plane reads its routes) and `log`. Every key may be left out or set to `~` for its default.
 *
 * Keys not named here are allowed, so that an APISIX config.yaml can be used as is; they are reported as ignored at
 * start (shared/config-validate.ts). Checks that need more than the shape (CIDR blocks, keyring entries, TLS
 * protocol names, a status port clashing with a listener) are made where the file is mapped, shared/config-map.ts.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Enum } from './common.ts';
import { AddressSchema, ListenSchema, Maybe, Secret, StringOrList } from './config-common.ts';
import { NginxConfigSchema } from './config-nginx.ts';
import { PluginAttrSchema } from './config-plugin-attr.ts';

export const HTTP2_ENGINES = ['native', 'node'] as const;
export const CONFIG_PROVIDERS = ['etcd', 'yaml'] as const;
export const ADMIN_ROLES = ['admin', 'viewer'] as const;
/** pino's levels. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const SslSchema = Type.Object({
  enable: Maybe(Type.Boolean({ default: true })),
  listen: Maybe(ListenSchema({ default: [{ port: 9443 }], description: 'TLS listeners of the data plane (HTTP/2 unless an entry says enable_http2: false).' })),
  fallback_sni: Maybe(Type.String({ description: 'The SNI assumed for clients that send none.' })),
  default_cert: Maybe(Type.String({ description: 'PEM file of the default certificate; unset: a self-signed one made at start.' })),
  default_key: Maybe(Type.String({ description: 'PEM file of the default certificate\'s key.' })),
  ssl_trusted_certificate: Maybe(Type.String({ description: 'CA bundle for https:// etcd hosts and grpcs upstreams with tls.verify; unset: Node\'s root store.' })),
  ssl_protocols: Maybe(
    Type.Union([Type.String(), Type.Array(Type.String())], {
      title: 'a string such as "TLSv1.2 TLSv1.3" or a list',
      default: 'TLSv1.2 TLSv1.3',
      description: 'TLSv1.2 and/or TLSv1.3 (HTTP/2 requires TLS 1.2 or later).',
    }),
  ),
  ssl_ciphers: Maybe(Type.String({ description: 'OpenSSL cipher list for TLS 1.2; the suites HTTP/2 forbids are always removed.' })),
});

const ApisixSchema = Type.Object({
  enable_http2: Maybe(Type.Boolean({ default: true, description: 'Whether node_listen ports without their own enable_http2 serve h2c.' })),
  node_listen: Maybe(ListenSchema({ default: [{ port: 9081, enable_http2: true }], description: 'Plaintext (h2c) listeners of the data plane.' })),
  http2_engine: Maybe(Enum(HTTP2_ENGINES)),
  ssl: Maybe(SslSchema),
  data_encryption: Maybe(
    Type.Object({
      keyring: Maybe(StringOrList({ writeOnly: true, description: 'AES keys (16 or 32 bytes) for private keys at rest; ~ or [] stores them in clear; unset: APISIX\'s public default.' })),
    }),
  ),
  status: Type.Optional(
    Type.Union([Type.Boolean(), Type.Null(), AddressSchema], {
      title: 'true, false or a mapping of ip and port',
      description: 'The status port (/healthz, /readyz, metrics): off when unset, ~ or false; ip 127.0.0.1 and port 7085 when left out.',
    }),
  ),
});

const AdminKeySchema = Type.Object({
  name: Maybe(Type.String()),
  key: Secret({ minLength: 1 }),
  role: Maybe(Enum(ADMIN_ROLES)),
});

const AdminSchema = Type.Object({
  admin_listen: Maybe(Type.Object(AddressSchema.properties, { description: 'Default 127.0.0.1:9080.' })),
  admin_key: Maybe(Type.Array(AdminKeySchema, { description: 'Default: APISIX\'s documented key, role admin. viewer keys may only GET.' })),
  allow_admin: Maybe(StringOrList({ default: ['127.0.0.0/8', '::1/128'], description: 'CIDR blocks (or addresses) of the clients allowed to use the admin API.' })),
});

const EtcdSchema = Type.Object({
  host: Maybe(StringOrList({ default: ['http://127.0.0.1:2379'] })),
  prefix: Maybe(Type.String({ default: '/apisix' })),
  timeout: Maybe(Type.Number({ exclusiveMinimum: 0, maximum: 86400, default: 30, description: 'Seconds.' })),
  user: Maybe(Type.String()),
  password: Maybe(Secret()),
  snapshot_cache: Maybe(Type.String({ description: 'File keeping the last config read from etcd, to start from while etcd is down; unset or empty: off.' })),
  tls: Maybe(
    Type.Object({
      cert: Maybe(Type.String()),
      key: Maybe(Type.String()),
      sni: Maybe(Type.String()),
      verify: Maybe(Type.Boolean({ description: 'Only true: etcd\'s certificate is always verified.' })),
    }),
  ),
});

const RoleDataPlaneSchema = Type.Object({
  config_provider: Maybe(Enum(CONFIG_PROVIDERS)),
  config_file: Maybe(Type.String({ description: 'The standalone file of the yaml provider; default conf/apisix.yaml.' })),
});

const DeploymentSchema = Type.Object({
  role_data_plane: Maybe(RoleDataPlaneSchema),
  /** Read when role_data_plane is unset: APISIX's single-node layout. */
  role_traditional: Maybe(RoleDataPlaneSchema),
  admin: Maybe(AdminSchema),
  etcd: Maybe(EtcdSchema),
});

export const ConfigFileSchema = Type.Object({
  apisix: Maybe(ApisixSchema),
  nginx_config: Maybe(NginxConfigSchema),
  plugin_attr: Maybe(PluginAttrSchema),
  deployment: Maybe(DeploymentSchema),
  log: Maybe(Type.Object({ level: Maybe(Enum(LOG_LEVELS)) })),
});

export type ConfigFile = Static<typeof ConfigFileSchema>;
export type ApisixFile = Static<typeof ApisixSchema>;
export type SslFile = Static<typeof SslSchema>;
export type AdminKeyFile = Static<typeof AdminKeySchema>;
export type EtcdFile = Static<typeof EtcdSchema>;
export type Http2Engine = (typeof HTTP2_ENGINES)[number];
export type ConfigProvider = (typeof CONFIG_PROVIDERS)[number];
