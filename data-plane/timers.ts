/**
 * The one clamp for every timer the data plane arms with a delay that came from configuration (upstream
 * `timeout.connect/send/read`, `keepalive_pool.idle_timeout`, the standalone file's poll interval) or from the wire
 * (`grpc-timeout`).
 *
 * Node's timers take a signed 32-bit millisecond count: a delay above 2^31-1 ms (about 24.8 days), or below 1, or
 * NaN, is silently replaced by 1 ms with a TimeoutOverflowWarning (node/lib/internal/timers.js). So a generous
 * `timeout.connect: 3000000` fired at once and tore the dial down, and `grpc-timeout: 720H` expired on arrival.
 * Clamping to [1, 2^31-1] keeps the intent: a delay longer than a timer can hold means "longer than we can time",
 * never "now". A caller whose deadline lies beyond the clamp re-arms when the clamped timer fires (forward.ts).
 */

/** The largest delay setTimeout/setInterval/stream.setTimeout accept: 2^31-1 ms (TIMEOUT_MAX in Node). */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;
/** The smallest delay a timer has anyway: Node turns 0 and fractions below 1 into 1 ms. */
export const MIN_TIMER_DELAY_MS = 1;

/**
 * `ms` within what a Node timer can hold. NaN becomes the minimum, as Node itself treats it; +Infinity the maximum.
 */
export function clampDelay(ms: number): number {
  if (!(ms >= MIN_TIMER_DELAY_MS)) return MIN_TIMER_DELAY_MS;
  return ms > MAX_TIMER_DELAY_MS ? MAX_TIMER_DELAY_MS : ms;
}
