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
    const created = await store.put('routes', 'r1', () => ({ value: { uri: '/a' } }));
    assert.deepEqual(created, { created: true, value: { uri: '/a' } });
    const replaced = await store.put('routes', 'r1', () => ({ value: { uri: '/b' } }));
    assert.deepEqual(replaced, { created: false, value: { uri: '/b' } });
    assert.equal(await raw.get(`${PREFIX}/routes/r1`).string(), '{"uri":"/b"}');
  });

  it('passes the stored value and its revisions to build', async () => {
    await store.put('routes', 'r2', () => ({ value: { n: 1 } }));
    const seen: (StoredItem | undefined)[] = [];
    await store.put('routes', 'r2', (existing) => {
      seen.push(existing);
      return { value: { n: 2 } };
    });
    const kv = (await raw.get(`${PREFIX}/routes/r2`).exec()).kvs[0];
    assert.ok(kv !== undefined);
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0]?.value, { n: 1 });
    assert.equal(seen[0].createRevision, Number(kv.create_revision));
    assert.ok(seen[0].modRevision < Number(kv.mod_revision));
  });

  it('returns the value and etcd revisions from get, and undefined for an absent key', async () => {
    await store.put('routes', 'r3', () => ({ value: { uri: '/c' } }));
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
        return { value: { n: 2 } };
      }
      const n = (existing?.value as { n: number } | undefined)?.n ?? 0;
      return { value: { n: n + 10 } };
    });
    assert.equal(calls, 2);
    assert.equal(result.created, false);
    assert.equal(await raw.get(`${PREFIX}/routes/race`).string(), '{"n":11}');
  });

  it('gives up with StoreConflict when the key keeps changing', async () => {
    await store.put('routes', 'busy', () => ({ value: { n: 0 } }));
    let writes = 0;
    const attempt = store.put('routes', 'busy', async () => {
      writes += 1;
      // A competing write lands after every read and before every transaction of the store.
      await raw.put(`${PREFIX}/routes/busy`).value(JSON.stringify({ n: writes }));
      return { value: { n: -1 } };
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
    await store.put('routes', 'gone', () => ({ value: { uri: '/d' } }));
    assert.equal(await store.delete('routes', 'gone'), true);
    assert.equal(await raw.get(`${PREFIX}/routes/gone`).string(), null);
    assert.equal(await store.delete('routes', 'gone'), false);
  });

  it('lists one type in key order, skipping the placeholder, non-JSON values, nested keys and other types', async () => {
    await store.ensureDirs();
    await store.put('routes', 'b', () => ({ value: { uri: '/b' } }));
    await store.put('routes', 'a', () => ({ value: { uri: '/a' } }));
    await store.put('ssls', 's', () => ({ value: { sni: 'x' } }));
    await raw.put(`${PREFIX}/routes/broken`).value('{not json');
    await raw.put(`${PREFIX}/routes/nested/key`).value('{}');
    const { items } = await store.list('routes');
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

  it('draws 20-digit ids from the revision of a write to <prefix>/gen_id, as APISIX does', async () => {
    const first = await store.nextId();
    const second = await store.nextId();
    assert.match(first, /^\d{20}$/);
    assert.ok(BigInt(second) > BigInt(first));
    const kv = (await raw.get(`${PREFIX}/gen_id`).exec()).kvs[0];
    assert.equal(String(kv?.mod_revision).padStart(20, '0'), second);
  });

  it('commits only while an item precondition holds, rebuilding once it changed', async () => {
    await store.put('upstreams', 'u', () => ({ value: { v: 1 } }));
    let builds = 0;
    await store.put('routes', 'r', async () => {
      builds += 1;
      const upstream = await store.get('upstreams', 'u');
      if (builds === 1) await raw.put(`${PREFIX}/upstreams/u`).value('{"v":2}');
      return { value: { saw: upstream?.value }, preconditions: [{ kind: 'item', type: 'upstreams', id: 'u', modRevision: upstream?.modRevision ?? 0 }] };
    });
    assert.equal(builds, 2);
    assert.equal(await raw.get(`${PREFIX}/routes/r`).string(), '{"saw":{"v":2}}');
  });

  it('commits only while no object of a type changed since a revision, ignoring deletions', async () => {
    await store.put('routes', 'old', () => ({ value: {} }));
    const { revision } = await store.list('routes');
    await raw.delete().key(`${PREFIX}/routes/old`);
    // A deletion after the scan does not invalidate it.
    assert.equal(await store.delete('upstreams', 'none'), false);
    await store.put('upstreams', 'u', () => ({ value: {} }));
    const kept = await store.delete('upstreams', 'u', () => [{ kind: 'unchanged-since', type: 'routes', revision }]);
    assert.equal(kept, true);
    // A route written after the scan does: every attempt's guard fails until the store gives up.
    await store.put('upstreams', 'u', () => ({ value: {} }));
    const stale = (await store.list('routes')).revision;
    await store.put('routes', 'new', () => ({ value: {} }));
    await assert.rejects(store.delete('upstreams', 'u', () => [{ kind: 'unchanged-since', type: 'routes', revision: stale }]), StoreConflict);
    assert.notEqual(await raw.get(`${PREFIX}/upstreams/u`).string(), null);
  });

  it('rethrows what a delete check throws and deletes nothing', async () => {
    await store.put('services', 's', () => ({ value: {} }));
    const refusal = new Error('still referenced');
    await assert.rejects(store.delete('services', 's', () => {
      throw refusal;
    }), (err: unknown) => err === refusal);
    assert.notEqual(await raw.get(`${PREFIX}/services/s`).string(), null);
  });

  it('fails with StoreUnavailable when etcd cannot be reached', async () => {
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const lost = createEtcdStore({ hosts: [nowhere], prefix: PREFIX, timeoutMs: 2000, log: silentLogger() });
    try {
      await assert.rejects(lost.get('routes', '1'), StoreUnavailable);
      await assert.rejects(lost.put('routes', '1', () => ({ value: {} })), StoreUnavailable);
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
