/**
 * The route plugins that tune what the data plane records about a route's calls (issue #14), in APISIX's shapes:
 *
 * - `prometheus`: APISIX's route-level `prefer_name` (the route's name instead of its id in labels), and ours,
 *   `grpc_method_metrics`: count this route's calls per gRPC service and method (`grpc_service`, `grpc_method`
 *   labels, Envoy's grpc_stats view). Off by default, since methods come from clients and are unbounded label
 *   values; the family's label-set cap still applies.
 * - `opentelemetry`: APISIX's `sampler` (`always_on`, `always_off`, `trace_id_ratio` with `options.fraction`,
 *   `parent_base` with `options.root`) and `additional_attributes` are accepted; the sampler decides which of
 *   the route's calls are exported as spans (plugin_attr.opentelemetry names the collector).
 */
import { Type, type Static } from '@sinclair/typebox';
import { Enum } from './common.ts';

const Fraction = Type.Number({ minimum: 0, maximum: 1 });

export const RootSamplerSchema = Type.Object(
  {
    name: Type.Optional(Enum(['always_on', 'always_off', 'trace_id_ratio'] as const)),
    options: Type.Optional(Type.Object({ fraction: Type.Optional(Fraction) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);

export const SamplerSchema = Type.Object(
  {
    /** APISIX's default is always_off. */
    name: Type.Optional(Enum(['always_on', 'always_off', 'trace_id_ratio', 'parent_base'] as const)),
    options: Type.Optional(
      Type.Object(
        {
          fraction: Type.Optional(Fraction),
          root: Type.Optional(RootSamplerSchema),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const PrometheusPluginSchema = Type.Object(
  {
    prefer_name: Type.Optional(Type.Boolean()),
    grpc_method_metrics: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const OpenTelemetryPluginSchema = Type.Object(
  {
    sampler: Type.Optional(SamplerSchema),
    additional_attributes: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { maxItems: 32 })),
  },
  { additionalProperties: false },
);

export type SamplerConf = Static<typeof SamplerSchema>;
export type RootSamplerConf = Static<typeof RootSamplerSchema>;
export type PrometheusPluginConf = Static<typeof PrometheusPluginSchema>;
export type OpenTelemetryPluginConf = Static<typeof OpenTelemetryPluginSchema>;
