/**
 * Upstream health checks (`upstream.checks`): APISIX's `health_checker` schema (apisix/schema_def.lua) accepted as
 * documented, with APISIX's defaults (applied on the data plane, never written: data-plane/upstream/health/policy.ts),
 * plus what a gRPC gateway needs:
 *
 * - `active.type: "grpc"`: the standard `grpc.health.v1.Health/Check` call, over h2c or TLS following the
 *   upstream's scheme; `active.grpc_service` is the request's `service` (default "").
 * - `passive.unhealthy.grpc_statuses`: gRPC status codes that count as failures (default [14], UNAVAILABLE).
 * - Passive checks without active ones (APISIX refuses them: it has nothing that would bring a node back). Here a
 *   node ejected by passive checks alone comes back after `passive.base_ejection_time` seconds (Envoy's outlier
 *   ejection; default 30 s), and the next failures eject it again.
 *
 * Counts are APISIX's (1..254); intervals are whole seconds ≥ 1 as in APISIX; `timeout` is seconds, fractions allowed.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Enum, HostSchema, MAX_DURATION_SECONDS } from './common.ts';

export const ACTIVE_CHECK_TYPES = ['http', 'https', 'tcp', 'grpc'] as const;
export const PASSIVE_CHECK_TYPES = ['http', 'https', 'tcp', 'grpc'] as const;

/** lua-resty-healthcheck keeps counters in a byte. */
const Count = (): ReturnType<typeof Type.Integer> => Type.Integer({ minimum: 1, maximum: 254 });
const Interval = (): ReturnType<typeof Type.Integer> => Type.Integer({ minimum: 1, maximum: MAX_DURATION_SECONDS });
const HttpStatuses = (): ReturnType<typeof Type.Array> =>
  Type.Array(Type.Integer({ minimum: 200, maximum: 599 }), { minItems: 1, maxItems: 400, uniqueItems: true });
/** gRPC status codes 1..16 (0, OK, is never a failure). */
const GrpcStatuses = (): ReturnType<typeof Type.Array> => Type.Array(Type.Integer({ minimum: 1, maximum: 16 }), { minItems: 1, maxItems: 16, uniqueItems: true });

export const ActiveCheckSchema = Type.Object(
  {
    type: Type.Optional(Enum(ACTIVE_CHECK_TYPES)),
    timeout: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: MAX_DURATION_SECONDS })),
    concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    host: Type.Optional(HostSchema),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    http_path: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, pattern: '^/' })),
    https_verify_certificate: Type.Optional(Type.Boolean()),
    req_headers: Type.Optional(Type.Array(Type.String({ minLength: 3, maxLength: 4096, pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+:' }), { minItems: 1, maxItems: 64 })),
    grpc_service: Type.Optional(Type.String({ maxLength: 1024 })),
    healthy: Type.Optional(
      Type.Object(
        { interval: Type.Optional(Interval()), http_statuses: Type.Optional(HttpStatuses()), successes: Type.Optional(Count()) },
        { additionalProperties: false },
      ),
    ),
    unhealthy: Type.Optional(
      Type.Object(
        {
          interval: Type.Optional(Interval()),
          http_statuses: Type.Optional(HttpStatuses()),
          http_failures: Type.Optional(Count()),
          tcp_failures: Type.Optional(Count()),
          timeouts: Type.Optional(Count()),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const PassiveCheckSchema = Type.Object(
  {
    type: Type.Optional(Enum(PASSIVE_CHECK_TYPES)),
    base_ejection_time: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: MAX_DURATION_SECONDS })),
    healthy: Type.Optional(
      Type.Object({ http_statuses: Type.Optional(HttpStatuses()), successes: Type.Optional(Count()) }, { additionalProperties: false }),
    ),
    unhealthy: Type.Optional(
      Type.Object(
        {
          http_statuses: Type.Optional(HttpStatuses()),
          grpc_statuses: Type.Optional(GrpcStatuses()),
          http_failures: Type.Optional(Count()),
          tcp_failures: Type.Optional(Count()),
          timeouts: Type.Optional(Count()),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const ChecksSchema = Type.Object(
  { active: Type.Optional(ActiveCheckSchema), passive: Type.Optional(PassiveCheckSchema) },
  { additionalProperties: false, minProperties: 1 },
);

export type ActiveCheckConf = Static<typeof ActiveCheckSchema>;
export type PassiveCheckConf = Static<typeof PassiveCheckSchema>;
export type ChecksConf = Static<typeof ChecksSchema>;
