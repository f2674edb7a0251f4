/**
 * Paces snapshot rebuilds (leading-edge throttle): a change applies at once unless a rebuild ran less than the
 * interval ago; then only the newest state is built when the interval ends, every state that arrived meanwhile is
 * skipped (each state is complete, so the newest one supersedes them). The interval is at least MIN_INTERVAL_MS and
 * at least FACTOR times the last build's duration, so a large config never spends most of its CPU rebuilding while
 * an isolated change still applies with no added delay.
 *
 * A build that throws never escapes: it would otherwise end the watch callback that pushed the state or, from the
 * timer, the whole process (an uncaught exception). The error goes to `onError`; the snapshot in service stays (the
 * build never swapped it), and the next state pushed is built as usual.
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

/** Told about a build that threw, with the state it was building. */
export type BuildErrorHandler<S> = (err: unknown, state: S) => void;

function ignoreBuildError(): void {
  // tests that drive the throttle alone; the data plane passes a handler that logs and reports
}

export class RebuildThrottle<S> {
  readonly #build: (state: S) => void;
  readonly #onError: BuildErrorHandler<S>;
  readonly #clock: Clock;
  #pending: S | undefined;
  #timer: unknown;
  #lastEnd = -Infinity;
  #intervalMs = MIN_INTERVAL_MS;
  #closed = false;

  /** `build` is called with the newest state; its duration sets the next interval; `onError` hears of its throws. */
  constructor(build: (state: S) => void, clock: Clock = realClock, onError: BuildErrorHandler<S> = ignoreBuildError) {
    this.#build = build;
    this.#onError = onError;
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
    } catch (err) {
      this.#report(err, state);
    } finally {
      this.#lastEnd = this.#clock.now();
      this.#intervalMs = Math.max(MIN_INTERVAL_MS, (this.#lastEnd - started) * FACTOR);
    }
  }

  #report(err: unknown, state: S): void {
    try {
      this.#onError(err, state);
    } catch {
      // the handler only logs; a throw there must not escape either
    }
  }
}
