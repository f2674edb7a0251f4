/**
 * Certificates the data plane could not serve (issue #11 case 8): they used to be accepted with 201 and then skipped
 * by every replica. The admin API now loads every cert/key pair into a TLS context at write time
 * (shared/tls-check.ts, the loader the SNI table uses), so RSA-1024 (below OpenSSL's security level 2), DSA, a key
 * that does not match, a second pair of the same key type and a certificate followed by a corrupt PEM block are a
 * 400 that writes nothing; a valid EC certificate with an RSA-2048 extra pair is stored and served.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { SniTable } from '../../data-plane/tls/sni-table.ts';
import { decryptSecrets } from '../../shared/crypto.ts';
import { silentLogger } from '../../shared/logger.ts';
import type { SslConf } from '../../shared/schema/ssl.ts';
import { makeCert, type CertAndKey } from '../helpers/certs.ts';
import { KEYRING, admin } from '../control-plane/admin-fixture.ts';
import { assertLegitimatePutWorks, assertRefused, storedValue, useAdminFixture } from './admin-kit.ts';
import { opensslCert } from './admin-openssl-certs.ts';

/** A PEM block with the right armour and a body that is not DER: what `cat good.pem junk.pem` produces. */
const JUNK_PEM_BLOCK = '-----BEGIN CERTIFICATE-----\nMIIBjunkjunkjunkjunk\n-----END CERTIFICATE-----\n';

describe('admin API: certificates the data plane could not serve', () => {
  const fixture = useAdminFixture({ seedRoute: false });
  let ec: CertAndKey;
  let rsa: CertAndKey;
  let rsa1024: CertAndKey;
  let dsa: CertAndKey;

  before(async () => {
    ec = await makeCert({ sans: ['test.com'] });
    rsa = await makeCert({ sans: ['test.com'], keyType: 'rsa' });
    rsa1024 = await opensslCert('rsa1024');
    dsa = await opensslCert('dsa');
  });

  it('refuses an RSA-1024 certificate, which OpenSSL at security level 2 will not load', async () => {
    const body = { ...rsa1024, sni: 'test.com' };
    await assertRefused(fixture(), { method: 'PUT', url: '/apisix/admin/ssls/1', body }, 'invalid configuration: key too small: rsa 1024 bits, expected at least 2048');
    await assertLegitimatePutWorks(fixture());
  });

  it('refuses a DSA certificate, which no TLS 1.3 or default TLS 1.2 suite can use', async () => {
    const body = { ...dsa, sni: 'test.com' };
    await assertRefused(fixture(), { method: 'PUT', url: '/apisix/admin/ssls/1', body }, 'invalid configuration: unsupported key type dsa');
    await assertLegitimatePutWorks(fixture());
  });

  it('refuses a valid certificate followed by a corrupt PEM block', async () => {
    const body = { cert: `${ec.cert.trimEnd()}\n${JUNK_PEM_BLOCK}`, key: ec.key, sni: 'test.com' };
    await assertRefused(fixture(), { method: 'PUT', url: '/apisix/admin/ssls/1', body }, 'invalid configuration: failed to load the certificate into a TLS context');
    await assertLegitimatePutWorks(fixture());
  });

  it('refuses a key that does not match its certificate in an extra pair', async () => {
    const body = { ...ec, certs: [rsa.cert], keys: [ec.key], sni: 'test.com' };
    await assertRefused(
      fixture(),
      { method: 'PUT', url: '/apisix/admin/ssls/1', body },
      'invalid configuration: failed to handle cert-key pair[1]: the private key does not match the certificate',
    );
    await assertLegitimatePutWorks(fixture());
  });

  it('refuses an RSA-1024 extra pair beside a good certificate', async () => {
    const body = { ...ec, certs: [rsa1024.cert], keys: [rsa1024.key], sni: 'test.com' };
    await assertRefused(fixture(), { method: 'POST', url: '/apisix/admin/ssls', body }, 'failed to handle cert-key pair[1]: key too small');
    await assertLegitimatePutWorks(fixture());
  });

  it('refuses a second pair of the same key type, which OpenSSL would load over the first', async () => {
    const body = { ...ec, certs: [ec.cert], keys: [ec.key], sni: 'test.com' };
    await assertRefused(fixture(), { method: 'PUT', url: '/apisix/admin/ssls/1', body }, 'failed to handle cert-key pair[1]: a second ec certificate would replace "cert"');
    await assertLegitimatePutWorks(fixture());
  });

  it('refuses an RSA-1024 client certificate for upstream mTLS, inline or as an ssl object', async () => {
    const upstream = { scheme: 'grpcs', nodes: { '127.0.0.1:50051': 1 }, tls: { client_cert: rsa1024.cert, client_key: rsa1024.key } };
    await assertRefused(fixture(), { method: 'PUT', url: '/apisix/admin/upstreams/1', body: upstream }, 'property "tls" validation failed: key too small');
    const clientSsl = { ...rsa1024, type: 'client' };
    await assertRefused(fixture(), { method: 'PUT', url: '/apisix/admin/ssls/client', body: clientSsl }, 'key too small');
    await assertLegitimatePutWorks(fixture());
  });

  it('stores an EC certificate with an RSA-2048 extra pair, and the SNI table loads what was stored', async () => {
    const body = { ...ec, certs: [rsa.cert], keys: [rsa.key], snis: ['test.com'] };
    const res = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/ssls/1', body });
    assert.equal(res.statusCode, 201, res.body);
    const value = decryptSecrets('ssls', await storedValue(fixture(), 'ssls/1'), KEYRING) as SslConf;
    const table = new SniTable([{ id: '1', value, modRevision: '1' }], undefined, silentLogger());
    const served = table.lookup('test.com');
    assert.ok(served !== undefined, 'the SNI table skipped a certificate the admin API accepted');
    assert.deepEqual(served.cert, [ec.cert, rsa.cert]);
  });
});
