import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RoundRobinBalancer } from '../../data-plane/upstream/balancer.ts';

function counts(balancer: RoundRobinBalancer<{ key: string; weight: number }>, picks: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < picks; i++) {
    const node = balancer.pick();
    assert.ok(node);
    out[node.key] = (out[node.key] ?? 0) + 1;
  }
  return out;
}

describe('smooth weighted round robin', () => {
  test('weights 1 and 3 share 100 picks exactly 25/75', () => {
    const b = new RoundRobinBalancer([{ key: 'a', weight: 1 }, { key: 'b', weight: 3 }]);
    assert.deepEqual(counts(b, 100), { a: 25, b: 75 });
  });

  test('picks are spread out, not in runs: a appears once in every window of 4', () => {
    const b = new RoundRobinBalancer([{ key: 'a', weight: 1 }, { key: 'b', weight: 3 }]);
    for (let window = 0; window < 10; window++) {
      const keys = [b.pick()?.key, b.pick()?.key, b.pick()?.key, b.pick()?.key];
      assert.equal(keys.filter((k) => k === 'a').length, 1);
    }
  });

  test('a node of weight 0 is never picked', () => {
    const b = new RoundRobinBalancer([{ key: 'a', weight: 0 }, { key: 'b', weight: 1 }]);
    assert.deepEqual(counts(b, 10), { b: 10 });
  });

  test('no node with weight is no pick', () => {
    assert.equal(new RoundRobinBalancer([{ key: 'a', weight: 0 }]).pick(), undefined);
    assert.equal(new RoundRobinBalancer([]).pick(), undefined);
  });

  test('excluded nodes are skipped and the rest keep their shares', () => {
    const b = new RoundRobinBalancer([{ key: 'a', weight: 1 }, { key: 'b', weight: 1 }, { key: 'c', weight: 2 }]);
    const exclude = new Set(['c']);
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add(b.pick(exclude)?.key ?? '');
    assert.deepEqual([...seen].sort(), ['a', 'b']);
    assert.equal(b.pick(new Set(['a', 'b', 'c'])), undefined);
  });
});
