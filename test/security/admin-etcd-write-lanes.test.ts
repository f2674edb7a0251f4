/**
 * The store's per-key write lanes (control-plane/store/write-lanes.ts) on their own: concurrent writes to one key
 * must not race each other's compare-and-swap (which turned 1,000 concurrent PUTs into 799 × 503, issue #11 case
 * 10), and an etcd outage must fail the writes queued behind it at once instead of letting each wait out its own
 * bound in turn. Pure logic, no etcd: the cluster behaviour is in admin-etcd-member-hang.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { WriteLanes } from '../../control-plane/store/write-lanes.ts';

class Outage extends Error {}

describe('per-key write lanes', () => {
  test('writes to one key never overlap, and run in the order they came', async () => {
    const lanes = new WriteLanes((err) => err instanceof Outage);
    let running = 0;
    let overlapped = false;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        lanes.run('/apisix/routes/1', async () => {
          running += 1;
          if (running > 1) overlapped = true;
          await tick();
          order.push(i);
          running -= 1;
        }),
      ),
    );
    assert.equal(overlapped, false);
    assert.deepEqual(order, Array.from({ length: 50 }, (_, i) => i));
    assert.equal(lanes.size, 0, 'a drained lane is forgotten');
  });

  test('writes to different keys do not wait for each other', async () => {
    const lanes = new WriteLanes((err) => err instanceof Outage);
    let release: () => void = () => undefined;
    const blocked = lanes.run('/apisix/routes/slow', () => new Promise<void>((resolve) => (release = resolve)));
    const other = await lanes.run('/apisix/routes/fast', async () => 'done');
    assert.equal(other, 'done');
    release();
    await blocked;
  });

  test('an outage fails the writes queued behind it instead of each waiting its own bound', async () => {
    const lanes = new WriteLanes((err) => err instanceof Outage);
    let attempts = 0;
    const outage = new Outage('etcd is unavailable');
    const writes = Array.from({ length: 20 }, () =>
      lanes.run('/apisix/routes/1', async () => {
        attempts += 1;
        throw outage;
      }),
    );
    const results = await Promise.allSettled(writes);
    assert.equal(attempts, 1, 'only the first queued write went to etcd');
    assert.ok(results.every((r) => r.status === 'rejected' && r.reason === outage));
    // A write queued after the outage tries etcd again.
    assert.equal(await lanes.run('/apisix/routes/1', async () => 'written'), 'written');
  });

  test('a write that fails on its own (a refused body) does not fail the writes behind it', async () => {
    const lanes = new WriteLanes((err) => err instanceof Outage);
    const refused = lanes.run('/apisix/routes/1', async () => {
      throw new Error('invalid configuration');
    });
    const next = lanes.run('/apisix/routes/1', async (lane) => lane.known);
    await assert.rejects(refused, /invalid configuration/);
    assert.equal(await next, undefined, 'after a failure the lane does not claim to know the key');
  });
});
