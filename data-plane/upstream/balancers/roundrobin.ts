/**
 * `roundrobin`: smooth weighted round robin, nginx's algorithm (ngx_http_upstream_get_peer), which APISIX's
 * `roundrobin` gets through lua-resty-balancer's `resty.roundrobin` in effect. Every pick adds each candidate's
 * weight to its running score, takes the highest score and subtracts the candidates' total weight from it. Over any
 * window of sum(weights) picks each node is chosen exactly `weight` times, spread out rather than in runs (weights
 * 1:3 give b a b b, not a b b b). A node of weight 0 is never chosen.
 *
 * With a mask, only the usable nodes take part: they alone gain their weight and the winner loses only their total,
 * so the scores of all nodes keep summing to 0 and a node that comes back resumes its share without a burst.
 *
 * Cost: O(n) per pick over typed arrays, no allocation. nginx does the same scan (it has no schedule table).
 */
import type { Balancer, BalancerNode } from './types.ts';

export class RoundRobinBalancer implements Balancer {
  private readonly weights: Float64Array;
  /**
   * nginx's `current_weight` per node; -Infinity for a node of weight 0, which stays -Infinity (-Infinity + 0) and
   * never beats the initial best (-Infinity, compared with >): no weight test in the loop.
   */
  private readonly scores: Float64Array;
  /** Sum of the weights: what the winner loses when every node took part. */
  private readonly total: number;

  constructor(nodes: readonly BalancerNode[]) {
    const n = nodes.length;
    this.weights = new Float64Array(n);
    this.scores = new Float64Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const w = nodes[i]?.weight ?? 0;
      // A negative or NaN weight (schemas forbid both) counts as 0 rather than corrupting the scores' sum.
      const weight = w > 0 ? w : 0;
      this.weights[i] = weight;
      if (weight === 0) this.scores[i] = -Infinity;
      total += weight;
    }
    this.total = total;
  }

  pick(usable: Uint8Array | undefined, _hashKey: string): number {
    const weights = this.weights;
    const scores = this.scores;
    const n = weights.length;
    let best = -1;
    let bestScore = -Infinity;
    if (usable === undefined) {
      for (let i = 0; i < n; i++) {
        const s = (scores[i] as number) + (weights[i] as number);
        scores[i] = s;
        if (s > bestScore) {
          bestScore = s;
          best = i;
        }
      }
      if (best >= 0) scores[best] = bestScore - this.total;
      return best;
    }
    let total = 0;
    for (let i = 0; i < n; i++) {
      if (usable[i] === 0) continue;
      const w = weights[i] as number;
      const s = (scores[i] as number) + w;
      scores[i] = s;
      total += w;
      if (s > bestScore) {
        bestScore = s;
        best = i;
      }
    }
    if (best >= 0) scores[best] = bestScore - total;
    return best;
  }

  begin(_index: number): void {}

  end(_index: number, _latencyMs: number, _failed: boolean): void {}
}
