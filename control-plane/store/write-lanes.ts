/**
 * Writes to one etcd key from this control plane run one after the other ("a lane per key"), so that concurrent
 * admin requests on the same object do not race each other's compare-and-swap.
 *
 * Without it, N concurrent PUTs of one key all read revision R and all send a transaction comparing R: one wins,
 * N−1 lose, re-read and race again, so the last of them needs N rounds and the store gives up long before (1,000
 * concurrent PUTs: 799 answered 503, issue #11 case 10). In a lane each write compares against the revision the
 * previous one produced, which the lane remembers (`known`), so a queued write costs one transaction and no read.
 * A compare can still fail when another control plane (or etcdctl) wrote the key: the store then retries on the
 * fresh value it gets back from the failed transaction itself.
 *
 * A write that fails because etcd is unavailable fails the writes queued behind it at that moment with the same
 * error, rather than letting each of them wait for its own bound in turn: they asked for the same cluster at the
 * same time. Writes queued later try etcd again.
 */

/** What a lane knows about its key after a write: the stored value and revisions, or that the key is absent. */
export interface KnownValue {
  value: Buffer;
  createRevision: string;
  modRevision: string;
}

export interface Lane {
  /** The key as the last write of this lane left it; undefined when unknown (read it), null when absent. */
  known: KnownValue | null | undefined;
}

interface LaneState extends Lane {
  tail: Promise<void>;
  pending: number;
  /** The last outage error and when it happened: writes queued before that moment fail with it. */
  failure: { error: unknown; at: number } | undefined;
}

export class WriteLanes {
  readonly #lanes = new Map<string, LaneState>();
  readonly #isOutage: (err: unknown) => boolean;

  /** `isOutage` tells the errors that fail the writes queued behind (etcd unavailable) from a write's own errors. */
  constructor(isOutage: (err: unknown) => boolean) {
    this.#isOutage = isOutage;
  }

  /** Runs `write` after every write to `key` queued before it. */
  run<T>(key: string, write: (lane: Lane) => Promise<T>): Promise<T> {
    let lane = this.#lanes.get(key);
    if (lane === undefined) {
      lane = { tail: Promise.resolve(), pending: 0, known: undefined, failure: undefined };
      this.#lanes.set(key, lane);
    }
    const state = lane;
    const queuedAt = performance.now();
    state.pending += 1;
    const result = state.tail.then(async () => {
      if (state.failure !== undefined && state.failure.at > queuedAt) throw state.failure.error;
      try {
        return await write(state);
      } catch (err) {
        // After a failure the lane no longer knows the key's state (a write may or may not have been applied).
        state.known = undefined;
        if (this.#isOutage(err)) state.failure = { error: err, at: performance.now() };
        throw err;
      }
    });
    const settled = (): void => {
      state.pending -= 1;
      if (state.pending === 0 && this.#lanes.get(key) === state) this.#lanes.delete(key);
    };
    state.tail = result.then(settled, settled);
    return result;
  }

  /** Keys with writes queued or running (for tests). */
  get size(): number {
    return this.#lanes.size;
  }
}
