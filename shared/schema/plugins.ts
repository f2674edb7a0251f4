/**
 * Route plugins this gateway implements, in APISIX's `plugins` object shape (`{"<name>": {…config}}`), so a route
 * stays one APISIX-shaped document. An unknown plugin name is refused like APISIX does (`unknown plugin [name]`)
 * rather than silently ignored.
 *
 * `grpc-limits`: per-message size caps, off unless configured (no default cap: 16 MiB and larger messages pass).
 * A message over a cap ends the call with RESOURCE_EXHAUSTED, as gRPC servers answer an oversized message.
 *
 * `prometheus` and `opentelemetry`: what is recorded about the route's calls (observability-plugins.ts).
 *
 * `ip-restriction`, `fault-injection`, `limit-count`, `limit-req`, `limit-conn`, `key-auth`, `consumer-restriction`, `proxy-rewrite`: traffic policies run by the data plane's plugin pipeline
 * (plugin-policies.ts, data-plane/plugins/).
 *
 * `grpc-web` and `grpc-transcode`: the protocols a route serves besides gRPC, and `cors` for their answers
 * (plugin-web.ts, data-plane/web/).
 */
import { Type, type Static } from '@sinclair/typebox';
import { OpenTelemetryPluginSchema, PrometheusPluginSchema } from './observability-plugins.ts';
import { CorsSchema, GrpcTranscodeSchema, GrpcWebSchema } from './plugin-web.ts';
import {
  ApiBreakerSchema,
  ConsumerRestrictionSchema,
  FaultInjectionSchema,
  IpRestrictionSchema,
  JwtAuthSchema,
  KeyAuthSchema,
  LimitConnSchema,
  LimitCountSchema,
  LimitReqSchema,
  ProxyRewriteSchema,
  TrafficSplitSchema,
} from './plugin-policies.ts';

export const GrpcLimitsSchema = Type.Object(
  {
    /** Largest gRPC message the client may send, in bytes (the 5-byte frame header not counted). */
    max_request_message_bytes: Type.Optional(Type.Integer({ minimum: 0 })),
    /** Largest gRPC message the upstream may send back, in bytes. */
    max_response_message_bytes: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);

export const PluginsSchema = Type.Object(
  {
    'grpc-limits': Type.Optional(GrpcLimitsSchema),
    prometheus: Type.Optional(PrometheusPluginSchema),
    opentelemetry: Type.Optional(OpenTelemetryPluginSchema),
    'ip-restriction': Type.Optional(IpRestrictionSchema),
    'fault-injection': Type.Optional(FaultInjectionSchema),
    'limit-count': Type.Optional(LimitCountSchema),
    'limit-req': Type.Optional(LimitReqSchema),
    'limit-conn': Type.Optional(LimitConnSchema),
    'key-auth': Type.Optional(KeyAuthSchema),
    'jwt-auth': Type.Optional(JwtAuthSchema),
    'consumer-restriction': Type.Optional(ConsumerRestrictionSchema),
    'proxy-rewrite': Type.Optional(ProxyRewriteSchema),
    'traffic-split': Type.Optional(TrafficSplitSchema),
    'api-breaker': Type.Optional(ApiBreakerSchema),
    'grpc-web': Type.Optional(GrpcWebSchema),
    'grpc-transcode': Type.Optional(GrpcTranscodeSchema),
    cors: Type.Optional(CorsSchema),
  },
  { additionalProperties: false },
);

export type GrpcLimitsConf = Static<typeof GrpcLimitsSchema>;
export type PluginsConf = Static<typeof PluginsSchema>;
