/**
 * The process memory watermark (Envoy's overload manager; issue #11, case 4): when a data-plane process runs short
 * of memory, whatever the cause, it must shed new streams with a gRPC status a client understands
 * (RESOURCE_EXHAUSTED, trailers-only) instead of growing until the OS kills it with every call in flight, and take
 * new streams again once memory recedes. The watermark is sampled on a timer; the tests drive it with a fake sample
 * and, end to end, with a watermark set below any real process (`max_rss: 1`).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryWatermark, type MemorySample } from '../../data-plane/limits/memory-watermark.ts';
import { silentLogger } from '../../shared/logger.ts';
import { sayHello } from '../helpers/greeter.ts';
import { useSecurityBench } from './security-kit.ts';

const RESOURCE_EXHAUSTED = 8;
/** Samples are taken by hand here: the timer must not run during the test. */
const NEVER_MS = 2 ** 31 - 1;

describe('memory watermark', () => {
  test('new streams are shed while memory is over the watermark and accepted again once it recedes', () => {
    let sample: MemorySample = { heapFraction: 0.5, rssBytes: 100 };
    const watermark = new MemoryWatermark({ maxHeapFraction: 0.9, maxRssBytes: 1000, checkIntervalMs: NEVER_MS }, silentLogger(), () => sample);
    try {
      assert.equal(watermark.overloaded, false);
      sample = { heapFraction: 0.95, rssBytes: 100 };
      watermark.check();
      assert.equal(watermark.overloaded, true, 'heap over its fraction');
      sample = { heapFraction: 0.5, rssBytes: 2000 };
      watermark.check();
      assert.equal(watermark.overloaded, true, 'RSS over its size');
      sample = { heapFraction: 0.5, rssBytes: 500 };
      watermark.check();
      assert.equal(watermark.overloaded, false, 'memory receded');
    } finally {
      watermark.close();
    }
  });

  test('a watermark of 0 is off whatever the memory', () => {
    const watermark = new MemoryWatermark({ maxHeapFraction: 0, maxRssBytes: 0, checkIntervalMs: NEVER_MS }, silentLogger(), () => ({ heapFraction: 1, rssBytes: 2 ** 40 }));
    try {
      watermark.check();
      assert.equal(watermark.overloaded, false);
    } finally {
      watermark.close();
    }
  });

  describe('a data plane over its watermark', { timeout: 60_000 }, () => {
    const bench = useSecurityBench('overload: { max_rss: 1 }');

    test('answers new calls RESOURCE_EXHAUSTED, trailers-only, and forwards none of them', async () => {
      const b = bench();
      const client = b.client();
      for (let i = 0; i < 3; i++) {
        const outcome = await sayHello(client, 'shed me');
        assert.equal(outcome.status.code, RESOURCE_EXHAUSTED, `status: ${JSON.stringify(outcome.status)}`);
        assert.equal(outcome.headers, undefined, 'the refusal was not trailers-only');
      }
      assert.equal(b.upstream.streams.length, 0, 'a shed call reached the upstream');
    });
  });
});
