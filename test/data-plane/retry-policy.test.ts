/**
 * The retry policy of the call/attempt split (data-plane/proxy/retry-policy.ts), as a pure function: every rule of
 * its file comment, one assertion each.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideRetry, type AttemptOutcome, type RetryState } from '../../data-plane/proxy/retry-policy.ts';

const base: RetryState = {
  replayable: true,
  elapsedMs: 10,
  retryTimeoutMs: 0,
  deadlineLeftMs: Number.POSITIVE_INFINITY,
  refusedRetried: false,
  nodesTried: 1,
  retries: 2,
};

test('only attempts the upstream never processed are retried', () => {
  const never: AttemptOutcome[] = ['lost', 'reset', 'complete'];
  for (const outcome of never) assert.equal(decideRetry(outcome, base), 'fail', outcome);
  assert.equal(decideRetry('connect-failed', base), 'next-node');
  assert.equal(decideRetry('refused', base), 'same-node');
});

test('a refused stream is tried once more on the same node, then on the next', () => {
  assert.equal(decideRetry('refused', { ...base, refusedRetried: false }), 'same-node');
  assert.equal(decideRetry('refused', { ...base, refusedRetried: true }), 'next-node');
  assert.equal(decideRetry('refused', { ...base, refusedRetried: true, nodesTried: 3, retries: 2 }), 'fail');
});

test('a failed connect goes to the next node up to `retries` other nodes', () => {
  assert.equal(decideRetry('connect-failed', { ...base, nodesTried: 1, retries: 0 }), 'fail');
  assert.equal(decideRetry('connect-failed', { ...base, nodesTried: 1, retries: 1 }), 'next-node');
  assert.equal(decideRetry('connect-failed', { ...base, nodesTried: 2, retries: 1 }), 'fail');
  assert.equal(decideRetry('connect-failed', { ...base, nodesTried: 3, retries: 3 }), 'next-node');
});

test('no retry without the bytes to replay, past retry_timeout, or past the deadline', () => {
  for (const outcome of ['connect-failed', 'refused'] as const) {
    assert.equal(decideRetry(outcome, { ...base, replayable: false }), 'fail', `${outcome}: not replayable`);
    assert.equal(decideRetry(outcome, { ...base, retryTimeoutMs: 100, elapsedMs: 100 }), 'fail', `${outcome}: retry_timeout`);
    assert.equal(decideRetry(outcome, { ...base, deadlineLeftMs: 0 }), 'fail', `${outcome}: deadline`);
    assert.notEqual(decideRetry(outcome, { ...base, retryTimeoutMs: 100, elapsedMs: 99, deadlineLeftMs: 1 }), 'fail', `${outcome}: within both`);
  }
});
