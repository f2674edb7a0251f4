import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { defaultHttp2Limits, parseHttp2Limits } from '../../shared/config-http2.ts';
import { loadConfig, parseConfig } from '../../shared/config.ts';
import { ConfigError } from '../../shared/errors.ts';

describe('HTTP/2 limits config (nginx_config.http2, nginx_config.overload)', () => {
  test('the shipped conf/config.yaml documents exactly the defaults', () => {
    assert.deepEqual(loadConfig({}).http2, defaultHttp2Limits());
  });

  test('the defaults are nginx-like and give a 256 KiB stream window (32 MiB budget over 128 streams)', () => {
    const limits = parseConfig('').http2;
    assert.equal(limits.maxConcurrentStreams, 128);
    assert.equal(limits.maxHeaderListSize, 32 * 1024);
    assert.equal(limits.streamWindowBytes, 256 * 1024);
    assert.equal(limits.keepaliveRequests, 1000);
    assert.equal(limits.prematureResetTotalStreamCount, 500);
    assert.equal(limits.prematureResetMinStreamLifetimeMs, 1000);
    assert.deepEqual(limits.overload, { maxHeapFraction: 0.9, maxRssBytes: 0, checkIntervalMs: 1000 });
  });

  test('sizes and durations take nginx forms, and the window follows the budget within its bounds', () => {
    const limits = parseHttp2Limits({
      http2: { max_concurrent_streams: 8, per_connection_buffer_limit_bytes: '64m', max_header_list_size: '16k', premature_reset_min_stream_lifetime: '500ms' },
      overload: { max_rss: '2g', check_interval: 0.5 },
    });
    assert.equal(limits.streamWindowBytes, 1024 * 1024, 'capped by initial_stream_window_size');
    assert.equal(limits.maxHeaderListSize, 16 * 1024);
    assert.equal(limits.prematureResetMinStreamLifetimeMs, 500);
    assert.equal(limits.overload.maxRssBytes, 2 * 1024 ** 3);
    assert.equal(limits.overload.checkIntervalMs, 500);
    assert.equal(parseHttp2Limits({ http2: { max_concurrent_streams: 100_000, per_connection_buffer_limit_bytes: '1m' } }).streamWindowBytes, 65_535, 'never below the protocol default');
  });

  test('bad values are refused with the setting named', () => {
    const cases: [string, RegExp][] = [
      ['http2: { max_concurrent_streams: 0 }', /nginx_config\.http2\.max_concurrent_streams: expected a whole number from 1 to 2147483647, got 0/],
      ['http2: { max_concurrent_streams: many }', /max_concurrent_streams: expected a whole number from 1 to 2147483647, got "many"/],
      ['http2: { max_header_list_size: 12q }', /max_header_list_size: expected bytes or a size such as 32k, 1m or 2g, got "12q"/],
      ['http2: { initial_stream_window_size: 1000 }', /initial_stream_window_size: expected 65535/],
      ['http2: { keepalive_requests: -1 }', /keepalive_requests: expected a whole number from 0/],
      ['http2: { premature_reset_min_stream_lifetime: 30d }', /premature_reset_min_stream_lifetime: expected seconds or a duration/],
      ['http2: { premature_reset_min_stream_lifetime: 3000000 }', /up to 24 days/],
      ['overload: { max_heap_fraction: 2 }', /max_heap_fraction: expected a fraction from 0 \(off\) to 1, got 2/],
      ['http2: on', /nginx_config\.http2: expected a mapping, got "on"/],
    ];
    for (const [yaml, message] of cases) {
      assert.throws(() => parseConfig(`nginx_config: { ${yaml} }`), (err: unknown) => err instanceof ConfigError && message.test(err.message), yaml);
    }
  });
});
