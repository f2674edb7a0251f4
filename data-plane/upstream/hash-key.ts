/**
 * The key a `chash` upstream hashes a call on (APISIX `hash_on` + `key`, apisix/balancer/chash.lua), read from what
 * a gRPC call has: its header list and its connection.
 *
 * - `vars`: an nginx variable: `remote_addr`, `remote_port`, `server_addr`, `uri` and `request_uri` (`:path`),
 *   `host` (the authority without its port), `server_name` (the TLS SNI, else the host), `hostname` (this
 *   machine), `query_string` and `arg_<name>` (from `:path`; gRPC paths have no query, so these are usually empty).
 * - `header`: a request header (gRPC metadata), e.g. `x-user-id`.
 * - `cookie`: a cookie from the `cookie` header.
 * - `consumer`: the authenticated consumer; there are no consumers yet (plugins come later), so none.
 * - `vars_combinations`: text with `$var` references, e.g. `$remote_addr$uri`.
 *
 * When the key is empty, the call is hashed on `remote_addr`, as APISIX does.
 */
import { hostname as machineHostname } from 'node:os';
import { fieldValue } from '../http2/fields.ts';
import { hostOf } from '../routing/router.ts';

export type HashOn = 'vars' | 'header' | 'cookie' | 'consumer' | 'vars_combinations';

/** What a call offers to read a key from. `fields`: the request header list as flat name, value pairs. */
export interface HashSource {
  readonly fields: readonly string[];
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly localAddress: string | undefined;
  readonly servername: string | undefined;
}

const HOSTNAME = machineHostname();

export function hashKeyOf(hashOn: HashOn, key: string, source: HashSource): string {
  let value: string | undefined;
  switch (hashOn) {
    case 'vars':
      value = variable(key, source);
      break;
    case 'header':
      value = fieldValue(source.fields, key.toLowerCase());
      break;
    case 'cookie':
      value = cookie(fieldValue(source.fields, 'cookie'), key);
      break;
    case 'consumer':
      value = undefined;
      break;
    case 'vars_combinations':
      value = key.replace(/\$([A-Za-z0-9_]+)/g, (_, name: string) => variable(name, source) ?? '');
      break;
  }
  return value === undefined || value === '' ? (source.remoteAddress ?? '') : value;
}

function variable(name: string, source: HashSource): string | undefined {
  switch (name) {
    case 'remote_addr':
      return source.remoteAddress;
    case 'remote_port':
      return source.remotePort === undefined ? undefined : String(source.remotePort);
    case 'server_addr':
      return source.localAddress;
    case 'uri':
    case 'request_uri': {
      const path = fieldValue(source.fields, ':path') ?? '';
      if (name === 'request_uri') return path;
      const q = path.indexOf('?');
      return q < 0 ? path : path.slice(0, q);
    }
    case 'host':
      return hostOf(fieldValue(source.fields, ':authority') ?? fieldValue(source.fields, 'host'));
    case 'server_name':
      return source.servername ?? hostOf(fieldValue(source.fields, ':authority') ?? fieldValue(source.fields, 'host'));
    case 'hostname':
      return HOSTNAME;
    case 'query_string': {
      const path = fieldValue(source.fields, ':path') ?? '';
      const q = path.indexOf('?');
      return q < 0 ? '' : path.slice(q + 1);
    }
    default:
      if (name.startsWith('arg_')) return queryArg(fieldValue(source.fields, ':path') ?? '', name.slice(4));
      // Any other `$name` of vars_combinations: a request header, as nginx's `$http_<name>`.
      if (name.startsWith('http_')) return fieldValue(source.fields, name.slice(5).replace(/_/g, '-').toLowerCase());
      return undefined;
  }
}

function cookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function queryArg(path: string, name: string): string | undefined {
  const q = path.indexOf('?');
  if (q < 0) return undefined;
  for (const part of path.slice(q + 1).split('&')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    if (key === name) return eq < 0 ? '' : decoded(part.slice(eq + 1));
  }
  return undefined;
}

/** A malformed escape (`%zz`) is hashed as written: a client's bytes must never throw here. */
function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
