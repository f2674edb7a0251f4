/**
 * The data plane's reading of private keys stored encrypted (shared/crypto.ts, apisix-compat §3.1): decrypted
 * before validation with any keyring entry, so SNI contexts get PEM; a key no entry decrypts makes the value
 * invalid and the last good value of its key stays. Upstreams and services are carried in their own maps.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { ConfigStore, type RawKeyValue } from '../../data-plane/config/config-state.ts';
import { encryptSecret } from '../../shared/crypto.ts';
import { silentLogger } from '../../shared/logger.ts';
import { makeCert, type CertAndKey } from '../helpers/certs.ts';

const KEYRING = ['0123456789abcdef', 'edd1c9f0985e76a2'];

function kv(key: string, value: unknown, revision: number): RawKeyValue {
  return { key: Buffer.from(key), value: Buffer.from(JSON.stringify(value)), mod_revision: String(revision) };
}

describe('config state: encrypted private keys and new resource types', () => {
  let pair: CertAndKey;

  before(async () => {
    pair = await makeCert({ sans: ['test.com'] });
  });

  test('decrypts ssl keys encrypted with any keyring entry before validating them', () => {
    const store = new ConfigStore('/apisix', silentLogger(), KEYRING);
    const sealed = encryptSecret(pair.key, [KEYRING[1] ?? '']);
    const state = store.replaceAll([kv('/apisix/ssls/1', { cert: pair.cert, key: sealed, sni: 'test.com' }, 5)], '5');
    assert.equal(state.ssls.get('1')?.value.key, pair.key);
  });

  test('decrypts the client key of an upstream object and of a route inline upstream', () => {
    const store = new ConfigStore('/apisix', silentLogger(), KEYRING);
    const tls = { client_cert: pair.cert, client_key: encryptSecret(pair.key, KEYRING) };
    const upstream = { scheme: 'grpcs', nodes: { '127.0.0.1:1': 1 }, tls };
    const state = store.replaceAll(
      [kv('/apisix/upstreams/u', upstream, 6), kv('/apisix/routes/r', { uri: '/a.B/C', upstream }, 7)],
      '7',
    );
    assert.equal(state.upstreams.get('u')?.value.tls?.client_key, pair.key);
    assert.equal(state.routes.get('r')?.value.upstream?.tls?.client_key, pair.key);
  });

  test('skips a value whose key no entry decrypts, keeping the last good value', () => {
    const store = new ConfigStore('/apisix', silentLogger(), KEYRING);
    store.replaceAll([kv('/apisix/ssls/1', { cert: pair.cert, key: pair.key, sni: 'test.com' }, 5)], '5');
    store.applyPut(kv('/apisix/ssls/1', { cert: pair.cert, key: encryptSecret(pair.key, ['ffffffffffffffff']), sni: 'new.test' }, 6));
    const state = store.commit('6');
    assert.equal(state, undefined, 'an undecryptable value changed the state');
    assert.equal(store.current()?.ssls.get('1')?.value.sni, 'test.com');
  });

  test('carries services and upstreams, including routes that name them by id', () => {
    const store = new ConfigStore('/apisix', silentLogger());
    const state = store.replaceAll(
      [
        kv('/apisix/upstreams/u', { nodes: { '127.0.0.1:1': 1 } }, 2),
        kv('/apisix/services/s', { upstream_id: 'u' }, 3),
        kv('/apisix/routes/r', { uri: '/a.B/C', service_id: 's' }, 4),
      ],
      '4',
    );
    assert.deepEqual([state.upstreams.size, state.services.size, state.routes.size], [1, 1, 1]);
    assert.equal(state.services.get('s')?.value.upstream_id, 'u');
  });
});
