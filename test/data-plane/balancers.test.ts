import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import { describe, test } from 'node:test';
import { createBalancer, type Balancer, type BalancerNode, type BalancerType } from '../../data-plane/upstream/balancers/index.ts';
import { ConsistentHashBalancer, crc32Utf8, MAX_RING_POINTS, POINTS_PER_WEIGHT } from '../../data-plane/upstream/balancers/chash.ts';

const TYPES: readonly BalancerType[] = ['roundrobin', 'least_conn', 'chash', 'ewma'];

/** `array[i]`, failing the test when there is no such element. */
function at<T>(array: ArrayLike<T>, i: number): T {
  const value = array[i];
  assert.ok(value !== undefined, `no element ${i}`);
  return value;
}

/** Counts one more for `i`. */
function bump(counts: number[], i: number): void {
  counts[i] = at(counts, i) + 1;
}

function nodes(...weights: number[]): BalancerNode[] {
  return weights.map((weight, i) => ({ key: `10.0.0.${i + 1}:50051`, weight }));
}

function mask(...bits: number[]): Uint8Array {
  return Uint8Array.from(bits);
}

/** Picks `picks` times, each call begun and ended at once (ewma hears `latency(node)` ms); counts per node. */
function counts(b: Balancer, size: number, picks: number, opts: { usable?: Uint8Array; latency?: (i: number) => number } = {}): number[] {
  const out = new Array<number>(size).fill(0);
  for (let k = 0; k < picks; k++) {
    const i = b.pick(opts.usable, `key-${k}`);
    assert.ok(i >= 0 && i < size, `pick ${k} returned ${i}`);
    bump(out, i);
    b.begin(i);
    b.end(i, opts.latency?.(i) ?? 10, false);
  }
  return out;
}

describe('roundrobin', () => {
  test('weights 1 and 3 share 100 picks exactly 25/75', () => {
    assert.deepEqual(counts(createBalancer('roundrobin', nodes(1, 3)), 2, 100), [25, 75]);
  });

  test('picks are spread out, not in runs: a appears once in every window of 4', () => {
    const b = createBalancer('roundrobin', nodes(1, 3));
    for (let window = 0; window < 10; window++) {
      const picks = [b.pick(undefined, ''), b.pick(undefined, ''), b.pick(undefined, ''), b.pick(undefined, '')];
      assert.equal(picks.filter((i) => i === 0).length, 1, `window ${window}: ${picks.join(',')}`);
    }
  });

  test('every window of sum(weights) picks gives each node exactly its weight', () => {
    const b = createBalancer('roundrobin', nodes(5, 1, 3, 2));
    for (let window = 0; window < 20; window++) assert.deepEqual(counts(b, 4, 11), [5, 1, 3, 2]);
  });

  test('masked nodes are skipped and the rest keep their relative shares', () => {
    const b = createBalancer('roundrobin', nodes(1, 1, 2, 3));
    // Node 1 masked: nodes 0, 2 and 3 share 1:2:3.
    assert.deepEqual(counts(b, 4, 60, { usable: mask(1, 0, 1, 1) }), [10, 0, 20, 30]);
    // Back to the full mask: node 1 resumes its share, without a burst to make up for the picks it missed.
    assert.deepEqual(counts(b, 4, 7), [1, 1, 2, 3]);
    assert.deepEqual(counts(b, 4, 70), [10, 10, 20, 30]);
  });

  test('all masked, all weight 0 or no node: -1', () => {
    assert.equal(createBalancer('roundrobin', nodes(1, 2)).pick(mask(0, 0), ''), -1);
    assert.equal(createBalancer('roundrobin', nodes(0, 0)).pick(undefined, ''), -1);
    assert.equal(createBalancer('roundrobin', []).pick(undefined, ''), -1);
  });
});

describe('least_conn', () => {
  test('equal weights and calls ending at once: picks rotate instead of always choosing index 0', () => {
    assert.deepEqual(counts(createBalancer('least_conn', nodes(1, 1, 1)), 3, 30), [10, 10, 10]);
  });

  test('calls held open on one node send new picks to the others', () => {
    const b = createBalancer('least_conn', nodes(1, 1, 1));
    for (let k = 0; k < 5; k++) b.begin(1);
    const c = counts(b, 3, 20);
    assert.equal(c[1], 0);
    assert.equal(at(c, 0) + at(c, 2), 20);
  });

  test('weights 1 and 3 with every call kept open: the score (active + 1) / weight gives 1 and 3 out of 4', () => {
    const b = createBalancer('least_conn', nodes(1, 3));
    const got = [0, 0];
    for (let k = 0; k < 4; k++) {
      const i = b.pick(undefined, '');
      bump(got, i);
      b.begin(i);
    }
    assert.deepEqual(got, [1, 3]);
    // And the ratio holds as the calls pile up.
    for (let k = 0; k < 36; k++) {
      const i = b.pick(undefined, '');
      bump(got, i);
      b.begin(i);
    }
    assert.deepEqual(got, [10, 30]);
  });

  test('a fast node (calls end at once) gets most picks over a slow one (calls stay open)', () => {
    const b = createBalancer('least_conn', nodes(1, 1));
    const got = [0, 0];
    let slowInFlight = 0;
    for (let k = 0; k < 1000; k++) {
      const i = b.pick(undefined, '');
      bump(got, i);
      b.begin(i);
      // Node 0 answers at once; node 1's calls stay in flight and end together every 50 picks.
      if (i === 0) b.end(0, 1, false);
      else slowInFlight++;
      if (k % 50 === 49) for (; slowInFlight > 0; slowInFlight--) b.end(1, 500, false);
    }
    assert.ok(at(got, 0) > 800, `fast node got ${at(got, 0)} of 1000`);
  });

  test('end never takes the count below 0', () => {
    const b = createBalancer('least_conn', nodes(1, 1));
    for (let k = 0; k < 5; k++) b.end(0, 1, false);
    b.begin(1);
    assert.equal(b.pick(undefined, ''), 0);
    b.begin(0);
    // One call on each: a tie, which rotates to node 1. Had node 0's count gone to -5 (-4 after its begin), it
    // would still look the least loaded.
    assert.equal(b.pick(undefined, ''), 1);
  });

  test('masked nodes are skipped, -1 when all are', () => {
    const b = createBalancer('least_conn', nodes(1, 1, 1));
    assert.deepEqual(counts(b, 3, 20, { usable: mask(0, 1, 1) }), [0, 10, 10]);
    assert.equal(b.pick(mask(0, 0, 0), ''), -1);
  });
});

describe('chash', () => {
  const keys = Array.from({ length: 10_000 }, (_, k) => `user-${k}`);

  function owners(b: Balancer, usable?: Uint8Array): number[] {
    return keys.map((key) => b.pick(usable, key));
  }

  function shares(picked: number[], size: number): number[] {
    const out = new Array<number>(size).fill(0);
    for (const i of picked) bump(out, i);
    return out.map((n) => n / picked.length);
  }

  test('keys are hashed with CRC-32 of their UTF-8 bytes, as APISIX does', () => {
    for (const s of ['', 'user-1', '10.0.0.1', 'héllo', '日本語', '😀 emoji', 'lone \ud800 surrogate']) {
      assert.equal(crc32Utf8(s), crc32(Buffer.from(s)), s);
    }
  });

  test('the same key always maps to the same node, in the same balancer and in a rebuilt one', () => {
    const b = createBalancer('chash', nodes(1, 1, 1, 1));
    const first = owners(b);
    assert.deepEqual(owners(b), first);
    assert.deepEqual(owners(createBalancer('chash', nodes(1, 1, 1, 1))), first);
  });

  test('10,000 keys over 4 equal nodes: each gets between 15 % and 35 %', () => {
    for (const share of shares(owners(createBalancer('chash', nodes(1, 1, 1, 1))), 4)) {
      assert.ok(share > 0.15 && share < 0.35, `share ${share}`);
    }
  });

  test('weights 1 and 3: about 25/75', () => {
    const got = shares(owners(createBalancer('chash', nodes(1, 3))), 2);
    const [a, b] = [at(got, 0), at(got, 1)];
    assert.ok(Math.abs(a - 0.25) < 0.07 && Math.abs(b - 0.75) < 0.07, `shares ${a} ${b}`);
  });

  test('removing one node of 10 moves only the keys that were on it', () => {
    const all = nodes(1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    const before = owners(createBalancer('chash', all)).map((i) => at(all, i).key);
    const removed = at(all, 6).key;
    const rest = all.filter((n) => n.key !== removed);
    const after = owners(createBalancer('chash', rest)).map((i) => at(rest, i).key);
    let moved = 0;
    for (let k = 0; k < keys.length; k++) {
      if (before[k] === removed) {
        moved++;
        assert.notEqual(after[k], removed);
      } else {
        assert.equal(after[k], before[k], `key ${at(keys, k)} moved from ${at(before, k)} to ${at(after, k)}`);
      }
    }
    assert.ok(moved > 500 && moved < 1500, `moved ${moved} of 10000`);
  });

  test('a masked node\'s keys go to the others and come back when it is unmasked', () => {
    const b = createBalancer('chash', nodes(1, 1, 1, 1));
    const first = owners(b);
    const down = owners(b, mask(1, 0, 1, 1));
    const onNode1 = first.filter((i) => i === 1).length;
    assert.ok(onNode1 > 0);
    for (let k = 0; k < keys.length; k++) {
      if (first[k] === 1) assert.notEqual(down[k], 1);
      else assert.equal(down[k], first[k]);
    }
    // Its keys spread over the others rather than all landing on one neighbour.
    const spread = new Set(down.filter((_, k) => first[k] === 1));
    assert.equal(spread.size, 3);
    assert.deepEqual(owners(b, mask(1, 1, 1, 1)), first);
    assert.deepEqual(owners(b), first);
  });

  test('above the ring cap (2,000 nodes of weight 5) points are scaled down and keys still spread', () => {
    assert.equal(new ConsistentHashBalancer(nodes(1, 3, 0)).ringSize, 4 * POINTS_PER_WEIGHT);
    const b = new ConsistentHashBalancer(new Array(2000).fill(0).map((_, i) => ({ key: `10.1.${i >> 8}.${i & 255}:50051`, weight: 5 })));
    assert.equal(b.ringSize, MAX_RING_POINTS);
    const got = new Array<number>(2000).fill(0);
    for (let k = 0; k < 50_000; k++) bump(got, b.pick(undefined, `client-${k}`));
    // 25 keys per node on average; 80 points each (160,000 / 2,000) keep every node within a few times that.
    assert.ok(Math.max(...got) < 100, `max ${Math.max(...got)}`);
    assert.ok(got.filter((n) => n === 0).length < 20, `${got.filter((n) => n === 0).length} nodes got no key`);
  });

  test('-1 when every node is masked or the ring is empty', () => {
    assert.equal(createBalancer('chash', nodes(1, 1, 1)).pick(mask(0, 0, 0), 'k'), -1);
    // Large enough that the walk passes its "is anything usable" check.
    assert.equal(createBalancer('chash', nodes(5, 5, 5, 5)).pick(mask(0, 0, 0, 0), 'k'), -1);
    assert.equal(createBalancer('chash', nodes(0, 0)).pick(undefined, 'k'), -1);
    assert.equal(createBalancer('chash', []).pick(undefined, 'k'), -1);
  });
});

describe('ewma', () => {
  test('under a 10x latency difference the fast node gets > 80 % of picks', () => {
    const b = createBalancer('ewma', nodes(1, 1));
    const latency = (i: number): number => (i === 0 ? 10 : 100);
    counts(b, 2, 20, { latency });
    const got = counts(b, 2, 1000, { latency });
    assert.ok(at(got, 0) > 800, `fast node got ${at(got, 0)} of 1000`);
  });

  test('with more nodes the fast ones still win the comparisons', () => {
    const b = createBalancer('ewma', nodes(1, 1, 1, 1));
    const latency = (i: number): number => (i < 2 ? 10 : 100);
    counts(b, 4, 20, { latency });
    const got = counts(b, 4, 1000, { latency });
    assert.ok(at(got, 0) + at(got, 1) > 800, `fast nodes got ${at(got, 0) + at(got, 1)} of 1000`);
  });

  test('calls in flight count: a burst before any answer is spread, not all sent to the fastest node', () => {
    const b = createBalancer('ewma', nodes(1, 1));
    counts(b, 2, 20, { latency: (i) => (i === 0 ? 10 : 30) });
    const got = [0, 0];
    for (let k = 0; k < 40; k++) {
      const i = b.pick(undefined, '');
      bump(got, i);
      b.begin(i);
    }
    // 10 · (a + 1) vs 30 · (b + 1): node 1 takes about a quarter once node 0 has a queue.
    assert.ok(at(got, 1) >= 5 && at(got, 0) > at(got, 1), `got ${got.join('/')}`);
  });

  test('a fresh balancer tries every node first; a slow new node does not take the traffic afterwards', () => {
    const b = createBalancer('ewma', nodes(1, 1, 1));
    const latency = (i: number): number => (i === 2 ? 100 : 10);
    const first = counts(b, 3, 3, { latency });
    assert.deepEqual(first, [1, 1, 1]);
    const got = counts(b, 3, 300, { latency });
    assert.ok(at(got, 2) < 30, `slow node got ${at(got, 2)} of 300`);
  });

  test('a node that comes back cold (masked since the start) is picked at once, then by its latency', () => {
    const b = createBalancer('ewma', nodes(1, 1, 1));
    const latency = (i: number): number => (i === 2 ? 100 : 10);
    counts(b, 3, 50, { usable: mask(1, 1, 0), latency });
    assert.equal(b.pick(undefined, ''), 2);
    b.begin(2);
    // While its first call is in flight it waits for the answer instead of taking every pick.
    for (let k = 0; k < 20; k++) {
      const i = b.pick(undefined, '');
      assert.notEqual(i, 2);
      b.begin(i);
      b.end(i, 10, false);
    }
    b.end(2, 100, false);
    const got = counts(b, 3, 300, { latency });
    assert.ok(at(got, 2) < 30, `slow node got ${at(got, 2)} of 300`);
  });

  test('a node whose attempt failed is avoided afterwards, even if it failed fast', () => {
    const b = createBalancer('ewma', nodes(1, 1, 1));
    counts(b, 3, 30, { latency: () => 10 });
    b.begin(1);
    b.end(1, 1, true);
    const got = counts(b, 3, 300, { latency: (i) => (i === 1 ? 1 : 10) });
    assert.equal(got[1], 0);
  });

  test('masked nodes are never chosen; -1 when all are', () => {
    const b = createBalancer('ewma', nodes(1, 1, 1, 1));
    const got = counts(b, 4, 500, { usable: mask(1, 0, 1, 0), latency: (i) => 10 + i });
    assert.equal(at(got, 1) + at(got, 3), 0);
    assert.ok(at(got, 0) > 0 && at(got, 2) > 0);
    assert.equal(b.pick(mask(0, 0, 0, 0), ''), -1);
  });

  test('weights other than 0 are ignored', () => {
    const got = counts(createBalancer('ewma', nodes(1, 100)), 2, 1000, { latency: (i) => (i === 0 ? 10 : 100) });
    assert.ok(at(got, 0) > 800, `got ${got.join('/')}`);
  });
});

describe('every balancer', () => {
  for (const type of TYPES) {
    test(`${type}: a node of weight 0 is never picked`, () => {
      const b = createBalancer(type, nodes(0, 1, 0, 2));
      const got = counts(b, 4, 400);
      assert.equal(at(got, 0) + at(got, 2), 0);
      assert.equal(at(got, 1) + at(got, 3), 400);
      // Not even when the mask offers it or it is the only node left.
      for (let k = 0; k < 50; k++) assert.equal(b.pick(mask(1, 0, 1, 0), `k${k}`), -1);
    });

    test(`${type}: with one usable node, always that node`, () => {
      const b = createBalancer(type, nodes(1, 2, 3, 4, 5, 6, 7, 8));
      for (const only of [0, 5, 7]) {
        const usable = new Uint8Array(8);
        usable[only] = 1;
        const got = counts(b, 8, 200, { usable });
        assert.equal(got[only], 200);
      }
    });

    test(`${type}: no node at all is -1`, () => {
      assert.equal(createBalancer(type, []).pick(undefined, 'k'), -1);
    });
  }
});

describe('ewma: attempts without an answer', () => {
  test('end(i, -1, false) is no sample: it ends the call in flight and leaves the average alone', () => {
    const b = createBalancer('ewma', [
      { key: 'a', weight: 1 },
      { key: 'b', weight: 1 },
    ]);
    // Warm both: a is fast, b slow.
    for (let i = 0; i < 20; i++) {
      b.begin(0);
      b.end(0, 5, false);
      b.begin(1);
      b.end(1, 50, false);
    }
    // Many "no sample" endings on b (refused, cancelled) must not make it look fast.
    for (let i = 0; i < 50; i++) {
      b.begin(1);
      b.end(1, -1, false);
    }
    let a = 0;
    for (let i = 0; i < 200; i++) {
      const picked = b.pick(undefined, '');
      b.begin(picked);
      b.end(picked, picked === 0 ? 5 : 50, false);
      if (picked === 0) a++;
    }
    assert.ok(a > 160, `the fast node kept most picks: ${a}/200`);
  });
});
