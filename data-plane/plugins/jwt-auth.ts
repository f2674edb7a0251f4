/**
 * `jwt-auth` (APISIX priority 2510) on a route or service: the call carries a JSON Web Token (RFC 7519) in the
 * request header `header` (default `authorization`, with or without `Bearer `); its key claim (`key_claim_name`,
 * default `key`) names a consumer's `jwt-auth.key`, and it must be signed with that consumer's algorithm and secret
 * or public key (HS256, HS512, RS256, ES256; the token's own `alg` must be the consumer's, so `none` or an HMAC made
 * with a public key never passes), and be within its `exp` and `nbf` give or take the consumer's
 * `lifetime_grace_period`. A refusal is UNAUTHENTICATED with APISIX's texts. An admitted call carries the consumer's
 * name upstream (`x-consumer-username`) and to the plugins after this one; `hide_credentials` keeps the token from
 * the upstream.
 */
import { createHmac, timingSafeEqual, verify } from 'node:crypto';
import { AuthenticationFailed } from '../../shared/errors.ts';
import type { JwtAuthConf } from '../../shared/schema/plugin-policies.ts';
import { admitConsumer, type JwtCredential } from './consumers.ts';
import type { CompiledPlugin } from './pipeline.ts';

const PRIORITY = 2510;
const DEFAULT_HEADER = 'authorization';
const DEFAULT_KEY_CLAIM = 'key';
const BEARER = /^bearer\s+/i;
const MS = 1000;

/** `now` is injectable for tests (milliseconds). */
export function compileJwtAuth(conf: JwtAuthConf, now: () => number = Date.now): CompiledPlugin {
  const header = (conf.header ?? DEFAULT_HEADER).toLowerCase();
  const claimName = conf.key_claim_name ?? DEFAULT_KEY_CLAIM;
  const hide = conf.hide_credentials ?? false;
  const refuse = (message: string): { error: AuthenticationFailed } => ({ error: new AuthenticationFailed(message) });
  const missing = refuse('Missing JWT token in request');
  const invalid = refuse('JWT token invalid');
  const noKey = refuse('missing user key in JWT token');
  const unknownKey = refuse('Invalid user key in JWT token');
  const failed = refuse('failed to verify jwt');
  return {
    name: 'jwt-auth',
    priority: PRIORITY,
    access(request) {
      const raw = request.header(header);
      if (raw === undefined || raw === '') return missing;
      const token = raw.replace(BEARER, '');
      const parts = token.split('.');
      if (parts.length !== 3) return invalid;
      const [encodedHeader = '', encodedPayload = '', encodedSignature = ''] = parts;
      const jwtHeader = decodeJson(encodedHeader);
      const payload = decodeJson(encodedPayload);
      if (jwtHeader === undefined || payload === undefined) return invalid;
      const claim = payload[claimName];
      if (typeof claim !== 'string' || claim === '') return noKey;
      const credential = request.consumers.byJwtKey(claim);
      if (credential === undefined) return unknownKey;
      if (jwtHeader['alg'] !== credential.key.algorithm) return failed;
      const signature = Buffer.from(encodedSignature, 'base64url');
      if (!signatureHolds(credential, `${encodedHeader}.${encodedPayload}`, signature)) return failed;
      if (!withinLifetime(payload, now() / MS, credential.graceSeconds)) return failed;
      admitConsumer(request, credential.consumer, header, hide);
      return undefined;
    },
  };
}

function decodeJson(part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function signatureHolds(credential: JwtCredential, signingInput: string, signature: Buffer): boolean {
  const key = credential.key;
  switch (key.algorithm) {
    case 'HS256':
    case 'HS512': {
      const expected = createHmac(key.algorithm === 'HS256' ? 'sha256' : 'sha512', key.secret).update(signingInput).digest();
      return expected.length === signature.length && timingSafeEqual(expected, signature);
    }
    case 'RS256':
      return verify('sha256', Buffer.from(signingInput), key.publicKey, signature);
    case 'ES256':
      // JWS carries ECDSA signatures as r || s (RFC 7518 §3.4), not DER.
      return verify('sha256', Buffer.from(signingInput), { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
  }
}

/** `exp` not passed and `nbf` reached, each give or take `grace` seconds; absent claims are not checked. */
function withinLifetime(payload: Record<string, unknown>, nowSeconds: number, grace: number): boolean {
  const exp = payload['exp'];
  if (exp !== undefined && (typeof exp !== 'number' || nowSeconds > exp + grace)) return false;
  const nbf = payload['nbf'];
  if (nbf !== undefined && (typeof nbf !== 'number' || nowSeconds + grace < nbf)) return false;
  return true;
}
