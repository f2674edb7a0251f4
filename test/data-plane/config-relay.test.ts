/**
 * The config relay between a primary and its workers (data-plane/config/relay.ts), without processes: states from a
 * real ConfigStore (the etcd source's decoder), deltas through JSON as the cluster IPC channel carries them, and the
 * worker's copy checked item by item, with the identity of unchanged items kept on the worker's side too (the
 * snapshot build reuses what they resolved to).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigStore, type ConfigState, type RawKeyValue } from '../../data-plane/config/config-state.ts';
import { ConfigRelay, RelayedConfigSource, applyDelta, diffStates, type RelayMessage } from '../../data-plane/config/relay.ts';
import { silentLogger } from '../../shared/logger.ts';

const kv = (key: string, value: unknown, rev: number): RawKeyValue => ({ key: Buffer.from(key), value: Buffer.from(JSON.stringify(value)), mod_revision: String(rev) });
const route = (node: string) => ({ uri: '/helloworld.Greeter/*', upstream: { nodes: { [node]: 1 } } });
const upstream = (node: string) => ({ nodes: { [node]: 1 } });

/** What crosses the IPC channel: JSON. */
const overIpc = <T>(message: T): T => JSON.parse(JSON.stringify(message)) as T;

/** The values of every item, type by type, for comparing a worker's copy with the primary's state. */
function contents(state: ConfigState): unknown {
  return {
    revision: state.revision,
    routes: [...state.routes.values()],
    upstreams: [...state.upstreams.values()],
    services: [...state.services.values()],
    ssls: [...state.ssls.values()],
  };
}

describe('config relay', () => {
  test('a delta carries only what changed, and the copy it builds equals the source state', () => {
    const store = new ConfigStore('/apisix', silentLogger());
    const first = store.replaceAll([kv('/apisix/routes/1', route('a:1'), 2), kv('/apisix/routes/2', route('b:1'), 3), kv('/apisix/upstreams/u', upstream('c:1'), 4)], '4');
    const full = overIpc(diffStates(undefined, first));
    assert.equal(full.full, true);
    assert.deepEqual(Object.keys(full.types).sort(), ['routes', 'upstreams']);
    let copy = applyDelta(undefined, full);
    assert.deepEqual(contents(copy), contents(first));

    store.applyPut(kv('/apisix/routes/2', route('b:2'), 5));
    store.applyDelete(kv('/apisix/routes/1', '', 6));
    store.applyPut(kv('/apisix/routes/3', route('d:1'), 7));
    const second = store.commit('7');
    assert.ok(second !== undefined);
    const delta = overIpc(diffStates(first, second));
    assert.equal(delta.full, false);
    assert.deepEqual(Object.keys(delta.types), ['routes'], 'upstreams did not change: not sent');
    assert.deepEqual(delta.types.routes?.put.map((i) => i.id).sort(), ['2', '3']);
    assert.deepEqual(delta.types.routes.deleted, ['1']);
    const previous = copy;
    copy = applyDelta(copy, delta);
    assert.deepEqual(contents(copy), contents(second));
    assert.equal(copy.upstreams, previous.upstreams, 'an unchanged type keeps its map');
    assert.equal(copy.revision, '7');
    assert.ok(Object.isFrozen(copy) && Object.isFrozen(copy.routes.get('2')));
  });

  test('an unchanged item keeps its identity in the copy, and the previous copy is left as it was', () => {
    const store = new ConfigStore('/apisix', silentLogger());
    const first = store.replaceAll([kv('/apisix/routes/1', route('a:1'), 2), kv('/apisix/routes/2', route('b:1'), 3)], '3');
    const copy1 = applyDelta(undefined, overIpc(diffStates(undefined, first)));
    store.applyPut(kv('/apisix/routes/2', route('b:2'), 4));
    const second = store.commit('4');
    assert.ok(second !== undefined);
    const copy2 = applyDelta(copy1, overIpc(diffStates(first, second)));
    assert.equal(copy2.routes.get('1'), copy1.routes.get('1'), 'route 1 did not change: the same object');
    assert.notEqual(copy2.routes.get('2'), copy1.routes.get('2'));
    assert.deepEqual(copy1.routes.get('2')?.value, first.routes.get('2')?.value, 'the older copy is untouched');
  });

  test('a worker that asks before the first state gets it whole when it comes; a worker that asks later gets the current state whole', () => {
    let connected = false;
    const relay = new ConfigRelay(() => ({ connected, since: 1 }));
    const early: RelayMessage[] = [];
    const late: RelayMessage[] = [];
    relay.request({ send: (m) => early.push(overIpc(m)) });
    assert.equal(early.length, 0, 'nothing to send before the first state');

    const store = new ConfigStore('/apisix', silentLogger());
    const first = store.replaceAll([kv('/apisix/routes/1', route('a:1'), 2)], '2');
    connected = true;
    relay.publish(first);
    store.applyPut(kv('/apisix/routes/2', route('b:1'), 3));
    const second = store.commit('3');
    assert.ok(second !== undefined);
    relay.publish(second);
    relay.request({ send: (m) => late.push(overIpc(m)) });

    const worker = (messages: RelayMessage[]) => {
      const source = new RelayedConfigSource();
      const changes: ConfigState[] = [];
      source.use((state) => changes.push(state));
      for (const m of messages) assert.equal(source.receive(m), true);
      return { source, changes };
    };
    const a = worker(early);
    assert.deepEqual(early.map((m) => m.type === 'gateway:config' && m.delta.full), [true, false]);
    assert.deepEqual(contents(a.source.current() as ConfigState), contents(second));
    assert.equal(a.changes.length, 1, 'the first state starts the data plane; the next is a change');
    const b = worker(late);
    assert.deepEqual(late.map((m) => m.type === 'gateway:config' && m.delta.full), [true]);
    assert.deepEqual(contents(b.source.current() as ConfigState), contents(second));
    assert.deepEqual(b.source.health(), { connected: true, since: 1 });

    connected = false;
    relay.checkHealth();
    relay.checkHealth(); // unchanged: not sent again
    assert.deepEqual(late.slice(1), [{ type: 'gateway:config-health', watch: { connected: false, since: 1 } }]);
  });

  test('start() resolves with the newest state, changes before use() included; other messages are not the source\'s', async () => {
    const store = new ConfigStore('/apisix', silentLogger());
    const first = store.replaceAll([kv('/apisix/routes/1', route('a:1'), 2)], '2');
    store.applyPut(kv('/apisix/routes/1', route('a:2'), 3));
    const second = store.commit('3');
    assert.ok(second !== undefined);
    const source = new RelayedConfigSource();
    const watch = { connected: true, since: 5 };
    assert.equal(source.receive({ type: 'gateway:health' }), false);
    // A change before any whole state has nothing to apply to and is dropped (the primary never sends one).
    source.receive({ type: 'gateway:config', delta: overIpc(diffStates(first, second)), watch });
    assert.equal(source.current(), undefined);
    source.receive({ type: 'gateway:config', delta: overIpc(diffStates(undefined, first)), watch });
    source.receive({ type: 'gateway:config', delta: overIpc(diffStates(first, second)), watch });
    const state = await source.use(() => undefined).start();
    assert.equal(state.revision, '3');
    assert.deepEqual(contents(state), contents(second));
  });

  test('close() before the first state rejects start()', async () => {
    const source = new RelayedConfigSource();
    const started = source.start();
    await source.close();
    await assert.rejects(started, /closed before its configuration arrived/);
  });
});
