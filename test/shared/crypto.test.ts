/**
 * Private-key encryption at rest, checked against APISIX's own test vector and against OpenSSL's command line, so
 * "compatible" means byte-for-byte, not "round-trips with itself".
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import {
  SECRET_FIELDS,
  aesDecrypt,
  aesEncrypt,
  decryptSecret,
  decryptSecrets,
  encryptSecret,
  encryptSecrets,
  keyringEntryProblem,
  stripSecrets,
} from '../../shared/crypto.ts';
import { SecretDecryptFailed } from '../../shared/errors.ts';
import { RESOURCE_TYPES } from '../../shared/etcd-keys.ts';

const PEM = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n';
const APISIX_ENTRY = 'edd1c9f0985e76a2';
const OTHER_ENTRY = '0123456789abcdef';
const LONG_ENTRY = '0123456789abcdef0123456789abcdef';

/** OpenSSL's `enc` with the entry as key and IV (hex), as an independent implementation of the same scheme. */
function opensslEncrypt(text: string, entry: string): string {
  const cipher = entry.length === 32 ? '-aes-256-cbc' : '-aes-128-cbc';
  const hexKey = Buffer.from(entry).toString('hex');
  const hexIv = Buffer.from(entry).subarray(0, 16).toString('hex');
  return execFileSync('openssl', ['enc', cipher, '-K', hexKey, '-iv', hexIv, '-base64', '-A'], { input: text }).toString().trim();
}

describe('crypto', () => {
  test("matches APISIX's test vector: csrf key 'userkey' under edd1c9f0985e76a2 (t/plugin/csrf data encryption)", () => {
    assert.equal(aesEncrypt('userkey', APISIX_ENTRY), 'mt39FazQccyMqt4ctoRV7w==');
    assert.equal(aesDecrypt('mt39FazQccyMqt4ctoRV7w==', APISIX_ENTRY), 'userkey');
  });

  test('agrees with openssl enc for 16-byte (AES-128) and 32-byte (AES-256) entries', () => {
    assert.equal(encryptSecret(PEM, [OTHER_ENTRY]), opensslEncrypt(PEM, OTHER_ENTRY));
    assert.equal(encryptSecret(PEM, [LONG_ENTRY]), opensslEncrypt(PEM, LONG_ENTRY));
  });

  test('encrypts with the first entry and decrypts with any entry of the keyring', () => {
    const sealed = encryptSecret(PEM, [OTHER_ENTRY, APISIX_ENTRY]);
    assert.equal(aesDecrypt(sealed, OTHER_ENTRY), PEM);
    assert.equal(decryptSecret(sealed, [APISIX_ENTRY, OTHER_ENTRY]), PEM);
  });

  test('leaves plain PEM alone on decrypt and already-encrypted values alone on encrypt', () => {
    assert.equal(decryptSecret(PEM, [OTHER_ENTRY]), PEM);
    const sealed = encryptSecret(PEM, [OTHER_ENTRY]);
    assert.equal(encryptSecret(sealed, [OTHER_ENTRY]), sealed);
  });

  test('stores in clear when the keyring is empty', () => {
    assert.equal(encryptSecret(PEM, []), PEM);
  });

  test('refuses a value no entry decrypts to PEM, naming the field', () => {
    const sealed = encryptSecret(PEM, [OTHER_ENTRY]);
    assert.throws(() => decryptSecret(sealed, [APISIX_ENTRY], 'tls.client_key'), (err: unknown) => {
      return err instanceof SecretDecryptFailed && err.message.includes('"tls.client_key"');
    });
    // A non-PEM plaintext is refused even when the padding is right: it is not a private key.
    assert.throws(() => decryptSecret('mt39FazQccyMqt4ctoRV7w==', [APISIX_ENTRY]), SecretDecryptFailed);
  });

  test('accepts only 16- and 32-byte keyring entries', () => {
    assert.equal(keyringEntryProblem(OTHER_ENTRY), undefined);
    assert.equal(keyringEntryProblem(LONG_ENTRY), undefined);
    assert.match(keyringEntryProblem('short') ?? '', /got 5/);
  });

  test('encrypts, decrypts and strips exactly the secret fields of each resource type', () => {
    const ssl = { cert: 'C', key: PEM, keys: [PEM, PEM], snis: ['a'] };
    const sealed = encryptSecrets('ssls', ssl, [OTHER_ENTRY]) as typeof ssl;
    assert.notEqual(sealed.key, PEM);
    assert.ok(sealed.keys.every((k) => k !== PEM));
    assert.equal(sealed.cert, 'C');
    assert.deepEqual(decryptSecrets('ssls', sealed, [OTHER_ENTRY]), ssl);
    assert.deepEqual(stripSecrets('ssls', sealed), { cert: 'C', snis: ['a'] });
    assert.deepEqual(ssl.keys, [PEM, PEM], 'the input was mutated');

    const route = { uri: '/a', upstream: { nodes: {}, tls: { client_cert: 'C', client_key: PEM } } };
    const sealedRoute = encryptSecrets('routes', route, [OTHER_ENTRY]) as typeof route;
    assert.notEqual(sealedRoute.upstream.tls.client_key, PEM);
    assert.deepEqual(stripSecrets('routes', sealedRoute), { uri: '/a', upstream: { nodes: {}, tls: { client_cert: 'C' } } });
    assert.deepEqual(stripSecrets('upstreams', { tls: { client_key: PEM, verify: true } }), { tls: { verify: true } });
  });

  test("limit-count's redis_password is a text secret wherever plugins are configured", () => {
    for (const type of ['routes', 'services', 'global_rules', 'plugin_configs'] as const) {
      const value = { plugins: { 'limit-count': { count: 1, time_window: 1, policy: 'redis', redis_host: 'r', redis_password: 'pw' } } };
      const sealed = encryptSecrets(type, value, [OTHER_ENTRY]) as typeof value;
      assert.notEqual(sealed.plugins['limit-count'].redis_password, 'pw', type);
      assert.deepEqual(decryptSecrets(type, sealed, [OTHER_ENTRY]), value, type);
      assert.equal((stripSecrets(type, sealed) as typeof value).plugins['limit-count'].redis_password, undefined, type);
    }
  });

  test('names secret fields for every resource type that holds a secret, and none for those that cannot', () => {
    // Every type that holds plugins may hold limit-count's Redis password; plugin metadata and protos hold none.
    const without = new Set(['plugin_metadata', 'protos']);
    for (const type of RESOURCE_TYPES) assert.equal(SECRET_FIELDS[type].length > 0, !without.has(type), type);
  });
});
