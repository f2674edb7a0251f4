/**
 * The certificate served to TLS clients that send no SNI (or one no `ssls` object matches) when
 * `apisix.ssl.fallback_sni` does not name a configured certificate. APISIX aborts such handshakes; this gateway
 * serves a default certificate instead, so the seed's `grpcurl -insecure … 127.0.0.1:9443` works out of the box:
 * the PEM files `apisix.ssl.default_cert`/`default_key` if configured, else a self-signed one made at start.
 */
import { readFile } from 'node:fs/promises';

export interface PemPair {
  cert: string;
  key: string;
}

const SELF_SIGNED_DAYS = 365;

export async function loadDefaultCert(certFile: string | undefined, keyFile: string | undefined): Promise<PemPair> {
  if (certFile !== undefined && keyFile !== undefined) {
    return { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
  }
  const notAfter = new Date(Date.now() + SELF_SIGNED_DAYS * 86_400_000);
  // Loaded only here: selfsigned and its X.509 libraries are large, and worker processes get the primary's pair.
  const { generate } = await import('selfsigned');
  const pems = await generate([{ name: 'commonName', value: 'grpc-gateway default certificate' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notAfterDate: notAfter,
    extensions: [
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}
