/**
 * The TLS policy of the data plane, from `apisix.ssl` with APISIX's key names: `ssl_protocols` and `ssl_ciphers` for
 * the TLS listeners, `ssl_trusted_certificate` as the CA bundle that verifies `grpcs` upstreams with
 * `tls.verify: true` (APISIX reads the same key for etcd and upstream TLS; shared/config-map.ts passes it to etcd too).
 *
 * HTTP/2 over TLS has a floor that no setting may lower (RFC 9113 §9.2): TLS 1.2 or later, and on TLS 1.2 only
 * cipher suites with an ephemeral key exchange and an AEAD cipher (§9.2.2; Appendix A lists the prohibited ones).
 * So `ssl_protocols` may name TLSv1.2 and TLSv1.3 only, and whatever `ssl_ciphers` says, the suites HTTP/2 forbids
 * are removed from it (HTTP2_CIPHER_FLOOR). A value that leaves nothing, or that OpenSSL does not understand, is a
 * configuration error at start, with the key's name in the message.
 */
import { createSecureContext } from 'node:tls';
import { ConfigError, describe } from './errors.ts';
import type { SslFile } from './schema/config-file.ts';

export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

export interface TlsPolicyConfig {
  /** The lowest and highest version the TLS listeners accept (`ssl_protocols`). */
  minVersion: TlsVersion;
  maxVersion: TlsVersion;
  /** OpenSSL cipher string for TLS 1.2 (`ssl_ciphers`, TLS_* names set TLS 1.3 suites), with the HTTP/2 floor appended. */
  ciphers: string;
  /** PEM bundle of the CAs trusted for `grpcs` upstreams with `tls.verify: true`; undefined = Node's root store. */
  trustedCertificateFile: string | undefined;
}

/** APISIX's default `ssl_protocols` (conf/config-default.yaml). */
export const DEFAULT_SSL_PROTOCOLS = 'TLSv1.2 TLSv1.3';

/**
 * Envoy's default server cipher list for TLS 1.2: ECDHE key exchange, AEAD ciphers only. APISIX's default adds
 * DHE-RSA-AES128/256-GCM, which Node never negotiates without configured DH parameters, so it is left out here.
 */
export const DEFAULT_SSL_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * Removes from any cipher string what RFC 9113 Appendix A prohibits on TLS 1.2: non-ephemeral key exchanges (static
 * RSA, plain and RSA PSK, SRP), anonymous suites, and every non-AEAD cipher (CBC and stream ciphers all carry a
 * SHA-1/SHA-2/MD5 MAC, AEAD suites none). TLS 1.3 suites are all ephemeral and AEAD, so the floor leaves them alone.
 */
export const HTTP2_CIPHER_FLOOR = '!aNULL:!eNULL:!kRSA:!kPSK:!kRSAPSK:!kSRP:!MD5:!SHA1:!SHA256:!SHA384';

const VERSIONS: readonly TlsVersion[] = ['TLSv1.2', 'TLSv1.3'];
/** Names nginx accepts that HTTP/2 does not allow (RFC 9113 §9.2: "MUST use TLS version 1.2 or higher"). */
const TOO_OLD = new Set(['SSLv2', 'SSLv3', 'TLSv1', 'TLSv1.1']);

/** The policy from the validated `apisix.ssl`: protocol names and the cipher string are checked here. */
export function parseTlsPolicy(ssl: SslFile): TlsPolicyConfig {
  const { minVersion, maxVersion } = parseProtocols(ssl.ssl_protocols ?? DEFAULT_SSL_PROTOCOLS);
  const configured = ssl.ssl_ciphers ?? DEFAULT_SSL_CIPHERS;
  if (configured.trim() === '') throw new ConfigError('apisix.ssl.ssl_ciphers must not be empty');
  const ciphers = `${configured}:${HTTP2_CIPHER_FLOOR}`;
  try {
    // OpenSSL parses the string here, at start, rather than at the first handshake.
    createSecureContext({ ciphers, minVersion, maxVersion });
  } catch (err) {
    throw new ConfigError(
      `apisix.ssl.ssl_ciphers ${JSON.stringify(configured)} leaves no cipher suite HTTP/2 may use on ${minVersion}-${maxVersion} ` +
        `(ECDHE or DHE key exchange with an AEAD cipher, RFC 9113 §9.2.2): ${describe(err)}`,
    );
  }
  return {
    minVersion,
    maxVersion,
    ciphers,
    trustedCertificateFile: ssl.ssl_trusted_certificate ?? undefined,
  };
}

/** nginx's form ("TLSv1.2 TLSv1.3") or a YAML list (the form of APISIX's ssl objects). */
function parseProtocols(value: string | string[]): { minVersion: TlsVersion; maxVersion: TlsVersion } {
  const what = 'apisix.ssl.ssl_protocols';
  const names = typeof value === 'string' ? value.split(/[\s,]+/).filter((name) => name !== '') : value;
  if (names.length === 0) throw new ConfigError(`${what} names no protocol; expected TLSv1.2 and/or TLSv1.3`);
  const chosen = new Set<TlsVersion>();
  for (const name of names) {
    if (TOO_OLD.has(name)) {
      throw new ConfigError(`${what}: ${name} is not allowed; HTTP/2 requires TLS 1.2 or later (RFC 9113 §9.2), use TLSv1.2 and/or TLSv1.3`);
    }
    const version = VERSIONS.find((v) => v === name);
    if (version === undefined) throw new ConfigError(`${what}: unknown protocol ${JSON.stringify(name)}; expected TLSv1.2 and/or TLSv1.3`);
    chosen.add(version);
  }
  // With two versions any non-empty subset is a contiguous range, which is what OpenSSL's min/max express.
  const ordered = VERSIONS.filter((v) => chosen.has(v));
  const minVersion = ordered[0] ?? 'TLSv1.2';
  return { minVersion, maxVersion: ordered[ordered.length - 1] ?? minVersion };
}
