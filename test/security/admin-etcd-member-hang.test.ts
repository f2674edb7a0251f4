/**
 * The admin API on a real 3-member etcd cluster when one member hangs (SIGSTOP: its ports stay open, nothing
 * answers), and under write contention on one key (issue #11, case 10). Before the fix, with the leader frozen,
 * PUTs answered 503 `etcd is unavailable` three times in a row (5 s each), and 1,000 concurrent PUTs to one key got
 * 799 × 503: a write conflict reported as an outage.
 *
 * The store lists the frozen member first, so it is the one its first call goes to (member-pool.ts pins the first
 * host): without the per-member circuit and the short attempt deadline every call would wait there.
 *
 * The admin API is driven over a real socket; no test retries a request: every PUT must be answered 2xx by the
 * admin API itself. Members are resumed in `finally`; one cluster for the file, closed in `after`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../control-plane/app.ts';
import { createEtcdStore } from '../../control-plane/store/etcd-store.ts';
import type { ResourceStore } from '../../control-plane/store/resource-store.ts';
import { DEFAULT_ALLOW_ADMIN } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import { MAX_LABELS } from '../../shared/schema/common.ts';
import { startEtcdCluster, type EtcdCluster, type EtcdMember } from '../helpers/etcd-cluster.ts';

const ADMIN_KEY = 'etcd-hang-admin-key-3f9d';
/** Sequential PUTs while a member is frozen: enough to cross the election and to meet the frozen member again. */
const WRITES_WHILE_FROZEN = 12;
/** Concurrent PUTs of one key through one admin API (the issue measured 1,000; 400 keep the suite short). */
const CONCURRENT_PUTS = 400;
/** Concurrent PATCHes of one key, each adding its own label. */
/** Each PATCH adds one label: stay within the schema's MAX_LABELS so that every one is valid. */
const CONCURRENT_PATCHES = MAX_LABELS - 1;
/** Concurrent PUTs of one key through each of two admin APIs (two control planes on one etcd). */
const PUTS_PER_CONTROL_PLANE = 200;
/** Bound of one admin request; the store answers within its own 5 s bound per etcd call, this only catches a hang. */
const REQUEST_LIMIT_MS = 60_000;
const LEADER_LIMIT_MS = 20_000;

interface ControlPlane {
  url: string;
  close(): Promise<void>;
}

describe('the admin API with a hung etcd member', { timeout: 300_000 }, () => {
  let cluster: EtcdCluster | undefined;
  const planes: ControlPlane[] = [];

  before(async () => {
    cluster = await startEtcdCluster();
  });

  after(async () => {
    for (const plane of planes) await plane.close();
    await cluster?.close();
  });

  /** A control plane (store + admin API on a real port) whose etcd host list starts with `first`. */
  async function controlPlane(first?: EtcdMember): Promise<ControlPlane> {
    assert.ok(cluster !== undefined);
    const hosts = first === undefined ? cluster.endpoints : [first.endpoint, ...cluster.endpoints.filter((e) => e !== first.endpoint)];
    const log = silentLogger();
    const store: ResourceStore = createEtcdStore({ hosts, prefix: '/apisix', timeoutMs: 5_000, log });
    const app: FastifyInstance = buildApp({
      store,
      log,
      config: {
        admin: { ip: '127.0.0.1', port: 0, keys: [{ name: 'admin', key: ADMIN_KEY, role: 'admin' }], allowAdmin: [...DEFAULT_ALLOW_ADMIN] },
        dataEncryption: { keyring: [] },
      },
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    assert.ok(address !== null && typeof address === 'object');
    const plane = {
      url: `http://127.0.0.1:${address.port}/apisix/admin`,
      close: async () => {
        await app.close();
        await store.close();
      },
    };
    planes.push(plane);
    return plane;
  }

  async function request(plane: ControlPlane, method: 'PUT' | 'PATCH' | 'GET', path: string, body?: unknown): Promise<{ status: number; body: string }> {
    const res = await fetch(`${plane.url}${path}`, {
      method,
      headers: { 'X-API-KEY': ADMIN_KEY, 'content-type': 'application/json' },
      signal: AbortSignal.timeout(REQUEST_LIMIT_MS),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: await res.text() };
  }

  async function leader(): Promise<EtcdMember> {
    assert.ok(cluster !== undefined);
    const deadline = Date.now() + LEADER_LIMIT_MS;
    while (Date.now() < deadline) {
      for (const member of cluster.members) if ((await member.isLeader()) === true) return member;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`no leader within ${LEADER_LIMIT_MS} ms\n${await cluster.describe()}`);
  }

  function route(desc: string): Record<string, unknown> {
    return { uri: '/hang.Greeter/*', desc, upstream: { type: 'roundrobin', nodes: { '127.0.0.1:50051': 1 } } };
  }

  /** Freezes `victim`, sends WRITES_WHILE_FROZEN PUTs (each read back), and returns every answer that was not 2xx. */
  async function writeWhileFrozen(victim: EtcdMember, id: string): Promise<string[]> {
    assert.ok(cluster !== undefined);
    const plane = await controlPlane(victim);
    // A write before the freeze: the store's channel to the victim is open, as in a running control plane.
    assert.equal((await request(plane, 'PUT', `/routes/${id}`, route('before'))).status, 201);
    const failures: string[] = [];
    victim.pause();
    try {
      for (let i = 0; i < WRITES_WHILE_FROZEN; i++) {
        const desc = `write ${i} with ${victim.name} frozen`;
        const put = await request(plane, 'PUT', `/routes/${id}`, route(desc));
        if (put.status !== 200) failures.push(`PUT ${i}: ${put.status} ${put.body}`);
        const get = await request(plane, 'GET', `/routes/${id}`);
        if (get.status !== 200 || !get.body.includes(desc)) failures.push(`GET ${i}: ${get.status} ${get.body}`);
      }
    } finally {
      victim.resume();
    }
    await cluster.waitHealthy();
    return failures;
  }

  test('admin writes keep succeeding while the etcd leader is frozen', async () => {
    const failures = await writeWhileFrozen(await leader(), 'hang-leader');
    assert.deepEqual(failures, [], `answers that were not 2xx:\n${failures.join('\n')}`);
  });

  test('admin writes keep succeeding while an etcd follower is frozen', async () => {
    assert.ok(cluster !== undefined);
    const current = await leader();
    const follower = cluster.members.find((m) => m !== current);
    assert.ok(follower !== undefined);
    const failures = await writeWhileFrozen(follower, 'hang-follower');
    assert.deepEqual(failures, [], `answers that were not 2xx:\n${failures.join('\n')}`);
  });

  test('concurrent PUTs to one key are never reported as an outage', async () => {
    const plane = await controlPlane();
    const answers = await Promise.all(
      Array.from({ length: CONCURRENT_PUTS }, (_, i) => request(plane, 'PUT', '/routes/contended', route(`writer ${i}`))),
    );
    const statuses = countBy(answers.map((a) => a.status));
    assert.equal((statuses.get(200) ?? 0) + (statuses.get(201) ?? 0), CONCURRENT_PUTS, `statuses: ${JSON.stringify([...statuses])}`);
    assert.equal(statuses.get(201), 1, 'exactly one PUT created the route');
    // Last writer wins: what is stored is one of the bodies sent.
    const stored = await request(plane, 'GET', '/routes/contended');
    assert.match(stored.body, /"desc":"writer \d+"/);
  });

  test('concurrent PATCHes of one key all apply, none lost and none reported as an outage', async () => {
    const plane = await controlPlane();
    assert.equal((await request(plane, 'PUT', '/routes/patched', route('patch target'))).status, 201);
    const answers = await Promise.all(
      Array.from({ length: CONCURRENT_PATCHES }, (_, i) => request(plane, 'PATCH', '/routes/patched', { labels: { [`w${i}`]: 'yes' } })),
    );
    const statuses = countBy(answers.map((a) => a.status));
    assert.equal(statuses.get(200), CONCURRENT_PATCHES, `statuses: ${JSON.stringify([...statuses])}`);
    const stored = JSON.parse((await request(plane, 'GET', '/routes/patched')).body) as { value: { labels: Record<string, string> } };
    assert.equal(Object.keys(stored.value.labels).length, CONCURRENT_PATCHES, 'a PATCH answered 200 but its label is gone');
  });

  test('two control planes writing one key concurrently answer 2xx or 409, never 503', async () => {
    const planes = [await controlPlane(), await controlPlane()];
    const answers = await Promise.all(
      planes.flatMap((plane, p) =>
        Array.from({ length: PUTS_PER_CONTROL_PLANE }, (_, i) => request(plane, 'PUT', '/routes/two-planes', route(`plane ${p} writer ${i}`))),
      ),
    );
    const statuses = countBy(answers.map((a) => a.status));
    const unexpected = answers.filter((a) => ![200, 201, 409].includes(a.status));
    assert.deepEqual(unexpected, [], `statuses: ${JSON.stringify([...statuses])}`);
    for (const conflict of answers.filter((a) => a.status === 409)) {
      assert.match(conflict.body, /"error_msg":"value changed before overwritten: \/apisix\/routes\/two-planes"/);
    }
    assert.ok((statuses.get(200) ?? 0) + (statuses.get(201) ?? 0) > 0);
  });
});

function countBy(values: readonly number[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts;
}
