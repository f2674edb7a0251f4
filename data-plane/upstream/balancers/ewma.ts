/**
 * `ewma` (apisix/balancer/ewma.lua, itself after Finagle's PeakEwma): per node an exponentially weighted moving
 * average of latency that decays with time, and power of two choices: two distinct usable nodes drawn at random, the
 * one with the lower score wins. Weights are ignored except that a node of weight 0 is never chosen (as in APISIX).
 *
 * - Learning (end): a sample taken Δt after the node's previous one counts (1 - e^(-Δt/10 s)):
 *   ewma = ewma · e^(-Δt/τ) + latency · (1 - e^(-Δt/τ)), τ = DECAY_TIME 10 s as in APISIX. The first sample of a node
 *   is taken as is (APISIX gets the same from its "last touched at 0").
 * - Scoring (pick): the average decayed towards 0 by the time since the node's last sample, as APISIX's `score()`
 *   does, so a node that lost every comparison for a while (slow, or penalised after a failure) is tried again and
 *   its average refreshed; times the calls in flight plus one, Finagle's cost: APISIX ignores calls in flight, so a
 *   burst arriving before any response all goes to the node that was fastest; with (active + 1) the burst spreads as
 *   soon as the fast node's queue makes it look as slow as the next one.
 * - Cold nodes (no sample yet) get a fair start: while some usable node is cold and idle, the pick is that node (in
 *   turn), so every node of a new balancer, or one unmasked after being down since the start, is tried at once
 *   instead of by chance. A cold node with a call in flight scores COLD_BUSY_PENALTY (+ its calls): it waits for its
 *   first answer rather than taking the traffic that APISIX's score 0 would give it until then.
 * - Failures (end with failed = true): the sample is max(latency, FAILURE_PENALTY_MS = 1 s) and it is taken as a
 *   peak (ewma = max(average, sample)) rather than averaged: averaged with a Δt of a millisecond it would count for
 *   1/10,000 and a node that fails fast (connection refused in 1 ms) would look like the best node of all. APISIX
 *   learns nothing from a failed try (only from the last attempt's response time) and leaves it to health checks.
 *   Decay brings a penalised node back: against 10 ms nodes after about 45 s, against 100 ms nodes after about 23 s.
 *
 * Time is read once per end() (performance.now()), not per pick: scores decay by the time of the latest end() on any
 * node of the balancer, which moves as long as calls finish; a pick is two table reads, two Math.exp and a compare.
 * Statistics live in the balancer, so a config change that rebuilds it starts every node cold (APISIX keeps them in
 * a shared dict keyed by host:port across upstream changes).
 */
import type { Balancer, BalancerNode } from './types.ts';

/** APISIX's DECAY_TIME (10 s), in ms. */
export const DECAY_TIME_MS = 10_000;
/** The latency counted for a failed attempt when it was faster than this. */
export const FAILURE_PENALTY_MS = 1_000;
/** Score of a cold node with its first call in flight: loses to any node with a sample. */
const COLD_BUSY_PENALTY = 1e12;
/** Random draws before a masked pick falls back to counting the usable nodes. */
const DRAWS = 8;

export class EwmaBalancer implements Balancer {
  private readonly ewma: Float64Array;
  /** performance.now() of each node's last sample. */
  private readonly touched: Float64Array;
  private readonly active: Int32Array;
  /** Indices of the nodes of weight > 0: the only candidates. */
  private readonly eligible: Uint32Array;
  /** Indices of the eligible nodes without a sample yet (the first `coldCount` entries), and each one's slot there. */
  private readonly cold: Uint32Array;
  private readonly coldSlot: Int32Array;
  private coldCount: number;
  /** Rotates the cold-node probe so that masked or busy cold nodes do not keep the others waiting. */
  private coldNext = 0;
  /** The time of the latest end(): scores decay by it. */
  private now: number;
  /** xorshift32 state: Math.random() costs more and the draws need no quality beyond uniformity. */
  private rng: number;

  constructor(nodes: readonly BalancerNode[]) {
    const n = nodes.length;
    this.ewma = new Float64Array(n);
    this.touched = new Float64Array(n);
    this.active = new Int32Array(n);
    this.coldSlot = new Int32Array(n).fill(-1);
    let m = 0;
    for (const node of nodes) if (node.weight > 0) m++;
    this.eligible = new Uint32Array(m);
    this.cold = new Uint32Array(m);
    m = 0;
    for (let i = 0; i < n; i++) {
      if (!((nodes[i] as BalancerNode).weight > 0)) continue;
      this.eligible[m] = i;
      this.cold[m] = i;
      this.coldSlot[i] = m;
      m++;
    }
    this.coldCount = m;
    this.now = performance.now();
    this.rng = ((Math.random() * 0xffffffff) | 0) || 0x2545f491;
  }

  pick(usable: Uint8Array | undefined, _hashKey: string): number {
    if (this.coldCount > 0) {
      const probe = this.coldProbe(usable);
      if (probe >= 0) return probe;
    }
    const eligible = this.eligible;
    const m = eligible.length;
    if (m === 0) return -1;
    let a: number;
    let b: number;
    if (usable === undefined) {
      if (m === 1) return eligible[0] as number;
      const ia = this.random(m);
      // The second draw is over the other m - 1 nodes: distinct without a retry loop.
      let ib = this.random(m - 1);
      if (ib >= ia) ib++;
      a = eligible[ia] as number;
      b = eligible[ib] as number;
    } else {
      a = this.randomUsable(usable, -1);
      if (a < 0) return -1;
      b = this.randomUsable(usable, a);
      if (b < 0) return a;
    }
    return this.score(b) < this.score(a) ? b : a;
  }

  begin(index: number): void {
    if (index >= 0 && index < this.active.length) this.active[index] = (this.active[index] as number) + 1;
  }

  end(index: number, latencyMs: number, failed: boolean): void {
    if (!(index >= 0 && index < this.active.length) || this.coldSlot[index] === undefined) return;
    this.active[index] = Math.max(0, (this.active[index] as number) - 1);
    // A negative latency is "no sample" (the attempt got no answer and did not fail: refused, cancelled).
    if (latencyMs < 0 && !failed) return;
    const now = performance.now();
    if (now > this.now) this.now = now;
    let sample = latencyMs >= 0 ? latencyMs : 0;
    if (failed && sample < FAILURE_PENALTY_MS) sample = FAILURE_PENALTY_MS;
    let ewma: number;
    if (this.coldSlot[index] >= 0) {
      this.warm(index);
      ewma = sample;
    } else {
      const w = Math.exp(-Math.max(0, this.now - (this.touched[index] as number)) / DECAY_TIME_MS);
      ewma = (this.ewma[index] as number) * w + sample * (1 - w);
      if (failed && ewma < sample) ewma = sample;
    }
    this.ewma[index] = ewma;
    this.touched[index] = this.now;
  }

  private score(i: number): number {
    // `i` is a node index, below the length of every per-node array.
    const active = this.active[i] as number;
    if ((this.coldSlot[i] as number) >= 0) return active === 0 ? 0 : COLD_BUSY_PENALTY + active;
    const age = this.now - (this.touched[i] as number);
    const ewma = age > 0 ? (this.ewma[i] as number) * Math.exp(-age / DECAY_TIME_MS) : (this.ewma[i] as number);
    return ewma * (active + 1);
  }

  /** A usable cold node without a call in flight, taken in turn; -1 when there is none. */
  private coldProbe(usable: Uint8Array | undefined): number {
    const cold = this.cold;
    const count = this.coldCount;
    const active = this.active;
    let k = this.coldNext < count ? this.coldNext : 0;
    for (let seen = 0; seen < count; seen++) {
      const i = cold[k] as number;
      k = k + 1 === count ? 0 : k + 1;
      if (active[i] === 0 && (usable === undefined || usable[i] !== 0)) {
        this.coldNext = k;
        return i;
      }
    }
    return -1;
  }

  /** Node `index` got its first sample: out of the cold list (swap with the last). */
  private warm(index: number): void {
    const slot = this.coldSlot[index] as number;
    const last = --this.coldCount;
    const moved = this.cold[last] as number;
    this.cold[slot] = moved;
    this.coldSlot[moved] = slot;
    this.coldSlot[index] = -1;
  }

  /** A uniformly drawn usable eligible node other than `except`, or -1 when there is none. */
  private randomUsable(usable: Uint8Array, except: number): number {
    const eligible = this.eligible;
    const m = eligible.length;
    // Rejection sampling: with ~10 % of nodes masked, one or two draws. A draw that fails DRAWS times (most nodes
    // masked) falls back to counting, which is as uniform: each stage picks uniformly among the usable nodes.
    for (let t = 0; t < DRAWS; t++) {
      const i = eligible[this.random(m)] as number;
      if (i !== except && usable[i] !== 0) return i;
    }
    let count = 0;
    for (let k = 0; k < m; k++) {
      const i = eligible[k] as number;
      if (i !== except && usable[i] !== 0) count++;
    }
    if (count === 0) return -1;
    let r = this.random(count);
    for (let k = 0; k < m; k++) {
      const i = eligible[k] as number;
      if (i !== except && usable[i] !== 0 && r-- === 0) return i;
    }
    return -1;
  }

  /**
   * Uniform in [0, n) (xorshift32, scaled by multiplication: floor(x · n / 2^32), exact in doubles for n < 2^21; an
   * unsigned `%` would be a floating-point modulo, several times slower; the bias at a few hundred nodes is < 1e-7).
   */
  private random(n: number): number {
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x;
    return Math.floor((x >>> 0) * n * 2.3283064365386963e-10);
  }
}
