/** The rebuild throttle with a hand-driven clock: when builds run, and with which state. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FACTOR, MIN_INTERVAL_MS, RebuildThrottle, type Clock } from '../../data-plane/config/rebuild-throttle.ts';

class ManualClock implements Clock {
  time = 1_000;
  timers: { at: number; run: () => void; id: number }[] = [];
  #next = 0;
  now(): number {
    return this.time;
  }
  setTimeout(run: () => void, ms: number): unknown {
    const id = ++this.#next;
    this.timers.push({ at: this.time + ms, run, id });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }
  advance(ms: number): void {
    this.time += ms;
    for (const timer of this.timers.filter((t) => t.at <= this.time)) {
      this.timers = this.timers.filter((t) => t !== timer);
      timer.run();
    }
  }
}

test('an isolated change builds at once', () => {
  const clock = new ManualClock();
  const built: number[] = [];
  const throttle = new RebuildThrottle<number>((n) => built.push(n), clock);
  throttle.push(1);
  assert.deepEqual(built, [1]);
  clock.advance(MIN_INTERVAL_MS);
  throttle.push(2);
  assert.deepEqual(built, [1, 2], 'a change after the interval also builds at once');
});

test('a burst within the interval builds once more, with the newest state only', () => {
  const clock = new ManualClock();
  const built: number[] = [];
  const throttle = new RebuildThrottle<number>((n) => built.push(n), clock);
  throttle.push(1);
  for (let n = 2; n <= 50; n++) throttle.push(n);
  assert.deepEqual(built, [1]);
  clock.advance(MIN_INTERVAL_MS);
  assert.deepEqual(built, [1, 50]);
  clock.advance(MIN_INTERVAL_MS * 10);
  assert.deepEqual(built, [1, 50], 'nothing left to build');
});

test('a slow build stretches the interval to FACTOR times its duration', () => {
  const clock = new ManualClock();
  const built: number[] = [];
  const throttle = new RebuildThrottle<number>((n) => {
    built.push(n);
    clock.time += 25; // this build takes 25 ms
  }, clock);
  throttle.push(1);
  throttle.push(2);
  clock.advance(25 * FACTOR - 1);
  assert.deepEqual(built, [1], 'not before FACTOR × the last build');
  clock.advance(1);
  assert.deepEqual(built, [1, 2]);
});

test('close() drops the pending state and builds nothing more', () => {
  const clock = new ManualClock();
  const built: number[] = [];
  const throttle = new RebuildThrottle<number>((n) => built.push(n), clock);
  throttle.push(1);
  throttle.push(2);
  throttle.close();
  clock.advance(1_000);
  throttle.push(3);
  assert.deepEqual(built, [1]);
  assert.equal(clock.timers.length, 0);
});
