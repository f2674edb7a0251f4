/**
 * Typed readers for single values of conf/config.yaml and of GATEWAY_* variables, used by shared/config.ts. Each
 * takes the path of the setting (`deployment.etcd.host`) so an operator's mistake is reported where it is.
 */
import { isIP } from 'node:net';
import { ConfigError } from './errors.ts';

export interface ListenAddress {
  ip: string;
  port: number;
}

export function asObject(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${what}: expected a mapping`);
  return value as Record<string, unknown>;
}

export function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new ConfigError(`${what}: expected a string`);
  return value;
}

export function optionalNumber(value: unknown, what: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number') throw new ConfigError(`${what}: expected a number`);
  return value;
}

export function optionalBoolean(value: unknown, what: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw new ConfigError(`${what}: expected true or false`);
  return value;
}

/** A list of strings; a single string is a list of one, as APISIX's CLI schema allows for `host` and `keyring`. */
export function stringList(value: unknown, what: string): string[] {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || !list.every((v) => typeof v === 'string')) throw new ConfigError(`${what}: expected a list of strings`);
  return list;
}

/** A comma-separated environment value as a list, blanks dropped. */
export function commaList(text: string): string[] {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

export function port(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new ConfigError(`${what}: invalid port ${value}`);
  return value;
}

/** `9081`, `"0.0.0.0:9081"`, `"[::1]:9081"`. */
export function parseHostPortEnv(text: string, what: string): ListenAddress {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return { ip: '0.0.0.0', port: port(Number(trimmed), what) };
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(trimmed);
  if (m === null || m[1] === undefined || m[2] === undefined) throw new ConfigError(`${what}: expected ip:port, got "${text}"`);
  return { ip: m[1], port: port(Number(m[2]), what) };
}

/**
 * An address block as nginx's `allow` takes it: `10.0.0.0/8`, `::1/128`, or one address (`127.0.0.1`, which is
 * `/32`). Returned in its canonical `address/prefix` form.
 */
export function parseCidr(text: string, what: string): string {
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const address = slash < 0 ? trimmed : trimmed.slice(0, slash);
  const family = isIP(address);
  if (family === 0) throw new ConfigError(`${what}: "${text}" is not an IP address or CIDR block`);
  const max = family === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : trimmed.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > max) throw new ConfigError(`${what}: "${text}" has an invalid prefix length`);
  return `${address}/${prefix}`;
}

export function isLoopback(ip: string): boolean {
  return ip === 'localhost' || ip === '::1' || ip === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(ip);
}
