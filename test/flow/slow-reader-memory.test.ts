/**
 * Issue #3's memory goal: a client that reads slowly must not make the gateway buffer what the upstream produces.
 * 200 MiB of 64 KiB messages stream from a raw HTTP/2 upstream through a data plane running in its own process
 * (so its RSS is its own) to a client that reads in bursts and stalls; the gateway's RSS may not grow by more than
 * 64 MiB, every byte must arrive in order and intact, and the upstream must have been throttled, which is only
 * possible if HTTP/2 flow control propagated from the client, through the gateway, back to the upstream
 * (`pipe()` honouring write() === false on the client stream, RFC 9113 §5.2 windows on both legs).
 *
 * The numbers (baseline, peak, growth, the upstream's drain waits and how far it advanced while the client stalled)
 * are printed as test diagnostics.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { spawnChildGateway, putEtcdJson, type ChildGateway } from './child-gateway.ts';
import { slowRead, startBulkUpstream, waitUntilRouted, type BulkUpstream } from './slow-reader.ts';

const MiB = 1024 * 1024;
const TOTAL_BYTES = 200 * MiB;
const MESSAGE_BYTES = 64 * 1024;
/** The goal: RSS growth of the gateway while it relays the stream. */
const RSS_GROWTH_LIMIT_KIB = 64 * 1024;
/** While the client does not read at all, the upstream may only fill the windows and buffers on the way. */
const STALL_ADVANCE_LIMIT = 16 * MiB;
const STARTUP_LIMIT_MS = 20_000;
const STREAM_LIMIT_MS = 40_000;

describe('a slow reader behind the gateway', { timeout: 90_000 }, () => {
  let etcd: EtcdProcess | undefined;
  let gateway: ChildGateway | undefined;
  let upstream: BulkUpstream | undefined;

  before(async () => {
    etcd = await startEtcd();
    upstream = await startBulkUpstream();
    gateway = await spawnChildGateway(etcd.endpoint);
    await putEtcdJson(etcd.endpoint, '/apisix/routes/1', {
      uri: '/flow.Bulk/*',
      upstream: { scheme: 'grpc', nodes: { [upstream.address]: 1 } },
    });
    await waitUntilRouted(gateway, STARTUP_LIMIT_MS);
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    await etcd?.close();
  });

  test('200 MiB streamed to a client that reads in bursts arrives intact while the gateway RSS grows < 64 MiB', { timeout: 60_000 }, async (t) => {
    assert.ok(gateway !== undefined && upstream !== undefined);
    const gw = gateway;
    // Warm-up: the same path once, fast, so JIT, session and buffer pools are in the baseline.
    const warm = await slowRead({
      target: gw.h2cAddress,
      totalBytes: 8 * MiB,
      messageBytes: MESSAGE_BYTES,
      burstBytes: 8 * MiB,
      burstPauseMs: 0,
      stallAt: [],
      stallMs: 0,
      limitMs: STREAM_LIMIT_MS,
    });
    assert.equal(warm.grpcStatus, '0', `warm-up call failed: ${JSON.stringify(warm)}\n${gw.output()}`);
    await sleep(300);
    upstream.resetStats();

    const baseline = gw.rssKiB();
    assert.ok(baseline !== undefined, `cannot read the gateway's RSS\n${gw.output()}`);
    let peak = baseline;
    let samples = 0;
    const result = await slowRead({
      target: gw.h2cAddress,
      totalBytes: TOTAL_BYTES,
      messageBytes: MESSAGE_BYTES,
      burstBytes: 2 * MiB,
      burstPauseMs: 10,
      stallAt: [0.25, 0.5, 0.75],
      stallMs: 600,
      upstream: upstream.stats,
      onSample: () => {
        const rss = gw.rssKiB();
        if (rss === undefined) return;
        samples++;
        peak = Math.max(peak, rss);
      },
      sampleEveryMs: 20,
      limitMs: STREAM_LIMIT_MS,
    });
    const end = gw.rssKiB();
    const growth = peak - baseline;
    const report = {
      rssBaselineMiB: +(baseline / 1024).toFixed(1),
      rssPeakMiB: +(peak / 1024).toFixed(1),
      rssGrowthMiB: +(growth / 1024).toFixed(1),
      rssAfterMiB: end === undefined ? undefined : +(end / 1024).toFixed(1),
      samples,
      elapsedMs: result.elapsedMs,
      bytesReceived: result.bytesReceived,
      messagesOk: result.messagesOk,
      upstreamDrainWaits: upstream.stats.drainWaits,
      upstreamDrainWaitMs: upstream.stats.drainWaitMs,
      stallAdvanceKiB: result.stallAdvance.map((b) => Math.round(b / 1024)),
      grpcStatus: result.grpcStatus,
    };
    t.diagnostic(`slow reader: ${JSON.stringify(report)}`);

    assert.equal(result.ended, true, `the call did not end within ${STREAM_LIMIT_MS} ms: ${JSON.stringify(report)}\n${gw.output()}`);
    assert.deepEqual(result.problems, [], 'the byte stream was corrupted');
    assert.equal(result.bytesReceived, TOTAL_BYTES + (TOTAL_BYTES / MESSAGE_BYTES) * 5, `not every byte arrived: ${JSON.stringify(report)}`);
    assert.equal(result.messagesOk, TOTAL_BYTES / MESSAGE_BYTES);
    assert.equal(result.grpcStatus, '0', `final status: ${JSON.stringify(report)}`);
    assert.ok(samples >= 10, `too few RSS samples (${samples}) to trust the peak`);
    assert.ok(
      growth < RSS_GROWTH_LIMIT_KIB,
      `gateway RSS grew by ${(growth / 1024).toFixed(1)} MiB (limit 64 MiB): ${JSON.stringify(report)}`,
    );
    // Backpressure reached the upstream: it had to wait for drain (with 64 KiB messages above the 16 KiB stream
    // highWaterMark every write waits, so this alone proves little), and it stopped while the client stalled, which
    // it can only do if the gateway stopped reading from it instead of buffering for the client.
    assert.ok(upstream.stats.drainWaits > 0, 'the upstream never waited for drain: nothing throttled it');
    assert.equal(result.stallAdvance.length, 3, 'not every stall happened');
    for (const advance of result.stallAdvance) {
      assert.ok(
        advance < STALL_ADVANCE_LIMIT,
        `the upstream wrote ${(advance / MiB).toFixed(1)} MiB while the client read nothing: the gateway buffered it`,
      );
    }
  });
});
