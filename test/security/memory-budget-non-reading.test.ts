/**
 * A client that never reads (issue #11, case 4): one connection with 800 server streams it never read took a worker
 * from 217 MiB to 938 MiB, because every stream let the upstream push a whole 1 MiB window into the gateway. Now the
 * stream windows of both legs are the per-connection budget shared among the streams a connection may have open
 * (32 MiB / 128 by default), and streams above 128 are refused. A data plane in its own process (so that its RSS is
 * its own, like test/flow/slow-reader-memory.test.ts) relays 1,000 such streams from one connection, each asking a
 * fake upstream for endless 64 KiB messages; its RSS may grow by less than 128 MiB (a bound, generous against the
 * 32 MiB budget; before the limits it grew by ~1 GiB), and a grpc-js client must still be served meanwhile.
 */
import assert from 'node:assert/strict';
import { status as GrpcCode } from '@grpc/grpc-js';
import { after, before, describe, test } from 'node:test';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServerHttp2Stream } from 'node:http2';
import { DEFAULT_MAX_CONCURRENT_STREAMS } from '../../shared/config-http2.ts';
import { answerOk, SERVER_STREAM } from '../faults/fault-kit.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { grpcFrame, startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { greeterClient, sayHello } from '../helpers/greeter.ts';
import { putEtcdJson, spawnChildGateway, type ChildGateway } from '../flow/child-gateway.ts';
import { MESSAGE_BYTES, holdNonReadingStreams } from './non-reading-client.ts';

const STREAMS = 1000;
const MiB = 1024;
/** The bound asserted, in KiB: generous against the 32 MiB budget, far below the ~1 GiB the issue measured. */
const RSS_GROWTH_LIMIT_KIB = 128 * MiB;
const STARTUP_LIMIT_MS = 30_000;
const LEGITIMATE_CALLS = 10;

/** Writes 64 KiB messages until the stream closes, waiting for 'drain' so that the fake itself stays bounded. */
async function streamForever(stream: ServerHttp2Stream): Promise<void> {
  const frame = grpcFrame(Buffer.alloc(MESSAGE_BYTES - 5));
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
  while (!stream.closed && !stream.destroyed) {
    if (!stream.write(frame)) await Promise.race([once(stream, 'drain'), once(stream, 'close')]);
  }
}

/** A fresh grpc-js client per attempt (no reconnect backoff), until a call through the gateway succeeds. */
async function waitUntilServed(gw: ChildGateway): Promise<void> {
  const deadline = Date.now() + STARTUP_LIMIT_MS;
  for (;;) {
    const client = greeterClient(gw.h2cAddress);
    const outcome = await sayHello(client, 'ready?', undefined, { deadline: Date.now() + 1000 });
    client.close();
    if (outcome.status.code === GrpcCode.OK) return;
    if (gw.exited || Date.now() > deadline) throw new Error(`the gateway did not serve calls: ${outcome.status.details}\n${gw.output()}`);
    await sleep(200);
  }
}

describe('a client that never reads its streams', { timeout: 120_000 }, () => {
  let etcd: EtcdProcess | undefined;
  let gateway: ChildGateway | undefined;
  let upstream: FakeUpstream | undefined;

  before(async () => {
    etcd = await startEtcd();
    upstream = await startFakeUpstream();
    upstream.onStream(async (stream, headers, ctl) => {
      if (headers[':path'] !== SERVER_STREAM) return answerOk(ctl);
      await ctl.requestEnded();
      await streamForever(stream).catch(() => undefined); // the gateway cancels it when the client goes
    });
    gateway = await spawnChildGateway(etcd.endpoint);
    await putEtcdJson(etcd.endpoint, '/apisix/routes/1', {
      uri: '/helloworld.Greeter/*',
      upstream: { scheme: 'grpc', nodes: { [upstream.address]: 1 } },
    });
    await waitUntilServed(gateway);
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    await etcd?.close();
  });

  test('1,000 non-read server streams on one connection grow the gateway RSS by less than 128 MiB, and other clients are served', { timeout: 90_000 }, async (t) => {
    assert.ok(gateway !== undefined && upstream !== undefined);
    const gw = gateway;
    const fake = upstream;
    const client = greeterClient(gw.h2cAddress);
    try {
      // Warm-up: JIT, pools and the upstream session are in the baseline.
      for (let i = 0; i < LEGITIMATE_CALLS; i++) assert.equal((await sayHello(client, 'warm-up')).status.code, 0);
      const baseline = gw.rssKiB();
      assert.ok(baseline !== undefined, `cannot read the gateway's RSS\n${gw.output()}`);
      const before = fake.streams.length;
      const [host, port] = gw.h2cAddress.split(':');
      const held = await holdNonReadingStreams({
        target: { host: host ?? '127.0.0.1', port: Number(port) },
        path: SERVER_STREAM,
        streams: STREAMS,
        sampleRss: () => gw.rssKiB() ?? 0,
      });
      try {
        const statuses: number[] = [];
        for (let i = 0; i < LEGITIMATE_CALLS; i++) statuses.push((await sayHello(client, 'beside')).status.code);
        const reached = fake.streams.slice(before).filter((s) => s.headers[':path'] === SERVER_STREAM).length;
        const growth = held.peakRssKiB - baseline;
        const report = JSON.stringify({
          baselineMiB: +(baseline / MiB).toFixed(1),
          peakMiB: +(held.peakRssKiB / MiB).toFixed(1),
          growthMiB: +(growth / MiB).toFixed(1),
          refused: held.refused,
          served: held.served,
          reachedUpstream: reached,
          heldMs: held.heldMs,
        });
        t.diagnostic(`non-reading client: ${report}`);
        assert.equal(gw.exited, false, `the gateway died\n${gw.output()}`);
        assert.deepEqual(statuses, statuses.map(() => 0), `calls beside the non-reading client failed: ${report}`);
        assert.ok(reached <= DEFAULT_MAX_CONCURRENT_STREAMS, `the upstream saw ${reached} streams: ${report}`);
        assert.equal(held.refused, STREAMS - DEFAULT_MAX_CONCURRENT_STREAMS, `refused: ${report}`);
        assert.ok(growth < RSS_GROWTH_LIMIT_KIB, `gateway RSS grew by ${(growth / MiB).toFixed(1)} MiB: ${report}`);
      } finally {
        held.client.destroy();
      }
    } finally {
      client.close();
    }
  });
});
