/**
 * Smooth weighted round robin (nginx's algorithm, which APISIX's `roundrobin` also follows in effect): every pick
 * adds each node's weight to its running score, takes the highest score and subtracts the total weight from it.
 * Over any window of sum(weights) picks each node is chosen exactly `weight` times, spread out rather than in runs,
 * and a node of weight 0 is never chosen. Balancing is per call (every stream picks), never per connection.
 */
export interface BalancedNode {
  readonly key: string;
  readonly weight: number;
}

export class RoundRobinBalancer<N extends BalancedNode> {
  private readonly nodes: N[];
  private readonly scores: number[];
  private readonly total: number;

  constructor(nodes: readonly N[]) {
    this.nodes = nodes.filter((n) => n.weight > 0);
    this.scores = this.nodes.map(() => 0);
    this.total = this.nodes.reduce((sum, n) => sum + n.weight, 0);
  }

  get size(): number {
    return this.nodes.length;
  }

  /** The next node, skipping those in `exclude` (nodes already tried by this call); undefined when none is left. */
  pick(exclude?: ReadonlySet<string>): N | undefined {
    let best = -1;
    let bestScore = -Infinity;
    let total = 0;
    for (let i = 0; i < this.nodes.length; i++) {
      const node = this.nodes[i];
      if (node === undefined || exclude?.has(node.key) === true) continue;
      const score = (this.scores[i] ?? 0) + node.weight;
      this.scores[i] = score;
      total += node.weight;
      if (score > bestScore) {
        bestScore = score;
        best = i;
      }
    }
    if (best < 0) return undefined;
    this.scores[best] = bestScore - (exclude === undefined ? this.total : total);
    return this.nodes[best];
  }
}
