/**
 * `nginx_config.http2` and `nginx_config.overload` of conf/config.yaml → the HTTP/2 limits of the data plane's
 * listeners (issue #11): what one client connection may open, send and make the gateway hold, and when the
 * process sheds new streams because its memory is running out. Names follow nginx where it has the setting
 * (`http2_max_concurrent_streams`, `keepalive_requests`, `large_client_header_buffers`) and Envoy where only Envoy
 * has it (`per_connection_buffer_limit_bytes`, `premature_reset_*`, the overload manager); defaults sit in the
 * range of nginx's defaults and Envoy's edge guidance (envoyproxy.io "Configuring Envoy as an edge proxy").
 */
import { durationMs } from './config-values.ts';
import { ConfigError } from './errors.ts';
import type { Duration, Size } from './schema/config-common.ts';
import type { NginxConfigFile } from './schema/config-nginx.ts';

/** RFC 9113 §6.9.1: the largest flow-control window, and so the most streams worth allowing. */
export const MAX_WINDOW = 2 ** 31 - 1;

const KiB = 1024;
const MiB = 1024 * KiB;

/** nginx `http2_max_concurrent_streams` is 128; Envoy's edge guidance 100. */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 128;
/** nginx `large_client_header_buffers 4 8k`: a request's header block may take 32 KiB. */
export const DEFAULT_MAX_HEADER_LIST_SIZE = 32 * KiB;
/**
 * Bytes one client connection may make the gateway hold (responses its streams do not read, requests the upstream
 * does not take). Envoy's default is 1 MiB per connection, but Envoy holds less per stream than node:http2 does;
 * 32 MiB keeps 128 non-reading streams at 256 KiB each.
 */
export const DEFAULT_PER_CONNECTION_BUFFER_BYTES = 32 * MiB;
/** The stream window before the budget caps it (what issue #3 chose for 1 MiB messages at link speed). */
export const DEFAULT_MAX_STREAM_WINDOW = 1 * MiB;
/** RFC 9113 §6.9.2: the protocol's initial window; smaller windows only cost round trips. */
export const MIN_STREAM_WINDOW = 65_535;
/** nginx `keepalive_requests` (1000 since nginx 1.19.10). */
export const DEFAULT_KEEPALIVE_REQUESTS = 1000;
/** Envoy `premature_reset_total_stream_count` and `premature_reset_min_stream_lifetime_seconds`. */
export const DEFAULT_PREMATURE_RESET_TOTAL_STREAM_COUNT = 500;
export const DEFAULT_PREMATURE_RESET_MIN_STREAM_LIFETIME_MS = 1000;
/** Envoy's overload manager examples shed new requests at 95 % of the heap; a little earlier leaves room to drain. */
export const DEFAULT_MAX_HEAP_FRACTION = 0.9;
export const DEFAULT_MEMORY_CHECK_INTERVAL_MS = 1000;

export interface OverloadLimits {
  /** New streams are refused while V8 heap plus external memory is above this fraction of V8's heap limit; 0 = off. */
  maxHeapFraction: number;
  /** New streams are refused while the process's RSS is above this many bytes; 0 = off. */
  maxRssBytes: number;
  /** How often memory is sampled (a timer: never per stream). */
  checkIntervalMs: number;
}

export interface Http2Limits {
  maxConcurrentStreams: number;
  maxHeaderListSize: number;
  perConnectionBufferBytes: number;
  /**
   * SETTINGS_INITIAL_WINDOW_SIZE of both legs: `initial_stream_window_size` capped by the budget shared among the
   * concurrent streams, so that the windows of one client's streams together never exceed the budget.
   */
  streamWindowBytes: number;
  /** Streams one connection may open before it gets GOAWAY(NO_ERROR); 0 = unlimited. */
  keepaliveRequests: number;
  prematureResetTotalStreamCount: number;
  prematureResetMinStreamLifetimeMs: number;
  overload: OverloadLimits;
}

/**
 * The limits from the validated `nginx_config` (absent blocks give the defaults). Types and plain bounds are the
 * schema's (shared/schema/config-nginx.ts); what depends on units or on another key is checked here.
 */
export function parseHttp2Limits(nginxConfig: Pick<NginxConfigFile, 'http2' | 'overload'>): Http2Limits {
  const h2 = nginxConfig.http2 ?? {};
  const overload = nginxConfig.overload ?? {};
  const at = (key: string): string => `nginx_config.http2.${key}`;
  const maxConcurrentStreams = h2.max_concurrent_streams ?? DEFAULT_MAX_CONCURRENT_STREAMS;
  const budget = size(h2.per_connection_buffer_limit_bytes, at('per_connection_buffer_limit_bytes'), DEFAULT_PER_CONNECTION_BUFFER_BYTES);
  const windowCap = size(h2.initial_stream_window_size, at('initial_stream_window_size'), DEFAULT_MAX_STREAM_WINDOW);
  if (windowCap < MIN_STREAM_WINDOW || windowCap > MAX_WINDOW) {
    throw new ConfigError(`${at('initial_stream_window_size')}: expected ${MIN_STREAM_WINDOW} to ${MAX_WINDOW} bytes`);
  }
  if (budget < MIN_STREAM_WINDOW) throw new ConfigError(`${at('per_connection_buffer_limit_bytes')}: expected at least ${MIN_STREAM_WINDOW} bytes`);
  return {
    maxConcurrentStreams,
    maxHeaderListSize: size(h2.max_header_list_size, at('max_header_list_size'), DEFAULT_MAX_HEADER_LIST_SIZE),
    perConnectionBufferBytes: budget,
    streamWindowBytes: Math.max(MIN_STREAM_WINDOW, Math.min(windowCap, Math.floor(budget / maxConcurrentStreams))),
    keepaliveRequests: h2.keepalive_requests ?? DEFAULT_KEEPALIVE_REQUESTS,
    prematureResetTotalStreamCount: h2.premature_reset_total_stream_count ?? DEFAULT_PREMATURE_RESET_TOTAL_STREAM_COUNT,
    prematureResetMinStreamLifetimeMs: duration(
      h2.premature_reset_min_stream_lifetime,
      at('premature_reset_min_stream_lifetime'),
      DEFAULT_PREMATURE_RESET_MIN_STREAM_LIFETIME_MS,
    ),
    overload: {
      maxHeapFraction: overload.max_heap_fraction ?? DEFAULT_MAX_HEAP_FRACTION,
      maxRssBytes: size(overload.max_rss, 'nginx_config.overload.max_rss', 0),
      checkIntervalMs: Math.max(1, duration(overload.check_interval, 'nginx_config.overload.check_interval', DEFAULT_MEMORY_CHECK_INTERVAL_MS)),
    },
  };
}

/** The limits with every default, for data planes started without a parsed config file. */
export function defaultHttp2Limits(): Http2Limits {
  return parseHttp2Limits({});
}

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, k: KiB, m: MiB, g: 1024 * MiB };

/** Bytes from a number or nginx's size form (`32k`, `1m`), refused when too large to count exactly. */
function size(value: Size | null | undefined, what: string, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  const match = typeof value === 'string' ? /^(\d+)([kmg]?)$/i.exec(value.trim()) : null;
  const unit = match?.[2]?.toLowerCase() ?? '';
  const n = typeof value === 'number' ? value : match?.[1] === undefined ? NaN : Number(match[1]) * (SIZE_UNITS[unit] ?? NaN);
  if (!Number.isSafeInteger(n) || n < 0) throw new ConfigError(`${what}: expected a size in bytes (a number, or 32k / 1m)`);
  return n;
}

/** Milliseconds, capped to what a timer takes: Node clamps longer timers to 1 ms (issue #11, case 1). */
function duration(value: Duration | null | undefined, what: string, fallbackMs: number): number {
  if (value === undefined || value === null) return fallbackMs;
  const ms = durationMs(value);
  if (ms > MAX_TIMER_MS) throw new ConfigError(`${what}: expected a duration (seconds, or 1s / 500ms) up to 24 days`);
  return ms;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
