/**
 * The data plane's reading of private keys stored encrypted (shared/crypto.ts, as APISIX stores them): decrypted
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

describe('config state: copy-on-write per type', () => {
  function seeded(): ConfigStore {
    const store = new ConfigStore('/apisix', silentLogger());
    store.replaceAll(
      [
        kv('/apisix/upstreams/u', { nodes: { '127.0.0.1:1': 1 } }, 2),
        kv('/apisix/routes/a', { uri: '/a.B/C', upstream_id: 'u' }, 3),
        kv('/apisix/routes/b', { uri: '/b.B/C', upstream_id: 'u' }, 4),
      ],
      '4',
    );
    return store;
  }

  test('a route change shares the maps of the other types and the unchanged items with the previous state', () => {
    const store = seeded();
    const before = store.current();
    store.applyPut(kv('/apisix/routes/b', { uri: '/b.B/D', upstream_id: 'u' }, 5));
    const after = store.commit('5');
    assert.ok(before !== undefined && after !== undefined);
    assert.equal(after.upstreams, before.upstreams);
    assert.equal(after.services, before.services);
    assert.equal(after.ssls, before.ssls);
    assert.notEqual(after.routes, before.routes);
    assert.equal(after.routes.get('a'), before.routes.get('a'));
    assert.equal(after.routes.get('b')?.value.uri, '/b.B/D');
  });

  test('states handed out stay as they were when later changes are applied and committed', () => {
    const store = seeded();
    const before = store.current();
    store.applyDelete(kv('/apisix/routes/a', {}, 5));
    store.applyPut(kv('/apisix/upstreams/u', { nodes: { '127.0.0.1:2': 1 } }, 6));
    store.applyPut(kv('/apisix/routes/c', { uri: '/c.B/C', upstream_id: 'u' }, 7));
    const after = store.commit('7');
    assert.ok(before !== undefined && after !== undefined);
    assert.deepEqual([...before.routes.keys()].sort(), ['a', 'b']);
    assert.deepEqual(Object.keys(before.upstreams.get('u')?.value.nodes ?? {}), ['127.0.0.1:1']);
    assert.deepEqual([...after.routes.keys()].sort(), ['b', 'c']);
    assert.deepEqual(Object.keys(after.upstreams.get('u')?.value.nodes ?? {}), ['127.0.0.1:2']);
  });

  test('a delete of a key that is not there changes nothing', () => {
    const store = seeded();
    store.applyDelete(kv('/apisix/routes/none', {}, 5));
    assert.equal(store.dirty, false);
    assert.equal(store.commit('5'), undefined);
  });
});
