/**
 * `plugin_attr` of conf/config.yaml: the process-wide settings of the plugins the data plane has built in
 * (prometheus, request-id, opentelemetry), where APISIX keeps them. Attributes of other APISIX plugins are not read
 * (reported as ignored at start). Checks beyond the shape (bucket order, the request-id header name) are in
 * shared/config-observability.ts.
 */
import { Type, type Static } from '@sinclair/typebox';
import { StringMap } from './common.ts';
import { AddressSchema, Maybe } from './config-common.ts';
import { SamplerSchema } from './observability-plugins.ts';

const PrometheusAttrSchema = Type.Object({
  enable: Maybe(Type.Boolean({ default: true })),
  export_uri: Maybe(Type.String({ pattern: '^/', title: 'a path starting with /', default: '/apisix/prometheus/metrics', description: 'Also served as /metrics.' })),
  export_addr: Maybe(Type.Object(AddressSchema.properties, { description: 'A server of its own for the scrape (ip 127.0.0.1, port 9091 when left out); unset: the status port.' })),
  metric_prefix: Maybe(Type.String({ pattern: '^[a-zA-Z_:][a-zA-Z0-9_:]*$', title: 'a Prometheus metric name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*)', default: 'apisix_' })),
  default_buckets: Maybe(Type.Array(Type.Number({ exclusiveMinimum: 0 }), { minItems: 1, maxItems: 64, description: 'Latency buckets in ms, increasing; APISIX\'s when unset.' })),
  prefer_name: Maybe(Type.Boolean({ default: false, description: 'Route and service names instead of ids in labels.' })),
  max_label_sets: Maybe(Type.Integer({ minimum: 1, default: 10000, description: 'Distinct label sets per metric family before calls count into an overflow series.' })),
});

const RequestIdAttrSchema = Type.Object({
  enable: Maybe(Type.Boolean({ default: true })),
  header_name: Maybe(Type.String({ default: 'X-Request-Id' })),
  include_in_response: Maybe(Type.Boolean({ default: true })),
});

const OpenTelemetryAttrSchema = Type.Object({
  collector: Maybe(
    Type.Object({
      address: Maybe(Type.String({ description: 'host:port of an OTLP/HTTP collector; unset: no span is exported.' })),
      request_timeout: Maybe(Type.Number({ exclusiveMinimum: 0, maximum: 3600, default: 3 })),
      request_headers: Maybe(StringMap(Type.String())),
    }),
  ),
  /** The default of routes that set none; always_off when unset. */
  sampler: Maybe(SamplerSchema),
  resource: Maybe(StringMap(Type.Union([Type.String(), Type.Number(), Type.Boolean()], { title: 'a string, number or boolean' }))),
  batch_span_processor: Maybe(
    Type.Object({
      max_queue_size: Maybe(Type.Integer({ minimum: 1, default: 2048 })),
      max_export_batch_size: Maybe(Type.Integer({ minimum: 1, default: 512 })),
      batch_timeout: Maybe(Type.Number({ exclusiveMinimum: 0, maximum: 3600, default: 2 })),
    }),
  ),
});

export const PluginAttrSchema = Type.Object({
  prometheus: Maybe(PrometheusAttrSchema),
  'request-id': Maybe(RequestIdAttrSchema),
  opentelemetry: Maybe(OpenTelemetryAttrSchema),
});

export type PluginAttrFile = Static<typeof PluginAttrSchema>;
