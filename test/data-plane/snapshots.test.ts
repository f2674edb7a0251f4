/**
 * Incremental snapshot builds (issue #5): a rebuild keeps what an unchanged route resolved to and resolves again
 * exactly the routes whose item or referenced objects changed. States come from a real ConfigStore, fed the way
 * the etcd watch feeds it, so the identity of unchanged items is the store's, not the test's.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigStore, type ConfigState, type RawKeyValue } from '../../data-plane/config/config-state.ts';
import { buildSnapshot, type Snapshot } from '../../data-plane/config/snapshots.ts';
import { GrpcStatus } from '../../shared/grpc-status.ts';
import { silentLogger } from '../../shared/logger.ts';
import { makeCert } from '../helpers/certs.ts';

const log = silentLogger();

/** A ConfigStore plus the snapshot chain built from it, one build per commit as the data plane does. */
class Config {
  readonly store = new ConfigStore('/apisix', log);
  #revision = 1;
  snapshot: Snapshot;

  constructor(initial: Record<string, unknown>) {
    const kvs = Object.entries(initial).map(([key, value]) => this.#kv(key, value));
    this.snapshot = buildSnapshot(this.store.replaceAll(kvs, String(this.#revision)), undefined, log);
  }

  put(key: string, value: unknown): this {
    this.store.applyPut(this.#kv(key, value));
    return this;
  }

  delete(key: string): this {
    this.store.applyDelete(this.#kv(key, {}));
    return this;
  }

  /** Commits and builds the next snapshot from the previous one; returns [previous, next]. */
  apply(): [Snapshot, Snapshot] {
    const state = this.store.commit(String(this.#revision));
    assert.ok(state !== undefined, 'nothing to commit');
    const previous = this.snapshot;
    this.snapshot = buildSnapshot(state, previous, log);
    return [previous, this.snapshot];
  }

  get state(): ConfigState {
    const state = this.store.current();
    assert.ok(state !== undefined);
    return state;
  }

  #kv(key: string, value: unknown): RawKeyValue {
    return { key: Buffer.from(`/apisix/${key}`), value: Buffer.from(JSON.stringify(value)), mod_revision: String(++this.#revision) };
  }
}

function nodes(snapshot: Snapshot, id: string): string[] | undefined {
  return snapshot.targets.get(id)?.upstream.nodes.map((n) => n.key);
}

function matched(snapshot: Snapshot, path: string, authority?: string): string | undefined {
  return snapshot.router.match({ path, method: 'POST', authority })?.id;
}

describe('incremental snapshot builds', () => {
  test('an unchanged route keeps its target when another route changes', () => {
    const config = new Config({
      'routes/a': { uri: '/a.S/M', upstream: { nodes: { '127.0.0.1:1': 1 } } },
      'routes/b': { uri: '/b.S/M', upstream: { nodes: { '127.0.0.1:2': 1 } } },
    });
    const [before, after] = config.put('routes/b', { uri: '/b.S/M', upstream: { nodes: { '127.0.0.1:3': 1 } } }).apply();
    assert.equal(after.targets.get('a'), before.targets.get('a'));
    assert.equal(after.routeBuilds.get('a'), before.routeBuilds.get('a'));
    assert.notEqual(after.targets.get('b'), before.targets.get('b'));
    assert.deepEqual(nodes(after, 'b'), ['grpc://127.0.0.1:3']);
    assert.equal(matched(after, '/a.S/M'), 'a');
  });

  test('a change to an upstream object rebuilds the routes that reference it, and only those', () => {
    const config = new Config({
      'upstreams/u1': { nodes: { '127.0.0.1:1': 1 } },
      'upstreams/u2': { nodes: { '127.0.0.1:2': 1 } },
      'routes/r1': { uri: '/r1.S/M', upstream_id: 'u1' },
      'routes/r2': { uri: '/r2.S/M', upstream_id: 'u1' },
      'routes/r3': { uri: '/r3.S/M', upstream_id: 'u2' },
    });
    const [before, after] = config.put('upstreams/u1', { nodes: { '127.0.0.1:9': 1 } }).apply();
    assert.deepEqual(nodes(after, 'r1'), ['grpc://127.0.0.1:9']);
    assert.deepEqual(nodes(after, 'r2'), ['grpc://127.0.0.1:9']);
    assert.equal(after.targets.get('r1')?.upstream, after.targets.get('r2')?.upstream, 'routes of one upstream object share one balancer');
    assert.equal(after.targets.get('r3'), before.targets.get('r3'));
    assert.deepEqual([...after.nodeKeys].sort(), ['grpc://127.0.0.1:2', 'grpc://127.0.0.1:9']);
  });

  test("a change to a service applies to its routes' hosts, plugins and inherited upstream", () => {
    const config = new Config({
      'services/s': { hosts: ['old.example.com'], upstream: { nodes: { '127.0.0.1:1': 1 } } },
      'routes/r': { uri: '/r.S/M', service_id: 's' },
      'routes/other': { uri: '/o.S/M', upstream: { nodes: { '127.0.0.1:5': 1 } } },
    });
    assert.equal(matched(config.snapshot, '/r.S/M', 'old.example.com'), 'r');
    const [before, after] = config
      .put('services/s', {
        hosts: ['new.example.com'],
        plugins: { 'grpc-limits': { max_request_message_bytes: 64 } },
        upstream: { nodes: { '127.0.0.1:2': 1 } },
      })
      .apply();
    assert.equal(matched(after, '/r.S/M', 'old.example.com'), undefined);
    assert.equal(matched(after, '/r.S/M', 'new.example.com'), 'r');
    assert.equal(after.targets.get('r')?.maxRequestMessageBytes, 64);
    assert.deepEqual(nodes(after, 'r'), ['grpc://127.0.0.1:2']);
    assert.equal(after.targets.get('other'), before.targets.get('other'));
  });

  test('deleting an upstream makes its routes fail with UNAVAILABLE, and putting it back restores them', () => {
    const config = new Config({
      'upstreams/u': { nodes: { '127.0.0.1:1': 1 } },
      'routes/r': { uri: '/r.S/M', upstream_id: 'u' },
    });
    const [, deleted] = config.delete('upstreams/u').apply();
    const broken = deleted.targets.get('r');
    assert.equal(broken?.error?.grpcStatus, GrpcStatus.UNAVAILABLE);
    assert.equal(matched(deleted, '/r.S/M'), 'r', 'the route stays, answering the error');
    assert.equal(deleted.nodeKeys.size, 0);
    const [, restored] = config.put('upstreams/u', { nodes: { '127.0.0.1:7': 1 } }).apply();
    assert.equal(restored.targets.get('r')?.error, undefined);
    assert.deepEqual(nodes(restored, 'r'), ['grpc://127.0.0.1:7']);
  });

  test('a route to a missing service answers UNIMPLEMENTED until the service is created', () => {
    const config = new Config({ 'routes/r': { uri: '/r.S/M', service_id: 's' } });
    assert.equal(config.snapshot.targets.get('r')?.error?.grpcStatus, GrpcStatus.UNIMPLEMENTED);
    const [, after] = config.put('services/s', { upstream: { nodes: { '127.0.0.1:1': 1 } } }).apply();
    assert.equal(after.targets.get('r')?.error, undefined);
    assert.deepEqual(nodes(after, 'r'), ['grpc://127.0.0.1:1']);
  });

  test('a client certificate change rebuilds the routes whose upstream presents it', async () => {
    const [first, second] = await Promise.all([makeCert({ sans: ['client-one'] }), makeCert({ sans: ['client-two'] })]);
    const config = new Config({
      'ssls/c': { type: 'client', cert: first.cert, key: first.key },
      'upstreams/u': { scheme: 'grpcs', nodes: { '127.0.0.1:1': 1 }, tls: { client_cert_id: 'c' } },
      'routes/r': { uri: '/r.S/M', upstream_id: 'u' },
    });
    const certOf = (snapshot: Snapshot): string | undefined => snapshot.targets.get('r')?.upstream.nodes[0]?.tls?.clientCert?.cert;
    assert.equal(certOf(config.snapshot), first.cert);
    const [, after] = config.put('ssls/c', { type: 'client', cert: second.cert, key: second.key }).apply();
    assert.equal(certOf(after), second.cert);
  });

  test('a deleted route is no longer matched and its nodes are no longer in use', () => {
    const config = new Config({
      'routes/a': { uri: '/a.S/M', upstream: { nodes: { '127.0.0.1:1': 1 } } },
      'routes/b': { uri: '/b.S/*', upstream: { nodes: { '127.0.0.1:2': 1 } } },
    });
    const [before, after] = config.delete('routes/b').apply();
    assert.equal(matched(after, '/b.S/Anything'), undefined);
    assert.equal(matched(before, '/b.S/Anything'), 'b', 'the previous snapshot is untouched');
    assert.equal(after.targets.has('b'), false);
    assert.deepEqual([...after.nodeKeys], ['grpc://127.0.0.1:1']);
    assert.equal(after.router.size, 1);
  });

  test('a route switched to status 0 leaves the router but keeps its target', () => {
    const config = new Config({ 'routes/a': { uri: '/a.S/M', upstream: { nodes: { '127.0.0.1:1': 1 } } } });
    const [, off] = config.put('routes/a', { uri: '/a.S/M', status: 0, upstream: { nodes: { '127.0.0.1:1': 1 } } }).apply();
    assert.equal(matched(off, '/a.S/M'), undefined);
    assert.equal(off.router.size, 0);
    assert.ok(off.targets.has('a'));
    const [, on] = config.put('routes/a', { uri: '/a.S/M', status: 1, upstream: { nodes: { '127.0.0.1:1': 1 } } }).apply();
    assert.equal(matched(on, '/a.S/M'), 'a');
  });

  test('a shared upstream no route uses any more leaves the cache, and its nodes leave the keys in use', () => {
    const config = new Config({
      'upstreams/u1': { nodes: { '127.0.0.1:1': 1 } },
      'upstreams/u2': { nodes: { '127.0.0.1:2': 1 } },
      'routes/r1': { uri: '/r1.S/M', upstream_id: 'u1' },
      'routes/r2': { uri: '/r2.S/M', upstream_id: 'u1' },
      'routes/r3': { uri: '/r3.S/M', upstream_id: 'u2' },
    });
    assert.equal(config.snapshot.upstreamCache.size, 2);
    const [, oneLeft] = config.put('routes/r1', { uri: '/r1.S/M', upstream_id: 'u2' }).apply();
    assert.equal(oneLeft.upstreamCache.size, 2, 'r2 still uses u1');
    assert.deepEqual([...oneLeft.nodeKeys].sort(), ['grpc://127.0.0.1:1', 'grpc://127.0.0.1:2']);
    const [, noneLeft] = config.delete('routes/r2').apply();
    assert.equal(noneLeft.upstreamCache.size, 1);
    assert.deepEqual([...noneLeft.nodeKeys], ['grpc://127.0.0.1:2']);
    assert.equal(noneLeft.targets.get('r1')?.upstream, noneLeft.targets.get('r3')?.upstream);
  });

  test('a new route with the same upstream settings as a kept route shares its balancer', () => {
    const config = new Config({
      'upstreams/u': { nodes: { '127.0.0.1:1': 1, '127.0.0.1:2': 1 } },
      'routes/r1': { uri: '/r1.S/M', upstream_id: 'u' },
    });
    const [before, after] = config.put('routes/r2', { uri: '/r2.S/M', upstream_id: 'u' }).apply();
    assert.equal(after.targets.get('r1')?.upstream, before.targets.get('r1')?.upstream);
    assert.equal(after.targets.get('r2')?.upstream, after.targets.get('r1')?.upstream);
  });

  test('an unchanged ssls map keeps the SNI table; a changed one builds a new table', async () => {
    const pair = await makeCert({ sans: ['test.com'] });
    const config = new Config({
      'ssls/1': { cert: pair.cert, key: pair.key, snis: ['test.com'] },
      'routes/a': { uri: '/a.S/M', upstream: { nodes: { '127.0.0.1:1': 1 } } },
    });
    const [before, routeChanged] = config.put('routes/a', { uri: '/a.S/N', upstream: { nodes: { '127.0.0.1:1': 1 } } }).apply();
    assert.equal(routeChanged.sni, before.sni);
    const [, sslChanged] = config.put('ssls/1', { cert: pair.cert, key: pair.key, snis: ['test.com', 'other.com'] }).apply();
    assert.notEqual(sslChanged.sni, routeChanged.sni);
    assert.ok(sslChanged.sni.lookup('other.com') !== undefined);
  });

  test('a chain of incremental builds routes every call as a build from scratch does', () => {
    // Deterministic pseudo-random changes over routes with references, prefixes, methods, hosts and priorities.
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const config = new Config({});
    const paths = ['/p0.S/M', '/p1.S/M', '/p2.S/M', '/p0.S/X', '/p1.S/Y', '/other/Z'];
    for (let step = 0; step < 300; step++) {
      const id = `r${random(12)}`;
      switch (random(6)) {
        case 0:
          config.delete(`routes/${id}`);
          break;
        case 1:
          config.put(`upstreams/u${random(3)}`, { nodes: { [`127.0.0.1:${1 + random(4)}`]: 1 } });
          break;
        case 2:
          config.delete(`upstreams/u${random(3)}`);
          break;
        case 3:
          config.put(`services/s${random(2)}`, random(2) === 0 ? { upstream_id: `u${random(3)}` } : { hosts: ['h.example.com'], upstream: { nodes: { '127.0.0.1:8': 1 } } });
          break;
        default: {
          const uri = random(2) === 0 ? `/p${random(3)}.S/M` : `/p${random(3)}.S/*`;
          const route: Record<string, unknown> = { uri, priority: random(3) };
          const ref = random(3);
          if (ref === 0) route['upstream'] = { nodes: { [`127.0.0.1:${1 + random(4)}`]: 1 } };
          else if (ref === 1) route['upstream_id'] = `u${random(3)}`;
          else route['service_id'] = `s${random(2)}`;
          if (random(4) === 0) route['methods'] = ['GET'];
          if (random(4) === 0) route['status'] = 0;
          config.put(`routes/${id}`, route);
        }
      }
      if (!config.store.dirty) continue;
      const [, incremental] = config.apply();
      const scratch = buildSnapshot(config.state, undefined, log);
      for (const path of paths) {
        for (const authority of [undefined, 'h.example.com']) {
          const a = incremental.router.match({ path, method: 'POST', authority });
          const b = scratch.router.match({ path, method: 'POST', authority });
          assert.equal(a?.id, b?.id, `step ${step}: ${path} @ ${String(authority)}`);
          assert.deepEqual(a?.target.upstream.nodes.map((n) => n.key), b?.target.upstream.nodes.map((n) => n.key));
          assert.equal(a?.target.error?.grpcStatus, b?.target.error?.grpcStatus);
        }
      }
      assert.deepEqual([...incremental.nodeKeys].sort(), [...scratch.nodeKeys].sort(), `step ${step}: node keys`);
      assert.equal(incremental.router.size, scratch.router.size);
      assert.deepEqual([...incremental.targets.keys()].sort(), [...scratch.targets.keys()].sort());
      // Routes with the same shared upstream settings share one balancer, and the cache holds exactly those in use.
      const inUse = new Map<string, unknown>();
      for (const build of incremental.routeBuilds.values()) {
        if (!build.shared || build.fingerprint === undefined) continue;
        const upstream = inUse.get(build.fingerprint) ?? build.entry.target.upstream;
        assert.equal(build.entry.target.upstream, upstream, `step ${step}: ${build.item.id} has its own copy of a shared upstream`);
        inUse.set(build.fingerprint, upstream);
      }
      assert.deepEqual([...incremental.upstreamCache.keys()].sort(), [...inUse.keys()].sort(), `step ${step}: upstream cache`);
      for (const [fingerprint, upstream] of inUse) assert.equal(incremental.upstreamCache.get(fingerprint), upstream);
    }
  });
});
