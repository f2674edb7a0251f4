/**
 * The balancer interface (APISIX's `upstream.type`): one balancer per priority group of an upstream, built once per
 * config change over a fixed list of nodes, picking per call. Nodes are addressed by their index in that list.
 *
 * Health and retries do not rebuild a balancer: the caller passes `usable`, a mask over the same indices (1 = may
 * be chosen), or undefined when every node may be (the fast path: no node down and no node tried yet by this call).
 * A node of weight 0 is never chosen, whatever the mask says.
 */
export interface BalancerNode {
  readonly key: string;
  readonly weight: number;
}

export type BalancerType = 'roundrobin' | 'least_conn' | 'chash' | 'ewma';

export interface Balancer {
  /**
   * The index of the node for this call, or -1 when no node is usable. `hashKey` is the call's key for `chash`
   * (computed by the caller from `hash_on`/`key`); the other balancers ignore it.
   */
  pick(usable: Uint8Array | undefined, hashKey: string): number;
  /** A call started on node `index` (least_conn and ewma count calls in flight). */
  begin(index: number): void;
  /**
   * The call on node `index` ended. `latencyMs`: time from the attempt's start to its response headers (or to its
   * end when it failed before them), which ewma learns from, or -1 for no sample (an attempt that got no answer
   * and says nothing about the node: refused, cancelled by the client); `failed`: the attempt failed before a
   * response.
   */
  end(index: number, latencyMs: number, failed: boolean): void;
}
