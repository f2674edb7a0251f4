/**
 * conf/config.yaml + environment → one typed, validated config. This is the only module that reads process.env
 * (through the `env` argument, so tests pass their own). Defaults are the seed document's: admin on
 * 127.0.0.1:9080, h2c on 9081, TLS on 9443, etcd at http://127.0.0.1:2379 under /apisix.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { ConfigError, describe } from './errors.ts';
import { normalizePrefix } from './etcd-keys.ts';

export const DOCUMENTED_ADMIN_KEY = 'edd1c9f034335f136f87ad84b625c8f1';
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_CONFIG_PATH = resolve(REPO_ROOT, 'conf/config.yaml');

export interface ListenAddress {
  ip: string;
  port: number;
}

export interface AdminKey {
  name: string;
  key: string;
  role: 'admin' | 'viewer';
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
  admin: ListenAddress & { keys: AdminKey[] };
  etcd: { hosts: string[]; prefix: string; timeoutMs: number; username: string | undefined; password: string | undefined };
  log: { level: string };
}

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
  const deployment = asObject(root['deployment'] ?? {}, 'deployment');
  const admin = asObject(deployment['admin'] ?? {}, 'deployment.admin');
  const etcd = asObject(deployment['etcd'] ?? {}, 'deployment.etcd');
  const log = asObject(root['log'] ?? {}, 'log');
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
    admin: {
      ...parseAddress(admin['admin_listen'] ?? {}, 'deployment.admin.admin_listen', { ip: '127.0.0.1', port: 9080 }),
      keys: parseAdminKeys(admin['admin_key'] ?? [{ name: 'admin', key: DOCUMENTED_ADMIN_KEY, role: 'admin' }]),
    },
    etcd: {
      hosts: stringList(etcd['host'] ?? ['http://127.0.0.1:2379'], 'deployment.etcd.host'),
      prefix: normalizePrefix(optionalString(etcd['prefix'], 'deployment.etcd.prefix') ?? '/apisix'),
      timeoutMs: (optionalNumber(etcd['timeout'], 'deployment.etcd.timeout') ?? 30) * 1000,
      username: optionalString(etcd['user'], 'deployment.etcd.user'),
      password: optionalString(etcd['password'], 'deployment.etcd.password'),
    },
    log: { level: optionalString(log['level'], 'log.level') ?? 'info' },
  };
  applyEnvOverrides(config, env);
  return config;
}

/** Single-value overrides, for containers and tests. */
function applyEnvOverrides(config: GatewayConfig, env: Env): void {
  const etcdHosts = env['GATEWAY_ETCD_HOSTS'];
  if (etcdHosts) config.etcd.hosts = etcdHosts.split(',').map((h) => h.trim()).filter((h) => h !== '');
  const prefix = env['GATEWAY_ETCD_PREFIX'];
  if (prefix) config.etcd.prefix = normalizePrefix(prefix);
  const adminListen = env['GATEWAY_ADMIN_LISTEN'];
  if (adminListen) Object.assign(config.admin, parseHostPortEnv(adminListen, 'GATEWAY_ADMIN_LISTEN'));
  const adminKey = env['GATEWAY_ADMIN_KEY'];
  if (adminKey) config.admin.keys = [{ name: 'admin', key: adminKey, role: 'admin' }];
  const h2c = env['GATEWAY_H2C_LISTEN'];
  if (h2c) config.nodeListen = h2c.split(',').map((a) => parseHostPortEnv(a, 'GATEWAY_H2C_LISTEN'));
  const tls = env['GATEWAY_TLS_LISTEN'];
  if (tls) config.ssl.listen = tls.split(',').map((a) => parseHostPortEnv(a, 'GATEWAY_TLS_LISTEN'));
  const level = env['LOG_LEVEL'];
  if (level) config.log.level = level;
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

/** `9081`, `"0.0.0.0:9081"`, `"[::1]:9081"`. */
function parseHostPortEnv(text: string, what: string): ListenAddress {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return { ip: '0.0.0.0', port: port(Number(trimmed), what) };
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(trimmed);
  if (m === null || m[1] === undefined || m[2] === undefined) throw new ConfigError(`${what}: expected ip:port, got "${text}"`);
  return { ip: m[1], port: port(Number(m[2]), what) };
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

function port(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new ConfigError(`${what}: invalid port ${value}`);
  return value;
}

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${what}: expected a mapping`);
  return value as Record<string, unknown>;
}

function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new ConfigError(`${what}: expected a string`);
  return value;
}

function optionalNumber(value: unknown, what: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number') throw new ConfigError(`${what}: expected a number`);
  return value;
}

function optionalBoolean(value: unknown, what: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw new ConfigError(`${what}: expected true or false`);
  return value;
}

function stringList(value: unknown, what: string): string[] {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || !list.every((v) => typeof v === 'string')) throw new ConfigError(`${what}: expected a list of strings`);
  return list;
}

export function isLoopback(ip: string): boolean {
  return ip === 'localhost' || ip === '::1' || ip === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(ip);
}
