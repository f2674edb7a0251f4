/**
 * Whether a certificate and its private key can be served, decided the way they will be served: each PEM pair is
 * parsed and matched, its key type and size checked against what OpenSSL's default security level and TLS 1.2/1.3
 * signature algorithms accept, and then all pairs of an object are loaded into one TLS context exactly as the data
 * plane's SNI table loads them (`createCertificateContext`). The admin API runs this at write time, so what it
 * accepts with 201 is what a data plane can load; before this, an RSA-1024 key, a DSA key or a certificate followed
 * by a corrupt PEM block was accepted and then skipped by every replica (issue #11 case 8).
 *
 * Only plaintext PEM gets here: encrypted keys are decrypted first (shared/crypto.ts).
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';

/**
 * RSA below 2048 bits is refused by OpenSSL 3 at security level 2 (112-bit security, SP 800-57), Node's default:
 * `ee key too small` when the context is built.
 */
export const MIN_RSA_BITS = 2048;

/**
 * Key types a TLS 1.2/1.3 server can sign with. DSA is absent: TLS 1.3 removed it (RFC 8446 §4.2.3) and Node's
 * default TLS 1.2 cipher list has no DSS suite, so a DSA certificate loads but no handshake can use it.
 */
const SERVABLE_KEY_TYPES: ReadonlySet<string> = new Set(['rsa', 'rsa-pss', 'ec', 'ed25519', 'ed448']);

/** The curves of TLS 1.3's ECDSA signature schemes (RFC 8446 §4.2.3), in OpenSSL's names. */
const SERVABLE_CURVES: ReadonlySet<string> = new Set(['prime256v1', 'secp384r1', 'secp521r1']);

export interface CertKeyPair {
  cert: string;
  key: string;
}

export interface CertificateCheckOptions {
  /** Also refuse a certificate already expired (the admin API); a reader keeps serving one that expired in service. */
  atWrite?: boolean;
}

/**
 * Undefined when the pairs can be served together; otherwise a message in APISIX's words, the extra pairs
 * (`certs`/`keys`, index 1 onwards) prefixed `failed to handle cert-key pair[i]: ` as APISIX does.
 */
export function checkServablePairs(pairs: readonly CertKeyPair[], options: CertificateCheckOptions = {}): string | undefined {
  const keyTypes = new Map<string, number>();
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i];
    if (pair === undefined) continue;
    const checked = checkPair(pair, options.atWrite === true);
    const prefix = i === 0 ? '' : `failed to handle cert-key pair[${i}]: `;
    if (typeof checked === 'string') return `${prefix}${checked}`;
    // OpenSSL keeps one certificate per key type (SSL_CTX_use_certificate): a second RSA pair silently replaces the first.
    const earlier = keyTypes.get(checked.type);
    if (earlier !== undefined) {
      const replaced = earlier === 0 ? '"cert"' : `pair[${earlier}]`;
      return `${prefix}a second ${checked.type} certificate would replace ${replaced}: one pair per key type`;
    }
    keyTypes.set(checked.type, i);
  }
  try {
    createCertificateContext(pairs.map((pair) => pair.cert), pairs.map((pair) => pair.key));
  } catch (err) {
    return `failed to load the certificate into a TLS context: ${err instanceof Error ? err.message : String(err)}`;
  }
  return undefined;
}

/**
 * The TLS context for a certificate object: every certificate (with its chain) and every key, as the data plane
 * serves them. Throws OpenSSL's error when they cannot be loaded.
 */
export function createCertificateContext(certs: readonly string[], keys: readonly string[], policy?: SecureContextOptions): SecureContext {
  // `policy`: the listeners' versions and ciphers (data-plane/tls/tls-policy.ts), for contexts that serve clients.
  return createSecureContext({ ...policy, cert: [...certs], key: keys.map((pem) => ({ pem })) });
}

/** The pair's key type (`rsa`, `ec`, …) when it is servable, else the reason it is not. */
function checkPair(pair: CertKeyPair, atWrite: boolean): { type: string } | string {
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(pair.cert);
  } catch {
    return 'failed to parse cert: not a PEM certificate';
  }
  try {
    key = createPrivateKey(pair.key);
  } catch {
    return 'failed to parse key: not a PEM private key';
  }
  if (!cert.checkPrivateKey(key)) return 'the private key does not match the certificate';
  const keyError = unservableKey(key);
  if (keyError !== undefined) return keyError;
  if (atWrite && Date.parse(cert.validTo) < Date.now()) return `certificate expired at ${cert.validTo}`;
  return { type: key.asymmetricKeyType ?? 'unknown' };
}

function unservableKey(key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType ?? 'unknown';
  if (!SERVABLE_KEY_TYPES.has(type)) {
    return `unsupported key type ${type}: expected one of ${[...SERVABLE_KEY_TYPES].join(', ')}`;
  }
  const details = key.asymmetricKeyDetails ?? {};
  if ((type === 'rsa' || type === 'rsa-pss') && (details.modulusLength ?? 0) < MIN_RSA_BITS) {
    return `key too small: ${type} ${details.modulusLength ?? 0} bits, expected at least ${MIN_RSA_BITS}`;
  }
  if (type === 'ec' && !SERVABLE_CURVES.has(details.namedCurve ?? '')) {
    return `unsupported curve ${details.namedCurve ?? 'unknown'}: expected one of ${[...SERVABLE_CURVES].join(', ')}`;
  }
  return undefined;
}
