/**
 * Certificates for tests: self-signed, EC P-256, valid from a day ago for a year, with IP literals as iPAddress SANs
 * and names as dNSName SANs. Cached per process by their parameters, so a suite asks for `test.com` as often as it
 * likes and pays for one key. A self-signed certificate is its own root: pass `cert` as the client's `rootCert`.
 */
import { selfSignedCert, type CertAndKey } from '../../examples/self-signed.ts';

export type { CertAndKey };

export interface MakeCertOptions {
  /** The first one is also the common name. */
  sans: readonly string[];
  /** basicConstraints cA:true (a root for mutual TLS client certificates, for instance). Default false. */
  ca?: boolean;
  /** Default 'ec'; 'rsa' (2048) when a test is about RSA. */
  keyType?: 'ec' | 'rsa';
}

const DAY_MS = 24 * 60 * 60 * 1000;
const cache = new Map<string, Promise<CertAndKey>>();

export function makeCert(options: MakeCertOptions): Promise<CertAndKey> {
  const ca = options.ca ?? false;
  const keyType = options.keyType ?? 'ec';
  const cacheKey = JSON.stringify([options.sans, ca, keyType]);
  let pending = cache.get(cacheKey);
  if (pending === undefined) {
    pending = selfSignedCert({ sans: options.sans, ca, keyType });
    // A failed generation must not poison the cache for the rest of the run.
    pending.catch(() => cache.delete(cacheKey));
    cache.set(cacheKey, pending);
  }
  return pending;
}

/** Expired a year ago (valid two years ago to one year ago): for certificate validation tests. Not cached. */
export function makeExpiredCert(options: { sans?: readonly string[] } = {}): Promise<CertAndKey> {
  const now = Date.now();
  return selfSignedCert({
    sans: options.sans ?? ['test.com'],
    notBefore: new Date(now - 730 * DAY_MS),
    notAfter: new Date(now - 365 * DAY_MS),
  });
}
