/** PooledSession.unprocessed: which upstream streams are safe to retry after a GOAWAY (RFC 9113 §6.8). */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { ClientHttp2Session } from 'node:http2';
import { test } from 'node:test';
import { PooledSession } from '../../data-plane/upstream/pool.ts';
import type { UpstreamNode } from '../../data-plane/upstream/upstream.ts';

// unprocessed() never touches the session: an emitter stands in for it.
const pooled = (): PooledSession => new PooledSession(new EventEmitter() as ClientHttp2Session, {} as UpstreamNode);

test('a stream never sent (no id) was not processed', () => {
  assert.equal(pooled().unprocessed({ id: undefined }), true);
});

test('without a GOAWAY every sent stream may have been processed', () => {
  assert.equal(pooled().unprocessed({ id: 5 }), false);
});

test("after a GOAWAY, streams above its last-stream-id were not processed; those up to it may have been", () => {
  const p = pooled();
  p.goawayLastStreamId = 3;
  assert.equal(p.unprocessed({ id: 3 }), false);
  assert.equal(p.unprocessed({ id: 5 }), true);
});
