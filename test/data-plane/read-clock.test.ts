/**
 * The read clock (data-plane/read-clock.ts): one performance.now() per socket read, shared by the call events that
 * read carries, and a fresh reading outside reads, so that no time is older than the event it stamps.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { enableReadClock, readClockNow, readEnded, readStarted } from '../../data-plane/read-clock.ts';

const busy = (ms: number): void => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

test('within a read every event gets the read’s time; outside one, the time now', () => {
  enableReadClock();
  readStarted();
  const first = readClockNow();
  busy(2);
  assert.equal(readClockNow(), first, 'the same read: the same time');
  readEnded();
  const outside = readClockNow();
  assert.ok(outside >= first + 2, `outside a read the clock moves (${outside} vs ${first})`);
  busy(1);
  assert.ok(readClockNow() > outside);
  readStarted();
  assert.ok(readClockNow() >= outside + 1, 'the next read has its own time');
  readEnded();
});
