/**
 * The time of the socket read being handled, read once per read instead of once per call event: nginx updates its
 * cached time once per event cycle for the same reason. A read of the native engine carries the frames of many
 * calls at load, and the observer reads the clock three times per call (its start, its first attempt, its end):
 * 0.15 µs per call of performance.now() at 50 ns each on this machine, now one read's worth shared by its calls.
 *
 * Outside a read (a timer, a connect that completed, a promise), now() reads performance.now() itself, so a time is
 * never older than the event it stamps. Off until something that records calls enables it: the relay alone pays
 * one flag test per read.
 */

let enabled = false;
let inRead = false;
let readAt = 0;

/** From now on socket reads stamp their time (the observer calls this when it records anything). */
export function enableReadClock(): void {
  enabled = true;
}

/** A socket's bytes are about to be handled (http2/socket-reader.ts). */
export function readStarted(): void {
  if (!enabled) return;
  readAt = performance.now();
  inRead = true;
}

/** The read's bytes were handled. */
export function readEnded(): void {
  inRead = false;
}

/** performance.now() as of the read being handled, or now when outside one. */
export function readClockNow(): number {
  return inRead ? readAt : performance.now();
}
