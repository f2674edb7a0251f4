/**
 * Paces snapshot rebuilds (leading-edge throttle): a change applies at once unless a rebuild ran less than the
 * interval ago; then only the newest state is built when the interval ends, every state that arrived meanwhile is
 * skipped (each state is complete, so the newest one supersedes them). The interval is at least MIN_INTERVAL_MS and
 * at least FACTOR times the last build's duration, so a large config never spends most of its CPU rebuilding while
 * an isolated change still applies with no added delay.
 */
export const MIN_INTERVAL_MS = 10;
export const FACTOR = 4;

export interface Clock {
  now(): number;
  setTimeout(run: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (run, ms) => setTimeout(run, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export class RebuildThrottle<S> {
  readonly #build: (state: S) => void;
  readonly #clock: Clock;
  #pending: S | undefined;
  #timer: unknown;
  #lastEnd = -Infinity;
  #intervalMs = MIN_INTERVAL_MS;
  #closed = false;

  /** `build` is called with the newest state; its duration sets the next interval. */
  constructor(build: (state: S) => void, clock: Clock = realClock) {
    this.#build = build;
    this.#clock = clock;
  }

  push(state: S): void {
    if (this.#closed) return;
    this.#pending = state;
    if (this.#timer !== undefined) return;
    const wait = this.#lastEnd + this.#intervalMs - this.#clock.now();
    if (wait <= 0) this.#run();
    else this.#timer = this.#clock.setTimeout(() => this.#run(), wait);
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending = undefined;
  }

  #run(): void {
    this.#timer = undefined;
    const state = this.#pending;
    this.#pending = undefined;
    if (state === undefined || this.#closed) return;
    const started = this.#clock.now();
    try {
      this.#build(state);
    } finally {
      this.#lastEnd = this.#clock.now();
      this.#intervalMs = Math.max(MIN_INTERVAL_MS, (this.#lastEnd - started) * FACTOR);
    }
  }
}
