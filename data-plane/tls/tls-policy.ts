/**
 * The TLS options of both legs, from the policy of shared/config-tls.ts.
 *
 * Downstream (the TLS listeners): versions and ciphers go into the server's options, into every context the server
 * is given later (setSecureContext when the certificate for clients without SNI changes) and into every context
 * SNICallback can select (the default context and the SNI table's). With Node's OpenSSL the server's own options are
 * the ones that count: a context chosen in SNICallback swaps the certificate and key (SSL_set_SSL_CTX) but the
 * handshake keeps the cipher list and version bounds of the server's context. Contexts carry the policy anyway, so
 * that no path (and no future engine using a context directly) serves a handshake without it.
 *
 * Upstream (`grpcs` nodes): TLS 1.2 at least, set explicitly so that a process started with `--tls-min-v1.0` does not
 * lower it, and Node's default client cipher list, which offers TLS 1.3 and ECDHE-AEAD suites first; the upstream
 * picks, and an internal backend limited to older suites still connects. With `tls.verify: true` the node's
 * certificate is checked against `apisix.ssl.ssl_trusted_certificate` when set: like nginx's
 * `lua_ssl_trusted_certificate` (APISIX) and Node's own `ca` option, the bundle REPLACES the default root store,
 * so a gateway trusting a private CA does not also trust every public one; to trust both, put both in the file.
 */
import { readFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import type { SecureVersion } from 'node:tls';
import type { TlsPolicyConfig } from '../../shared/config-tls.ts';
import { ConfigError, describe } from '../../shared/errors.ts';

/** What createSecureServer, createSecureContext and setSecureContext take from the policy. */
export interface ListenerTlsOptions {
  readonly minVersion: SecureVersion;
  readonly maxVersion: SecureVersion;
  readonly ciphers: string;
  /** The server's order of preference (ECDHE-ECDSA AES-128-GCM first), as Envoy and APISIX's nginx do. */
  readonly honorCipherOrder: true;
}

export function listenerTlsOptions(policy: TlsPolicyConfig): ListenerTlsOptions {
  return { minVersion: policy.minVersion, maxVersion: policy.maxVersion, ciphers: policy.ciphers, honorCipherOrder: true };
}

/** What the session pool adds to every `grpcs` dial. */
export interface UpstreamTlsDefaults {
  /** The trusted CA bundle for `tls.verify: true`; undefined = Node's root store. */
  readonly ca: string | undefined;
}

export const UPSTREAM_MIN_VERSION: SecureVersion = 'TLSv1.2';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * Reads `apisix.ssl.ssl_trusted_certificate` at start. A missing file, or one without a certificate that parses, is a
 * configuration error: starting without it would fail every verified upstream call, far from the cause.
 */
export async function loadUpstreamTls(file: string | undefined): Promise<UpstreamTlsDefaults> {
  if (file === undefined) return { ca: undefined };
  const what = `apisix.ssl.ssl_trusted_certificate (${file})`;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ${what}: ${describe(err)}`);
  }
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ConfigError(`${what} holds no PEM certificate`);
  blocks.forEach((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new ConfigError(`${what}: certificate ${i + 1} of ${blocks.length} does not parse: ${describe(err)}`);
    }
  });
  return { ca: blocks.join('\n') };
}
