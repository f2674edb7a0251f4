/**
 * `least_conn` (apisix/balancer/least_conn.lua): the node with the lowest score (active + 1) / weight, where
 * `active` is the number of calls in flight on it (begin adds one, end takes one away). APISIX keeps the same score
 * in a binary heap (starting at 1 / weight, + 1 / weight per pick, - 1 / weight per finished attempt); here it is
 * kept per node in a Float64Array, refreshed by begin/end, and a pick is one O(n) scan for the minimum: at 256 nodes
 * that is a few hundred nanoseconds with no allocation, and masking nodes out needs no heap pops and re-inserts.
 *
 * Ties go to the first lowest score at or after the node after the last pick (rotating), not to index 0: with equal
 * weights and calls that end before the next pick (every score back at 1 / weight), traffic goes round robin
 * instead of all to the first node. As in APISIX, with unequal weights and no call in flight the heaviest node wins
 * every pick (1 / 3 < 1 / 1): weights shape the share only once calls overlap.
 *
 * The scores of equal ratios compare exactly: (a + 1) / w is a correctly rounded division of integers, so 3 / 3 and
 * 1 / 1 are both exactly 1.
 */
import type { Balancer, BalancerNode } from './types.ts';

export class LeastConnBalancer implements Balancer {
  private readonly weights: Float64Array;
  private readonly active: Int32Array;
  /** (active + 1) / weight per node; Infinity for weight 0, which never beats the initial best and so is never chosen. */
  private readonly scores: Float64Array;
  /** Where the next scan starts: one past the last pick, so that ties rotate. */
  private next = 0;

  constructor(nodes: readonly BalancerNode[]) {
    const n = nodes.length;
    this.weights = new Float64Array(n);
    this.active = new Int32Array(n);
    this.scores = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const w = nodes[i]?.weight ?? 0;
      this.weights[i] = w > 0 ? w : 0;
      this.scores[i] = w > 0 ? 1 / w : Infinity;
    }
  }

  pick(usable: Uint8Array | undefined, _hashKey: string): number {
    const scores = this.scores;
    const n = scores.length;
    const start = this.next;
    let best = -1;
    let bestScore = Infinity;
    // Two loops (start..n, then 0..start) rather than one with a modulo: the scan is the whole cost of a pick.
    if (usable === undefined) {
      for (let i = start; i < n; i++) {
        const s = scores[i] as number;
        if (s < bestScore) {
          bestScore = s;
          best = i;
        }
      }
      for (let i = 0; i < start; i++) {
        const s = scores[i] as number;
        if (s < bestScore) {
          bestScore = s;
          best = i;
        }
      }
    } else {
      for (let i = start; i < n; i++) {
        const s = scores[i] as number;
        if (s < bestScore && usable[i] !== 0) {
          bestScore = s;
          best = i;
        }
      }
      for (let i = 0; i < start; i++) {
        const s = scores[i] as number;
        if (s < bestScore && usable[i] !== 0) {
          bestScore = s;
          best = i;
        }
      }
    }
    if (best >= 0) this.next = best + 1 === n ? 0 : best + 1;
    return best;
  }

  begin(index: number): void {
    const w = this.weights[index];
    if (w === undefined || w === 0) return;
    const a = (this.active[index] as number) + 1; // index has a weight: in range
    this.active[index] = a;
    this.scores[index] = (a + 1) / w;
  }

  end(index: number, _latencyMs: number, _failed: boolean): void {
    const w = this.weights[index];
    if (w === undefined || w === 0) return;
    // Never below 0: an end without its begin (a caller's bug) must not make a node look better than idle.
    const a = Math.max(0, (this.active[index] as number) - 1);
    this.active[index] = a;
    this.scores[index] = (a + 1) / w;
  }
}
