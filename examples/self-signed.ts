/**
 * Self-signed certificates from `selfsigned`: for the example server's grpcs port when no --cert/--key is given,
 * and (through test/helpers/certs.ts) for the tests. Names are split the way X.509 wants them: IP literals become
 * iPAddress SANs (type 7), everything else dNSName SANs (type 2); a client checking an IP target only looks at the
 * former (RFC 6125 §6.2 via Node's tls.checkServerIdentity).
 */
import { isIP } from 'node:net';
import { generate } from 'selfsigned';

export interface SelfSignedOptions {
  /** Subject alternative names; the first one is also the common name. */
  sans: readonly string[];
  /**
   * Mark the certificate as a CA (basicConstraints cA:true, keyCertSign). Not needed for a client to trust a
   * self-signed server certificate as its own root: Node 20's OpenSSL accepts a CA:FALSE self-signed leaf as a
   * trust anchor (checked with grpc-js rootCerts and with tls `ca`). Default false, a plain server certificate.
   */
  ca?: boolean;
  notBefore?: Date;
  notAfter?: Date;
  /** EC P-256 by default: a key in milliseconds, where RSA 2048 takes a good part of a second. */
  keyType?: 'ec' | 'rsa';
}

export interface CertAndKey {
  /** PEM certificate. */
  cert: string;
  /** PEM private key (PKCS#8). */
  key: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** Starts a day early so a clock a little behind on another machine (a container, CI) still accepts it. */
const DEFAULT_BACKDATE_MS = DAY_MS;
const DEFAULT_LIFETIME_MS = 365 * DAY_MS;

export async function selfSignedCert(options: SelfSignedOptions): Promise<CertAndKey> {
  const commonName = options.sans[0] ?? 'localhost';
  const now = Date.now();
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    keyType: options.keyType ?? 'ec',
    algorithm: 'sha256',
    notBeforeDate: options.notBefore ?? new Date(now - DEFAULT_BACKDATE_MS),
    notAfterDate: options.notAfter ?? new Date(now + DEFAULT_LIFETIME_MS),
    extensions: [
      { name: 'basicConstraints', cA: options.ca ?? false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: options.ca ?? false },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      {
        name: 'subjectAltName',
        altNames: options.sans.map((san) => (isIP(san) === 0 ? { type: 2, value: san } : { type: 7, ip: san })),
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}
