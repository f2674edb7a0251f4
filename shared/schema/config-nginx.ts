/**
 * `nginx_config` of conf/config.yaml: the data plane's processes, client connection limits, access log, HTTP/2
 * limits and memory watermark, under the names APISIX and nginx give them (Envoy's where only Envoy has the
 * setting). Bounds that depend on units (a duration in ms, a size in bytes) or on other keys are checked where the
 * values are read: shared/config-connections.ts, shared/config-http2.ts, shared/config-observability.ts.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Enum } from './common.ts';
import { DurationSchema, Maybe, SizeSchema } from './config-common.ts';
import { MAX_WINDOW } from '../config-http2.ts';

/** Far above any fd limit; stops a typo (an extra digit) from reading as "no cap" silently. */
export const MAX_CONNECTIONS = 10_000_000;

export const WorkerProcessesSchema = Type.Union([Type.Literal('auto'), Type.Integer({ minimum: 1, maximum: 256 })], {
  title: 'auto or a whole number from 1 to 256',
  default: 1,
  description: 'Data-plane worker processes serving the same ports; auto = one per core, 1 = the main process only.',
});

const HttpSchema = Type.Object({
  client_header_timeout: Maybe(DurationSchema({ default: '10s', description: 'From accept to the first request HEADERS frame (100ms to 24h).' })),
  keepalive_timeout: Maybe(DurationSchema({ default: '60s', description: 'A session without an open stream this long is closed (100ms to 24h).' })),
  client_body_timeout: Maybe(DurationSchema({ default: '60s', description: 'HTTP/1.1: the longest wait between two reads of a request body (100ms to 24h).' })),
  enable_access_log: Maybe(Type.Boolean({ default: false, description: 'One line per gRPC call (conf/config.yaml turns it on).' })),
  access_log: Maybe(Type.String({ default: 'stdout', description: 'stdout, stderr or a file path.' })),
  access_log_format: Maybe(Type.String({ description: 'nginx variables; unset: one JSON object per line; readable: the terminal format.' })),
  access_log_format_escape: Maybe(Enum(['default', 'json'] as const)),
  access_log_buffer: Maybe(Type.Integer({ minimum: 1, description: 'Bytes of lines waiting to be written; beyond them lines are dropped and counted.' })),
});

const EventSchema = Type.Object({
  worker_connections: Maybe(Type.Integer({ minimum: 1, maximum: MAX_CONNECTIONS, default: 10620, description: 'Client connections one worker process holds at once.' })),
});

const Http2Schema = Type.Object({
  max_concurrent_streams: Maybe(Type.Integer({ minimum: 1, maximum: MAX_WINDOW, default: 128, description: 'SETTINGS_MAX_CONCURRENT_STREAMS.' })),
  max_header_list_size: Maybe(SizeSchema({ default: '32k', description: 'SETTINGS_MAX_HEADER_LIST_SIZE.' })),
  per_connection_buffer_limit_bytes: Maybe(SizeSchema({ default: '32m', description: 'Bytes one client connection may make the gateway hold (at least 65535).' })),
  initial_stream_window_size: Maybe(SizeSchema({ default: '1m', description: 'The largest stream window (65535 to 2^31-1).' })),
  keepalive_requests: Maybe(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 1000, description: 'Streams one connection may open; 0 = unlimited.' })),
  premature_reset_total_stream_count: Maybe(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 500, description: 'Rapid-reset detection; 0 = off.' })),
  premature_reset_min_stream_lifetime: Maybe(DurationSchema({ default: '1s' })),
});

const OverloadSchema = Type.Object({
  max_heap_fraction: Maybe(Type.Number({ minimum: 0, maximum: 1, default: 0.9, title: 'a fraction from 0 (off) to 1', description: 'Of V8\'s heap limit; new streams are refused above it.' })),
  max_rss: Maybe(SizeSchema({ default: 0, description: 'Resident memory of one data-plane process; 0 = off.' })),
  check_interval: Maybe(DurationSchema({ default: '1s' })),
});

export const NginxConfigSchema = Type.Object({
  worker_processes: Maybe(WorkerProcessesSchema),
  worker_shutdown_timeout: Maybe(DurationSchema({ default: 10, description: 'How long calls in flight may go on after SIGTERM.' })),
  max_connections_per_ip: Maybe(Type.Integer({ minimum: 0, maximum: MAX_CONNECTIONS, default: 1000, description: 'Client connections from one address per worker process; 0 = no cap.' })),
  event: Maybe(EventSchema),
  http: Maybe(HttpSchema),
  http2: Maybe(Http2Schema),
  overload: Maybe(OverloadSchema),
});

export type NginxConfigFile = Static<typeof NginxConfigSchema>;
export type NginxHttpFile = Static<typeof HttpSchema>;
export type Http2File = Static<typeof Http2Schema>;
export type OverloadFile = Static<typeof OverloadSchema>;
