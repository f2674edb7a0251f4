/**
 * The admin token check, as APISIX's `check_token` (apisix/admin/init.lua): the key comes
 * from the `api_key` query argument, the `X-API-KEY` header or the `x_api_key` cookie, in that order, and must
 * equal one of `deployment.admin.admin_key[].key`. A `viewer` key may only read.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import type { AdminKey } from '../../shared/config.ts';
import { Unauthorized } from '../../shared/errors.ts';

/** APISIX's `viewer_methods`: only GET. HEAD is not in it either. */
const VIEWER_METHODS: ReadonlySet<string> = new Set(['GET']);

export function createAuthHook(keys: readonly AdminKey[]): onRequestAsyncHookHandler {
  const known = keys.map((entry) => ({ role: entry.role, digest: digest(entry.key) }));
  return async (request) => {
    const token = requestToken(request);
    if (token === undefined) throw new Unauthorized('missing apikey');
    const presented = digest(token);
    // Compare fixed-size digests in constant time, and against every key, so timing reveals nothing about them.
    let role: AdminKey['role'] | undefined;
    for (const entry of known) {
      if (timingSafeEqual(entry.digest, presented) && role === undefined) role = entry.role;
    }
    if (role === undefined) throw new Unauthorized('wrong apikey');
    if (role === 'viewer' && !VIEWER_METHODS.has(request.method)) {
      throw new Unauthorized('invalid method for role viewer');
    }
  };
}

function requestToken(request: FastifyRequest): string | undefined {
  const fromQuery = queryToken(request.query);
  if (fromQuery !== undefined) return fromQuery;
  const header = request.headers['x-api-key'];
  if (typeof header === 'string' && header !== '') return header;
  return cookieToken(request.headers.cookie);
}

function queryToken(query: unknown): string | undefined {
  if (typeof query !== 'object' || query === null) return undefined;
  const value: unknown = (query as Record<string, unknown>)['api_key'];
  // A repeated argument arrives as an array; nginx's `arg_api_key` is the first occurrence.
  const first: unknown = Array.isArray(value) ? value[0] : value;
  return typeof first === 'string' && first !== '' ? first : undefined;
}

function cookieToken(cookie: string | undefined): string | undefined {
  if (cookie === undefined) return undefined;
  for (const part of cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== 'x_api_key') continue;
    const value = part.slice(eq + 1).trim();
    return value === '' ? undefined : value;
  }
  return undefined;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
