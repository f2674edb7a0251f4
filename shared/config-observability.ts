/**
 * What the data plane tells operators about its calls (issue #14), read from conf/config.yaml where APISIX keeps
 * the same settings, so an APISIX operator finds them where they look:
 *
 * - `plugin_attr.prometheus`: `export_uri` (default `/apisix/prometheus/metrics`, also served as `/metrics`),
 *   `export_addr` (default: the status port, `apisix.status`; set it to serve metrics on their own address as
 *   APISIX's 127.0.0.1:9091 does), `metric_prefix` (`apisix_`), `default_buckets` (APISIX's, in ms), `prefer_name`
 *   (route and service names instead of ids in labels). Ours: `enable` (default true) and `max_label_sets`, the
 *   cap on distinct label sets per metric family beyond which calls count into one overflow series.
 * - `nginx_config.http.enable_access_log` / `access_log` / `access_log_format` / `access_log_format_escape`,
 *   nginx's and APISIX's names. `access_log: stdout` (the default: containers) or a file path. No format means
 *   one JSON object per line. conf/config.yaml turns it on; a config without the key has none.
 * - `plugin_attr.request-id`: APISIX's request-id plugin built in (`header_name`, `include_in_response`), on by
 *   default.
 * - `plugin_attr.opentelemetry`: `collector` (`address`, `request_timeout` in s, `request_headers`), `resource`,
 *   `batch_span_processor`, and `sampler`, the default for routes that set none in their `opentelemetry` plugin.
 *   Without `collector.address` no span is exported; trace context is propagated either way.
 */
import { ConfigError } from './errors.ts';
import type { SamplerConf } from './schema/observability-plugins.ts';
import type { PluginAttrFile } from './schema/config-plugin-attr.ts';
import type { NginxHttpFile } from './schema/config-nginx.ts';
import type { Address } from './schema/config-common.ts';
import { parseHostPortEnv, type ListenAddress } from './config-values.ts';

/** APISIX's prometheus plugin default_buckets (ms), apisix/plugins/prometheus/exporter.lua. */
export const APISIX_DEFAULT_BUCKETS: readonly number[] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000];
export const APISIX_EXPORT_URI = '/apisix/prometheus/metrics';
/** Distinct label sets one metric family may hold before new ones count into its overflow series. */
export const DEFAULT_MAX_LABEL_SETS = 10_000;
/** Bytes of access-log lines waiting for the disk or stdout; past this, lines are dropped and counted. */
export const DEFAULT_ACCESS_LOG_BUFFER_BYTES = 4 * 1024 * 1024;

export interface MetricsConfig {
  enable: boolean;
  exportUri: string;
  /** A listener of its own for the scrape; undefined = the status port. */
  exportAddr: ListenAddress | undefined;
  prefix: string;
  buckets: readonly number[];
  preferName: boolean;
  maxLabelSets: number;
}

export interface AccessLogConfig {
  enable: boolean;
  /** `stdout`, `stderr` or a file path. */
  path: string;
  /** nginx variable syntax; undefined = JSON lines. `readable` = the terminal format. */
  format: string | undefined;
  /** Unset: JSON escaping for a `{…}` template, nginx's otherwise. */
  escape: 'json' | 'default' | undefined;
  bufferBytes: number;
}

export interface RequestIdConfig {
  enable: boolean;
  /** Lower-case, as HTTP/2 carries it. */
  headerName: string;
  includeInResponse: boolean;
}


export interface TracingConfig {
  /** undefined = no export (trace context is still propagated). */
  collector: { address: string; requestTimeoutMs: number; headers: Record<string, string> } | undefined;
  sampler: SamplerConf;
  resource: Record<string, string | number | boolean>;
  batch: { maxQueueSize: number; maxExportBatchSize: number; batchTimeoutMs: number };
}

export interface ObservabilityConfig {
  metrics: MetricsConfig;
  accessLog: AccessLogConfig;
  requestId: RequestIdConfig;
  tracing: TracingConfig;
}

type Env = Record<string, string | undefined>;

/**
 * The settings from the validated `plugin_attr` and `nginx_config.http` (types and plain bounds are the schema's,
 * shared/schema/config-plugin-attr.ts); the environment's overrides are applyObservabilityEnv's.
 */
export function parseObservability(attrs: PluginAttrFile, http: NginxHttpFile): ObservabilityConfig {
  const prom = attrs.prometheus ?? {};
  const rid = attrs['request-id'] ?? {};
  const otel = attrs.opentelemetry ?? {};
  const collector = otel.collector ?? {};
  const batch = otel.batch_span_processor ?? {};
  const address = collector.address ?? '';
  return {
    metrics: {
      enable: prom.enable ?? true,
      exportUri: prom.export_uri ?? APISIX_EXPORT_URI,
      exportAddr: parseExportAddr(prom.export_addr ?? undefined),
      prefix: prom.metric_prefix ?? 'apisix_',
      buckets: parseBuckets(prom.default_buckets ?? undefined),
      preferName: prom.prefer_name ?? false,
      maxLabelSets: prom.max_label_sets ?? DEFAULT_MAX_LABEL_SETS,
    },
    accessLog: {
      // Off when the key is absent (a minimal config stays quiet); conf/config.yaml turns it on, as APISIX ships it.
      enable: http.enable_access_log ?? false,
      path: http.access_log ?? 'stdout',
      format: http.access_log_format ?? undefined,
      escape: http.access_log_format_escape ?? undefined,
      bufferBytes: http.access_log_buffer ?? DEFAULT_ACCESS_LOG_BUFFER_BYTES,
    },
    requestId: {
      enable: rid.enable ?? true,
      headerName: parseHeaderName(rid.header_name ?? 'X-Request-Id'),
      includeInResponse: rid.include_in_response ?? true,
    },
    tracing: {
      collector:
        address === ''
          ? undefined
          : { address, requestTimeoutMs: Math.round((collector.request_timeout ?? 3) * 1000), headers: collector.request_headers ?? {} },
      sampler: otel.sampler ?? { name: 'always_off' }, // APISIX's default
      resource: otel.resource ?? {},
      batch: {
        // The OpenTelemetry spec's BatchSpanProcessor defaults (queue 2048, batch 512), not APISIX's 1024/16: one
        // export request per 16 spans cost ~7 µs per call at 10 % sampling and 25,000 calls/s (issue #14's note),
        // one per 512 spans a few hundredths of that. batch_timeout is APISIX's 2 s.
        maxQueueSize: batch.max_queue_size ?? 2048,
        maxExportBatchSize: batch.max_export_batch_size ?? 512,
        batchTimeoutMs: Math.round((batch.batch_timeout ?? 2) * 1000),
      },
    },
  };
}

/** Single-value overrides for containers, tests and the benchmark. */
export function applyObservabilityEnv(config: ObservabilityConfig, env: Env): void {
  const metrics = env['GATEWAY_METRICS'];
  if (metrics) config.metrics.enable = onOff(metrics, 'GATEWAY_METRICS');
  const accessLog = env['GATEWAY_ACCESS_LOG'];
  if (accessLog) {
    // The switch words of the other variables mean the same here: a log written to a file named "false" helps nobody.
    if (accessLog === 'off' || accessLog === 'false' || accessLog === '0') config.accessLog.enable = false;
    else if (accessLog === 'on' || accessLog === 'true' || accessLog === '1') config.accessLog.enable = true;
    else config.accessLog = { ...config.accessLog, enable: true, path: accessLog };
  }
  const format = env['GATEWAY_ACCESS_LOG_FORMAT'];
  if (format) config.accessLog.format = format === 'json' ? undefined : format;
  const requestId = env['GATEWAY_REQUEST_ID'];
  if (requestId) config.requestId.enable = onOff(requestId, 'GATEWAY_REQUEST_ID');
  const collector = env['GATEWAY_OTEL_COLLECTOR'];
  if (collector === 'off') config.tracing.collector = undefined;
  else if (collector) config.tracing.collector = { address: collector, requestTimeoutMs: config.tracing.collector?.requestTimeoutMs ?? 3000, headers: config.tracing.collector?.headers ?? {} };
  const fraction = env['GATEWAY_OTEL_SAMPLE_RATIO'];
  if (fraction) {
    const value = Number(fraction);
    if (!(value >= 0 && value <= 1)) throw new ConfigError('GATEWAY_OTEL_SAMPLE_RATIO: expected a fraction from 0 to 1');
    config.tracing.sampler = { name: 'parent_base', options: { root: { name: 'trace_id_ratio', options: { fraction: value } } } };
  }
}

function onOff(value: string, what: string): boolean {
  if (value === 'on' || value === 'true' || value === '1') return true;
  if (value === 'off' || value === 'false' || value === '0') return false;
  throw new ConfigError(`${what}: expected on or off`);
}

function parseExportAddr(value: Address | undefined): ListenAddress | undefined {
  if (value === undefined) return undefined;
  const ip = value.ip ?? '127.0.0.1';
  return parseHostPortEnv(`${ip.includes(':') ? `[${ip}]` : ip}:${value.port ?? 9091}`, 'plugin_attr.prometheus.export_addr');
}

function parseBuckets(value: number[] | undefined): readonly number[] {
  if (value === undefined) return APISIX_DEFAULT_BUCKETS;
  for (let i = 1; i < value.length; i++) {
    if ((value[i] as number) <= (value[i - 1] as number)) throw new ConfigError('plugin_attr.prometheus.default_buckets: must be in increasing order');
  }
  return value;
}

/** An HTTP/2 field name: lower-case token characters (RFC 9113 §8.2.1). */
function parseHeaderName(name: string): string {
  const lower = name.toLowerCase();
  if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(lower) || lower.startsWith('grpc-')) {
    throw new ConfigError('plugin_attr.request-id.header_name: expected a header name (not a grpc- one)');
  }
  return lower;
}
