/**
 * Certificates that test/helpers/certs.ts cannot make (its `selfsigned` generator only does EC P-256 and RSA 2048):
 * an RSA-1024 and a DSA certificate, from the `openssl` CLI, in a temporary directory removed right after. Cached
 * per process by kind, since DSA parameter generation takes a moment.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { CertAndKey } from '../helpers/certs.ts';

const run = promisify(execFile);

/** Bounds every openssl call, so a wedged CLI fails the test instead of hanging it. */
const OPENSSL_TIMEOUT_MS = 30_000;

/** `-newkey` arguments per kind; DSA needs its parameters generated first. */
const KINDS = {
  rsa1024: ['-newkey', 'rsa:1024'],
  dsa: ['-newkey', 'dsa:PARAMS'],
} as const;

export type OpensslCertKind = keyof typeof KINDS;

const cache = new Map<OpensslCertKind, Promise<CertAndKey>>();

export function opensslCert(kind: OpensslCertKind): Promise<CertAndKey> {
  let pending = cache.get(kind);
  if (pending === undefined) {
    pending = generate(kind);
    pending.catch(() => cache.delete(kind));
    cache.set(kind, pending);
  }
  return pending;
}

async function generate(kind: OpensslCertKind): Promise<CertAndKey> {
  const dir = await mkdtemp(join(tmpdir(), 'admin-certs-'));
  const options = { timeout: OPENSSL_TIMEOUT_MS };
  try {
    const params = join(dir, 'dsa-params.pem');
    if (kind === 'dsa') {
      await run('openssl', ['genpkey', '-genparam', '-algorithm', 'DSA', '-pkeyopt', 'dsa_paramgen_bits:2048', '-out', params], options);
    }
    const newkey = KINDS[kind].map((arg) => arg.replace('PARAMS', params));
    const keyFile = join(dir, 'key.pem');
    const certFile = join(dir, 'cert.pem');
    await run(
      'openssl',
      ['req', '-x509', ...newkey, '-nodes', '-keyout', keyFile, '-out', certFile, '-subj', '/CN=test.com', '-days', '30', '-addext', 'subjectAltName=DNS:test.com'],
      options,
    );
    return { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
