/**
 * The one ajv instance and the one validation entry point of both planes. The admin API validates what it is
 * about to write and the data plane validates what it reads from etcd with the same schemas, the same ajv options
 * (no coercion, no defaults written, no unknown fields stripped) and the same cross-field checks, so the two planes
 * cannot disagree on what is valid.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { ResourceType } from './etcd-keys.ts';
import { RouteSchema, type RouteConf } from './schema/route.ts';
import { SslSchema, type SslConf } from './schema/ssl.ts';
import type { UpstreamConf } from './schema/upstream.ts';

export interface ResourceConfs {
  routes: RouteConf;
  ssls: SslConf;
}

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; error: string };

const ajv = new Ajv({
  strict: true,
  allErrors: true,
  coerceTypes: false,
  useDefaults: false,
  removeAdditional: false,
  allowUnionTypes: true,
});

const compiled: { [K in ResourceType]: ValidateFunction<ResourceConfs[K]> } = {
  routes: ajv.compile<RouteConf>(RouteSchema),
  ssls: ajv.compile<SslConf>(SslSchema),
};

export const schemas = { routes: RouteSchema, ssls: SslSchema } as const;

export interface ValidateOptions {
  /**
   * Checks that only make sense when a value is written (the admin API): a certificate must not be expired yet.
   * The data plane reads with this off, so a certificate that expires while in service is not dropped by a freshly
   * started replica while the others keep serving it.
   */
  atWrite?: boolean;
}

/**
 * Validates one resource value. The message names the field and the rule, without the `invalid configuration: `
 * prefix (the admin API adds it, the data plane logs it as is).
 */
export function validateResource<K extends ResourceType>(
  type: K,
  value: unknown,
  options: ValidateOptions = {},
): ValidationResult<ResourceConfs[K]> {
  const validate = compiled[type] as ValidateFunction<ResourceConfs[K]>;
  if (!validate(value)) return { ok: false, error: formatAjvErrors(validate.errors ?? []) };
  const semantic = checkers[type](value as never, options.atWrite === true);
  if (semantic !== undefined) return { ok: false, error: semantic };
  return { ok: true, value };
}

const checkers: { [K in ResourceType]: (value: ResourceConfs[K], atWrite: boolean) => string | undefined } = {
  routes: checkRoute,
  ssls: checkSsl,
};

function checkRoute(route: RouteConf): string | undefined {
  if (route.host !== undefined && route.hosts !== undefined) return 'only one of host or hosts is allowed';
  if ((route.uri === undefined) === (route.uris === undefined)) return 'exactly one of "uri" or "uris" is required';
  if (route.upstream === undefined) return 'property "upstream" is required';
  const upstreamError = checkUpstream(route.upstream);
  return upstreamError === undefined ? undefined : `property "upstream" validation failed: ${upstreamError}`;
}

export function checkUpstream(upstream: UpstreamConf): string | undefined {
  if (upstream.pass_host === 'rewrite' && upstream.upstream_host === undefined) {
    return "`upstream_host` can't be empty when `pass_host` is `rewrite`";
  }
  if (Array.isArray(upstream.nodes)) {
    for (const node of upstream.nodes) {
      if (node.host.includes(':') && !node.host.startsWith('[')) {
        return "IPv6 address must be enclosed with '[' and ']'";
      }
    }
    return undefined;
  }
  for (const address of Object.keys(upstream.nodes)) {
    if (parseHostPort(address) === undefined) return `invalid node address "${address}": expected host or host:port`;
  }
  return undefined;
}

/** `host`, `host:port`, `[v6]` or `[v6]:port`; undefined when the port is not 1..65535 or the host is empty. */
export function parseHostPort(address: string): { host: string; port: number | undefined } | undefined {
  let host: string;
  let portText: string | undefined;
  if (address.startsWith('[')) {
    const end = address.indexOf(']');
    if (end < 0) return undefined;
    host = address.slice(0, end + 1);
    const rest = address.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':')) return undefined;
    portText = rest === '' ? undefined : rest.slice(1);
  } else {
    const colon = address.lastIndexOf(':');
    if (colon >= 0 && address.indexOf(':') !== colon) return undefined; // bare IPv6 must be bracketed
    host = colon < 0 ? address : address.slice(0, colon);
    portText = colon < 0 ? undefined : address.slice(colon + 1);
  }
  if (host === '' || host === '[]') return undefined;
  if (portText === undefined) return { host, port: undefined };
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  return { host, port };
}

function checkSsl(ssl: SslConf, atWrite: boolean): string | undefined {
  const type = ssl.type ?? 'server';
  if (type === 'server' && (ssl.sni === undefined) === (ssl.snis === undefined)) {
    return 'exactly one of "sni" or "snis" is required for a server certificate';
  }
  const pairError = checkCertKeyPair(ssl.cert, ssl.key, atWrite);
  if (pairError !== undefined) return pairError;
  const certs = ssl.certs ?? [];
  const keys = ssl.keys ?? [];
  if (certs.length !== keys.length) return 'mismatched number of certs and keys';
  for (let i = 0; i < certs.length; i++) {
    const extraError = checkCertKeyPair(certs[i] ?? '', keys[i] ?? '', atWrite);
    if (extraError !== undefined) return `failed to handle cert-key pair[${i + 1}]: ${extraError}`;
  }
  return undefined;
}

/** Parses the PEM pair at write time: bad PEM, a key that does not match, or an expired certificate is refused. */
function checkCertKeyPair(certPem: string, keyPem: string, atWrite: boolean): string | undefined {
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return 'failed to parse cert: not a PEM certificate';
  }
  try {
    key = createPrivateKey(keyPem);
  } catch {
    return 'failed to parse key: not a PEM private key';
  }
  if (!cert.checkPrivateKey(key)) return 'the private key does not match the certificate';
  if (atWrite && Date.parse(cert.validTo) < Date.now()) return `certificate expired at ${cert.validTo}`;
  return undefined;
}

/**
 * Turns ajv's errors into one sentence in APISIX's style. Among several errors (anyOf branches report one each),
 * the deepest one is the most specific, so it is the one reported.
 */
export function formatAjvErrors(errors: readonly ErrorObject[]): string {
  let best: ErrorObject | undefined;
  for (const error of errors) {
    if (best === undefined || depth(error) > depth(best)) best = error;
  }
  if (best === undefined) return 'validation failed';
  // APISIX (api7/jsonschema) nests one clause per level: property "upstream" validation failed: property "scheme" …
  return fieldPath(best).reduceRight((message, field) => `property "${field}" validation failed: ${message}`, describeRule(best));
}

function depth(error: ErrorObject): number {
  const base = error.instancePath === '' ? 0 : error.instancePath.split('/').length - 1;
  // A missing or unknown property names a field one level below the object that reported it.
  return error.keyword === 'required' || error.keyword === 'additionalProperties' ? base + 1 : base;
}

function fieldPath(error: ErrorObject): string[] {
  return error.instancePath
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function describeRule(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties':
      // APISIX's wording for a plugin it does not know.
      if (error.instancePath === '/plugins') return `unknown plugin [${String(params['additionalProperty'])}]`;
      return `additional properties forbidden, found ${String(params['additionalProperty'])}`;
    case 'required':
      return `property "${String(params['missingProperty'])}" is required`;
    case 'const':
      return `must be ${JSON.stringify(params['allowedValue'])}`;
    case 'enum':
      return `must be one of ${JSON.stringify(params['allowedValues'])}`;
    default:
      return error.message ?? error.keyword;
  }
}
