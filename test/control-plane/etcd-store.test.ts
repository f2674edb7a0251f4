/**
 * The etcd store on its own, against a real etcd: APISIX's key layout, compare-and-swap writes that retry on a
 * concurrent change, placeholders, and StoreUnavailable for every etcd failure.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { StoreConflict, StoreUnavailable } from '../../shared/errors.ts';
import { INIT_DIR_VALUE, createEtcdStore } from '../../control-plane/store/etcd-store.ts';
import type { ResourceStore, StoredItem } from '../../control-plane/store/resource-store.ts';
import { RESOURCE_TYPES } from '../../shared/etcd-keys.ts';
import { silentLogger } from '../../shared/logger.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { freePort } from '../helpers/ports.ts';

const PREFIX = '/store-test';

describe('etcd store', () => {
  let etcd: EtcdProcess;
  let raw: Etcd3;
  let store: ResourceStore;

  before(async () => {
    etcd = await startEtcd();
    raw = new Etcd3({ hosts: [etcd.endpoint] });
    store = createEtcdStore({ hosts: [etcd.endpoint], prefix: PREFIX, timeoutMs: 3000, log: silentLogger() });
  });

  after(async () => {
    await store.close();
    raw.close();
    await etcd.close();
  });

  beforeEach(async () => {
    await raw.delete().prefix(`${PREFIX}/`).exec();
  });

  it('creates, then replaces, a value at <prefix>/<type>/<id> as JSON text', async () => {
    const created = await store.put('routes', 'r1', () => ({ uri: '/a' }));
    assert.deepEqual(created, { created: true, value: { uri: '/a' } });
    const replaced = await store.put('routes', 'r1', () => ({ uri: '/b' }));
    assert.deepEqual(replaced, { created: false, value: { uri: '/b' } });
    assert.equal(await raw.get(`${PREFIX}/routes/r1`).string(), '{"uri":"/b"}');
  });

  it('passes the stored value and its revisions to build', async () => {
    await store.put('routes', 'r2', () => ({ n: 1 }));
    const seen: (StoredItem | undefined)[] = [];
    await store.put('routes', 'r2', (existing) => {
      seen.push(existing);
      return { n: 2 };
    });
    const kv = (await raw.get(`${PREFIX}/routes/r2`).exec()).kvs[0];
    assert.ok(kv !== undefined);
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0]?.value, { n: 1 });
    assert.equal(seen[0]?.createRevision, Number(kv.create_revision));
    assert.ok((seen[0]?.modRevision ?? Infinity) < Number(kv.mod_revision));
  });

  it('returns the value and etcd revisions from get, and undefined for an absent key', async () => {
    await store.put('routes', 'r3', () => ({ uri: '/c' }));
    const kv = (await raw.get(`${PREFIX}/routes/r3`).exec()).kvs[0];
    assert.ok(kv !== undefined);
    assert.deepEqual(await store.get('routes', 'r3'), {
      value: { uri: '/c' },
      createRevision: Number(kv.create_revision),
      modRevision: Number(kv.mod_revision),
    });
    assert.equal(await store.get('routes', 'absent'), undefined);
  });

  it('re-reads and rebuilds when another writer changes the key between read and write', async () => {
    let calls = 0;
    const result = await store.put('routes', 'race', async (existing) => {
      calls += 1;
      if (calls === 1) {
        // Another writer creates the key after the store read it as absent: the create must not overwrite it.
        await raw.put(`${PREFIX}/routes/race`).value('{"n":1}');
        return { n: 2 };
      }
      const n = (existing?.value as { n: number } | undefined)?.n ?? 0;
      return { n: n + 10 };
    });
    assert.equal(calls, 2);
    assert.equal(result.created, false);
    assert.equal(await raw.get(`${PREFIX}/routes/race`).string(), '{"n":11}');
  });

  it('gives up with StoreConflict when the key keeps changing', async () => {
    await store.put('routes', 'busy', () => ({ n: 0 }));
    let writes = 0;
    const attempt = store.put('routes', 'busy', async () => {
      writes += 1;
      // A competing write lands after every read and before every transaction of the store.
      await raw.put(`${PREFIX}/routes/busy`).value(JSON.stringify({ n: writes }));
      return { n: -1 };
    });
    await assert.rejects(attempt, StoreConflict);
    assert.ok(writes > 1);
    assert.notEqual(await raw.get(`${PREFIX}/routes/busy`).string(), '{"n":-1}');
  });

  it('rethrows what build throws and writes nothing', async () => {
    const failure = new Error('refused by build');
    await assert.rejects(
      store.put('routes', 'nope', () => {
        throw failure;
      }),
      (err: unknown) => err === failure,
    );
    assert.equal(await raw.get(`${PREFIX}/routes/nope`).string(), null);
  });

  it('deletes a key, reporting whether there was one', async () => {
    await store.put('routes', 'gone', () => ({ uri: '/d' }));
    assert.equal(await store.delete('routes', 'gone'), true);
    assert.equal(await raw.get(`${PREFIX}/routes/gone`).string(), null);
    assert.equal(await store.delete('routes', 'gone'), false);
  });

  it('lists one type in key order, skipping the placeholder, non-JSON values, nested keys and other types', async () => {
    await store.ensureDirs();
    await store.put('routes', 'b', () => ({ uri: '/b' }));
    await store.put('routes', 'a', () => ({ uri: '/a' }));
    await store.put('ssls', 's', () => ({ sni: 'x' }));
    await raw.put(`${PREFIX}/routes/broken`).value('{not json');
    await raw.put(`${PREFIX}/routes/nested/key`).value('{}');
    const items = await store.list('routes');
    assert.deepEqual(
      items.map((item) => [item.id, item.value]),
      [
        ['a', { uri: '/a' }],
        ['b', { uri: '/b' }],
      ],
    );
  });

  it('writes the init_dir placeholder of every resource type, once', async () => {
    await store.ensureDirs();
    const first = (await raw.get(`${PREFIX}/routes/`).exec()).kvs[0];
    await store.ensureDirs();
    const second = (await raw.get(`${PREFIX}/routes/`).exec()).kvs[0];
    assert.equal(second?.mod_revision, first?.mod_revision);
    for (const type of RESOURCE_TYPES) {
      assert.equal(await raw.get(`${PREFIX}/${type}/`).string(), INIT_DIR_VALUE);
    }
  });

  it('fails with StoreUnavailable when etcd cannot be reached', async () => {
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const lost = createEtcdStore({ hosts: [nowhere], prefix: PREFIX, timeoutMs: 2000, log: silentLogger() });
    try {
      await assert.rejects(lost.get('routes', '1'), StoreUnavailable);
      await assert.rejects(lost.put('routes', '1', () => ({})), StoreUnavailable);
    } finally {
      await lost.close();
    }
  });

  it('closes idempotently and fails later calls with StoreUnavailable', async () => {
    const closing = createEtcdStore({ hosts: [etcd.endpoint], prefix: PREFIX, timeoutMs: 2000, log: silentLogger() });
    await closing.close();
    await closing.close();
    await assert.rejects(closing.list('routes'), StoreUnavailable);
  });
});
