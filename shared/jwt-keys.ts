/**
 * A consumer's `jwt-auth` credential as the key node:crypto verifies with: the HMAC secret (base64-decoded with
 * `base64_secret`), or the PEM public key for RS256 (RSA) and ES256 (EC P-256). Made at admin-write time to refuse
 * an unusable credential, and once per consumer change by the data plane.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { JwtAuthConsumerConf } from './schema/consumer.ts';

export type JwtAlgorithm = NonNullable<JwtAuthConsumerConf['algorithm']>;

export type JwtKey = { readonly algorithm: 'HS256' | 'HS512'; readonly secret: Buffer } | { readonly algorithm: 'RS256' | 'ES256'; readonly publicKey: KeyObject };

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The verification key of a consumer's credential, or a message saying why it cannot verify anything. */
export function jwtKeyOf(conf: JwtAuthConsumerConf): JwtKey | string {
  const algorithm = conf.algorithm ?? 'HS256';
  if (algorithm === 'HS256' || algorithm === 'HS512') {
    if (conf.secret === undefined) return `"secret" is required for ${algorithm}`;
    if (conf.base64_secret === true && (!BASE64.test(conf.secret) || conf.secret.length % 4 !== 0)) return '"secret" is not base64';
    return { algorithm, secret: conf.base64_secret === true ? Buffer.from(conf.secret, 'base64') : Buffer.from(conf.secret, 'utf8') };
  }
  if (conf.public_key === undefined) return `"public_key" is required for ${algorithm}`;
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(conf.public_key);
  } catch {
    return '"public_key" is not a PEM public key';
  }
  if (algorithm === 'RS256' && publicKey.asymmetricKeyType !== 'rsa') return 'RS256 needs an RSA "public_key"';
  if (algorithm === 'ES256' && (publicKey.asymmetricKeyType !== 'ec' || publicKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1')) {
    return 'ES256 needs an EC P-256 "public_key"';
  }
  return { algorithm, publicKey };
}
