/**
 * Bounds on admin input (issue #11 cases 1 and 8): nesting depth anywhere in a body (a 10,000-level node metadata
 * used to be a 500 from JSON.stringify's stack overflow), the size of labels and node metadata, the node count of
 * an upstream, and durations in seconds (3,000,000 s became a 1 ms Node timer). Each refusal is a 400 in APISIX's
 * words that writes nothing; values at the bound are still accepted.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_JSON_DEPTH } from '../../shared/json-bounds.ts';
import { MAX_DURATION_SECONDS, MAX_LABELS } from '../../shared/schema/common.ts';
import { MAX_METADATA_JSON_BYTES, MAX_NODES } from '../../shared/schema/upstream.ts';
import { SEED_ROUTE, admin } from '../control-plane/admin-fixture.ts';
import { assertLegitimatePutWorks, assertRefused, nestedObjectText, routeWithMetadataText, storedValue, useAdminFixture } from './admin-kit.ts';

/** Levels above node metadata in a route: route → upstream → nodes → node → metadata. */
const LEVELS_TO_METADATA = 5;

function hashNodes(count: number): Record<string, number> {
  const nodes: Record<string, number> = {};
  for (let i = 0; i < count; i++) nodes[`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:50051`] = 1;
  return nodes;
}

describe('admin API: bounds on depth, size and durations', () => {
  const fixture = useAdminFixture({ seedRoute: true });

  it('answers 400, not 500, for node metadata nested 10,000 levels deep', async () => {
    const body = routeWithMetadataText(nestedObjectText(10_000));
    const message = await assertRefused(fixture(), { method: 'PUT', url: '/apisix/admin/routes/2', body }, `nested deeper than ${MAX_JSON_DEPTH} levels`);
    assert.match(message, /^invalid request body: .*\(at \/upstream\/nodes\/0\/metadata\/a\/a\/…\)$/);
    await assertLegitimatePutWorks(fixture());
  });

  it('answers 400 for a PATCH that would nest the stored route 10,000 levels deep, keeping the stored route', async () => {
    const body = `{"upstream":{"nodes":{"127.0.0.1:50051":1},"keepalive_pool":${nestedObjectText(10_000)}}}`;
    await assertRefused(fixture(), { method: 'PATCH', url: '/apisix/admin/routes/1', body }, 'nested deeper than');
    await assertLegitimatePutWorks(fixture());
  });

  it('answers 400 for a JSON array nested 100,000 levels deep as a sub-path body', async () => {
    const body = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    await assertRefused(fixture(), { method: 'PATCH', url: '/apisix/admin/routes/1/methods', body }, 'nested deeper than');
    await assertLegitimatePutWorks(fixture());
  });

  it(`accepts a body exactly ${MAX_JSON_DEPTH} levels deep and refuses one level more`, async () => {
    const deepest = MAX_JSON_DEPTH - LEVELS_TO_METADATA + 1;
    const ok = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/routes/3', body: routeWithMetadataText(nestedObjectText(deepest)) });
    assert.equal(ok.statusCode, 201, ok.body);
    const body = routeWithMetadataText(nestedObjectText(deepest + 1));
    await assertRefused(fixture(), { method: 'PUT', url: '/apisix/admin/routes/4', body }, 'nested deeper than');
  });

  it(`answers 400 for more than ${MAX_LABELS} labels or a label key over 256 characters`, async () => {
    const labels: Record<string, string> = {};
    for (let i = 0; i <= MAX_LABELS; i++) labels[`k${i}`] = 'v';
    await assertRefused(
      fixture(),
      { method: 'PUT', url: '/apisix/admin/routes/2', body: { ...SEED_ROUTE, labels } },
      `property "labels" validation failed: expect object to have at most ${MAX_LABELS} properties`,
    );
    await assertRefused(
      fixture(),
      { method: 'PUT', url: '/apisix/admin/routes/2', body: { ...SEED_ROUTE, labels: { ['k'.repeat(257)]: 'v' } } },
      'property "labels" validation failed: invalid property name: string too long, expected at most 256, got 257',
    );
    await assertLegitimatePutWorks(fixture());
  });

  it(`answers 400 for node metadata over ${MAX_METADATA_JSON_BYTES} bytes or with more than 64 keys`, async () => {
    const big = routeWithMetadataText(JSON.stringify({ blob: 'x'.repeat(MAX_METADATA_JSON_BYTES) }));
    await assertRefused(fixture(), { method: 'PUT', url: '/apisix/admin/routes/2', body: big }, `too large, expected at most ${MAX_METADATA_JSON_BYTES} bytes`);
    const manyKeys: Record<string, number> = {};
    for (let i = 0; i <= 64; i++) manyKeys[`m${i}`] = i;
    const wide = routeWithMetadataText(JSON.stringify(manyKeys));
    await assertRefused(fixture(), { method: 'PUT', url: '/apisix/admin/routes/2', body: wide }, 'expect object to have at most 64 properties');
    await assertLegitimatePutWorks(fixture());
  });

  it(`answers 400 for an upstream of ${MAX_NODES + 1} nodes in either form and accepts ${MAX_NODES}`, async () => {
    const tooMany = hashNodes(MAX_NODES + 1);
    await assertRefused(
      fixture(),
      { method: 'PUT', url: '/apisix/admin/upstreams/big', body: { nodes: tooMany } },
      `property "nodes" validation failed: expect object to have at most ${MAX_NODES} properties`,
    );
    const asArray = Object.keys(tooMany).map((address) => ({ host: address.split(':')[0], port: 50051, weight: 1 }));
    await assertRefused(
      fixture(),
      { method: 'PUT', url: '/apisix/admin/upstreams/big', body: { nodes: asArray } },
      `property "nodes" validation failed: expect array to have at most ${MAX_NODES} items`,
    );
    const res = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/upstreams/big', body: { nodes: hashNodes(MAX_NODES) } });
    assert.equal(res.statusCode, 201, res.body);
  });

  it('answers 400 for a connect timeout of 3,000,000 s, which Node would clamp to a 1 ms timer', async () => {
    const body = { nodes: { '127.0.0.1:50051': 1 }, timeout: { connect: 3_000_000, send: 6, read: 6 } };
    await assertRefused(
      fixture(),
      { method: 'PUT', url: '/apisix/admin/upstreams/1', body },
      `invalid configuration: property "timeout" validation failed: property "connect" validation failed: expected 3000000 to be at most ${MAX_DURATION_SECONDS}`,
    );
    await assertLegitimatePutWorks(fixture());
  });

  it('answers 400 for an oversized route timeout, retry_timeout or keepalive idle_timeout, also through PATCH', async () => {
    const route = { ...SEED_ROUTE, timeout: { connect: 1, send: 1, read: 1e9 } };
    await assertRefused(fixture(), { method: 'PUT', url: '/apisix/admin/routes/2', body: route }, 'property "read" validation failed: expected 1000000000 to be at most');
    await assertRefused(fixture(), { method: 'PATCH', url: '/apisix/admin/routes/1', body: { upstream: { retry_timeout: MAX_DURATION_SECONDS + 1 } } }, 'property "retry_timeout" validation failed');
    await assertRefused(
      fixture(),
      { method: 'PATCH', url: '/apisix/admin/routes/1/upstream/keepalive_pool', body: { idle_timeout: 2 ** 31 } },
      'property "idle_timeout" validation failed',
    );
    await assertLegitimatePutWorks(fixture());
  });

  it(`accepts durations of exactly ${MAX_DURATION_SECONDS} s and fractions of a second`, async () => {
    const body = {
      nodes: { '127.0.0.1:50051': 1 },
      timeout: { connect: 0.001, send: MAX_DURATION_SECONDS, read: MAX_DURATION_SECONDS },
      retry_timeout: MAX_DURATION_SECONDS,
      keepalive_pool: { idle_timeout: MAX_DURATION_SECONDS },
    };
    const res = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/upstreams/1', body });
    assert.equal(res.statusCode, 201, res.body);
    const stored = await storedValue(fixture(), 'upstreams/1');
    assert.deepEqual(stored['timeout'], body.timeout);
  });
});
