/**
 * Retry pacing for the etcd config source: exponential backoff with jitter, a sleep that a close() cuts short, and
 * the constant backoff handed to etcd3 for its own watch-stream retries.
 *
 * APISIX backs off exponentially (1, 2, 4 ... s) while no etcd endpoint is healthy and sleeps `resync_delay` (5 s)
 * plus up to 50% jitter on other errors (its config_etcd.lua). The same shape is used here, starting lower so
 * a data plane catches up quickly after a short etcd blip, and the jitter keeps N replicas from retrying in step.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** First retry delay: a restarted etcd member is usually back within a second. */
export const RETRY_INITIAL_MS = 250;
/** Longest retry delay, APISIX's default `resync_delay`. */
export const RETRY_MAX_MS = 5_000;
/** Up to this fraction is added at random to every delay, as APISIX does with `resync_delay`. */
export const RETRY_JITTER = 0.5;
const RETRY_FACTOR = 2;

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  jitter: number;
}

export class Backoff {
  readonly #options: BackoffOptions;
  #baseMs: number;

  constructor(options: BackoffOptions = { initialMs: RETRY_INITIAL_MS, maxMs: RETRY_MAX_MS, jitter: RETRY_JITTER }) {
    this.#options = options;
    this.#baseMs = options.initialMs;
  }

  /** The delay before the next attempt; each call doubles the base up to the maximum. */
  next(): number {
    const base = this.#baseMs;
    this.#baseMs = Math.min(base * RETRY_FACTOR, this.#options.maxMs);
    return Math.round(base * (1 + Math.random() * this.#options.jitter));
  }

  /** After a success, the next failure starts again from the initial delay. */
  reset(): void {
    this.#baseMs = this.#options.initialMs;
  }
}

/** The shape of cockatiel's IBackoff that etcd3's `faultHandling.watchBackoff` takes, declared structurally. */
export interface ConstantBackoff {
  readonly duration: number;
  next(): ConstantBackoff;
}

/** The same delay every time. */
export function constantBackoff(duration: number): ConstantBackoff {
  const backoff: ConstantBackoff = { duration, next: () => backoff };
  return backoff;
}

/** Resolves after `delayMs`, or as soon as `signal` aborts; never rejects. */
export async function delay(delayMs: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(delayMs, undefined, { signal });
  } catch {
    // aborted: the owner is closing, so waking up early is the point
  }
}
