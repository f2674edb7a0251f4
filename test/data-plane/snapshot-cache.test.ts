/**
 * `deployment.etcd.snapshot_cache`: a data plane keeps the last configuration it read from etcd in a file, and one
 * that starts while etcd is down serves that configuration (marked config_stale) instead of waiting, then catches
 * up when etcd answers. Real etcd, real data planes, real gRPC calls to a real greeter.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { readSnapshotCache, writeSnapshotCache } from '../../data-plane/config/snapshot-cache.ts';
import { startDataPlane, type DataPlane } from '../../data-plane/data-plane.ts';
import { parseConfig } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import { makeCert, type CertAndKey } from '../helpers/certs.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { waitUntil } from '../helpers/fake-upstream.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';

/** readSnapshotCache's reason for not reading a cache; '' when it read one. */
function whyNot(result: Awaited<ReturnType<typeof readSnapshotCache>>): string {
  return typeof result === 'string' ? result : '';
}

const LIMIT_MS = 20_000;

describe('snapshot cache file format', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-cache-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('what is written reads back, for the same prefix only, and the file is private', async () => {
    const file = join(dir, 'nested', 'cache.json');
    const kvs = [{ key: Buffer.from('/apisix/routes/1'), value: Buffer.from('{"uri":"/a.B/C","ünï":"✓"}'), mod_revision: '7' }];
    await writeSnapshotCache(file, '/apisix', { revision: '9', clusterId: '42', kvs });
    const back = await readSnapshotCache(file, '/apisix');
    assert.ok(typeof back !== 'string', whyNot(back));
    assert.equal(back.revision, '9');
    assert.equal(back.clusterId, '42');
    assert.deepEqual(back.kvs.map((kv) => [kv.key.toString(), kv.value.toString(), kv.mod_revision]), [['/apisix/routes/1', '{"uri":"/a.B/C","ünï":"✓"}', '7']]);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.match(whyNot(await readSnapshotCache(file, '/other')), /written for etcd prefix \/apisix, not \/other/);
  });

  test('a missing or damaged cache is reported, not used', async () => {
    assert.equal(await readSnapshotCache(join(dir, 'absent.json'), '/apisix'), 'no cache file');
    const broken = join(dir, 'broken.json');
    await writeFile(broken, '{"version":1,');
    assert.equal(await readSnapshotCache(broken, '/apisix'), 'it is not valid JSON');
    await writeFile(broken, JSON.stringify({ version: 1, prefix: '/apisix', revision: '1', kvs: [['only-a-key']] }));
    assert.equal(await readSnapshotCache(broken, '/apisix'), 'unknown format');
  });
});

describe('a data plane starting while etcd is down', { timeout: 90_000 }, () => {
  let etcd: EtcdProcess;
  let dir: string;
  let cert: CertAndKey;
  let nodeA: GreeterNode;
  let nodeB: GreeterNode;
  const planes: DataPlane[] = [];
  const clients: Client[] = [];

  const configFor = (cacheFile: string) =>
    parseConfig(`
apisix:
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { enable: false }
  status: { ip: 127.0.0.1, port: 0 }
deployment:
  etcd: { host: ["${etcd.endpoint}"], prefix: /apisix, timeout: 2, snapshot_cache: "${cacheFile}" }
`);

  const putRoute = async (node: GreeterNode): Promise<void> => {
    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      await client.put('/apisix/routes/1').value(JSON.stringify({ uri: '/helloworld.Greeter/*', upstream: { scheme: 'grpc', nodes: { [node.address]: 1 } } }));
    } finally {
      client.close();
    }
  };

  const readyz = async (plane: DataPlane): Promise<{ code: number; body: { config_stale: boolean; routes: number } }> => {
    const address = plane.statusAddress;
    assert.ok(address !== undefined);
    const res = await fetch(`http://${address.host}:${address.port}/readyz`);
    return { code: res.status, body: (await res.json()) as { config_stale: boolean; routes: number } };
  };

  before(async () => {
    etcd = await startEtcd();
    dir = await mkdtemp(join(tmpdir(), 'gw-cache-'));
    cert = await makeCert({ sans: ['localhost'] });
    nodeA = await startGreeterNode({ id: 'A' });
    nodeB = await startGreeterNode({ id: 'B' });
  });

  after(async () => {
    for (const client of clients) client.close();
    for (const plane of planes) await plane.close();
    await nodeA.close();
    await nodeB.close();
    await etcd.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('serves the cached config, stale, and catches up once etcd is back', async (t) => {
    const cacheFile = join(dir, 'config-cache.json');
    await putRoute(nodeA);
    const first = await startDataPlane({ config: configFor(cacheFile), log: silentLogger(), defaultCert: cert });
    planes.push(first);
    assert.equal(first.snapshots.current().router.size, 1);
    // The cache is written shortly after a load (at most once a second).
    await waitUntil(() => first.snapshots.current().revision !== '', LIMIT_MS, () => 'no revision');
    const deadline = Date.now() + LIMIT_MS;
    let cached: Awaited<ReturnType<typeof readSnapshotCache>> = 'not yet';
    while (Date.now() < deadline) {
      cached = await readSnapshotCache(cacheFile, '/apisix');
      if (typeof cached !== 'string' && cached.revision === first.snapshots.current().revision) break;
      await sleep(100);
    }
    assert.ok(typeof cached !== 'string', `the cache was not written: ${whyNot(cached)}`);
    assert.equal(cached.kvs.filter((kv) => kv.key.toString() === '/apisix/routes/1').length, 1);
    await first.close();

    await etcd.stop();
    const second = await startDataPlane({ config: configFor(cacheFile), log: silentLogger(), defaultCert: cert });
    planes.push(second);
    assert.equal(second.snapshots.current().router.size, 1, 'started from the cache');
    const stale = await readyz(second);
    assert.deepEqual([stale.code, stale.body.config_stale, stale.body.routes], [200, true, 1]);
    const address = second.addresses[0];
    assert.ok(address !== undefined);
    const client = greeterClient(`127.0.0.1:${address.port}`);
    clients.push(client);
    const served = await sayHello(client, 'cached', undefined, { deadline: Date.now() + 5_000 });
    assert.deepEqual([served.status.code, served.servedBy], [0, 'A'], served.status.details);

    await etcd.start();
    await putRoute(nodeB);
    let servedBy: string | undefined;
    const catchUp = Date.now() + 40_000;
    while (Date.now() < catchUp) {
      servedBy = (await sayHello(client, 'fresh', undefined, { deadline: Date.now() + 5_000 })).servedBy;
      if (servedBy === 'B') break;
      await sleep(200);
    }
    assert.equal(servedBy, 'B', 'the data plane caught up with etcd');
    await waitUntil(() => second.report().watch.connected, LIMIT_MS, () => 'the watch did not come up');
    const live = await readyz(second);
    assert.equal(live.body.config_stale, false);
    t.diagnostic(`cache file ${(await readFile(cacheFile)).length} bytes`);
  });

  test('without a cache file, a data plane waits for etcd and is not ready meanwhile', async () => {
    await etcd.stop();
    const starting = startDataPlane({ config: configFor(join(dir, 'none.json')), log: silentLogger(), defaultCert: cert });
    const state: { started: DataPlane | undefined } = { started: undefined };
    void starting.then((plane) => {
      state.started = plane;
      planes.push(plane);
    });
    await sleep(3_000);
    assert.equal(state.started, undefined, 'no configuration to serve: start() waits for etcd');
    await etcd.start();
    await waitUntil(() => state.started !== undefined, 40_000, () => 'the data plane did not start once etcd was back');
    // `as`: the assertion above narrowed it to undefined; waitUntil has set it since.
    assert.equal((state.started as DataPlane | undefined)?.snapshots.current().router.size, 1);
  });
});
