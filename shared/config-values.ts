/**
 * Readers of the values whose form the schema of conf/config.yaml cannot check alone, shared by the file and by
 * GATEWAY_* variables: `ip:port` text, CIDR blocks, nginx's durations, comma lists. Each takes the name of the
 * setting (`deployment.admin.allow_admin[0]`, `GATEWAY_H2C_LISTEN`) so that a mistake is reported where it is.
 */
import { isIP } from 'node:net';
import { ConfigError } from './errors.ts';

export interface ListenAddress {
  ip: string;
  port: number;
}

/**
 * Milliseconds from seconds (a number) or nginx's time form (`10s`, `500ms`, `2m`; no unit is seconds), as the
 * schema's DurationSchema takes them. Ranges are the caller's.
 */
export function durationMs(value: number | string): number {
  if (typeof value === 'number') return Math.round(value * 1000);
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  const n = Number(match?.[1] ?? NaN);
  return Math.round(match?.[2] === 'ms' ? n : match?.[2] === 'm' ? n * 60_000 : n * 1000);
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
