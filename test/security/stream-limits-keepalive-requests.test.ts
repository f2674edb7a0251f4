/**
 * Requests per connection (nginx `keepalive_requests`; issue #11, case 5): a connection may open so many streams
 * over its life, then gets GOAWAY(NO_ERROR) naming its last stream, which is still served; the client opens a new
 * connection for what follows. That bounds what one long-lived connection can cost and must be invisible to a
 * gRPC client: grpc-js calls go on across the GOAWAYs without a failure. The limit is 5 here to cross it often.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { constants } from 'node:http2';
import { SAY_HELLO } from '../faults/fault-kit.ts';
import { sayHello } from '../helpers/greeter.ts';
import { AttackClient, FrameType, grpcRequestHeaders } from './h2-attack-client.ts';
import { streamRequest } from './non-reading-client.ts';
import { useSecurityBench } from './security-kit.ts';

const KEEPALIVE_REQUESTS = 5;
const SEQUENTIAL_CALLS = 4 * KEEPALIVE_REQUESTS + 1;
/** Time for a stream sent after the GOAWAY to be (wrongly) answered. */
const IGNORED_STREAM_WAIT_MS = 300;

describe('requests per connection', { timeout: 60_000 }, () => {
  const bench = useSecurityBench(`http2: { keepalive_requests: ${KEEPALIVE_REQUESTS} }`);

  test('the stream that reaches keepalive_requests is served and the connection gets GOAWAY(NO_ERROR) naming it', async () => {
    const b = bench();
    const client = await AttackClient.open(b.h2c);
    try {
      const headers = grpcRequestHeaders(b.h2c.address, SAY_HELLO);
      const ids = Array.from({ length: KEEPALIVE_REQUESTS }, (_, i) => 1 + 2 * i);
      const last = ids[ids.length - 1] ?? 0;
      client.batch(() => {
        for (const id of ids) {
          client.headers(id, headers);
          client.data(id, streamRequest(1, 1), true);
        }
      });
      await client.waitFor(() => ids.every((id) => client.streamEnded(id)), 'not every stream up to the limit was answered');
      assert.deepEqual(ids.map((id) => client.rstCode(id)), ids.map(() => undefined), `a stream up to the limit was reset: ${client.summary()}`);
      await client.waitFor(() => client.goaway() !== undefined, 'no GOAWAY after keepalive_requests streams');
      assert.deepEqual(client.goaway(), { lastStreamId: last, code: constants.NGHTTP2_NO_ERROR });
      // A stream above the GOAWAY's last-stream-id is not processed (RFC 9113 §6.8): the client retries it elsewhere.
      const upstreamBefore = b.upstream.streams.length;
      client.headers(last + 2, headers);
      client.data(last + 2, streamRequest(1, 1), true);
      await sleep(IGNORED_STREAM_WAIT_MS);
      assert.equal(client.received(FrameType.HEADERS, last + 2).length, 0, 'a stream after the GOAWAY was answered');
      assert.equal(b.upstream.streams.length, upstreamBefore, 'a stream after the GOAWAY reached the upstream');
    } finally {
      client.destroy();
    }
  });

  test('grpc-js calls keep succeeding across keepalive_requests GOAWAYs, one after another and in parallel', async () => {
    const b = bench();
    const client = b.client();
    const statuses: number[] = [];
    for (let i = 0; i < SEQUENTIAL_CALLS; i++) statuses.push((await sayHello(client, `call ${i}`)).status.code);
    assert.deepEqual(statuses, statuses.map(() => 0), `statuses: ${statuses.join(',')}`);
    assert.deepEqual(await b.legitimateCalls(4 * KEEPALIVE_REQUESTS, 4), [], 'parallel calls failed across the GOAWAYs');
    // Every call reached the upstream: none was answered by the gateway alone.
    assert.ok(b.upstream.streams.length >= SEQUENTIAL_CALLS + 4 * KEEPALIVE_REQUESTS);
  });
});
