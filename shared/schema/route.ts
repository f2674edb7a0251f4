/**
 * The route schema (APISIX `_M.route`; docs/admin-api.md) for the fields a gRPC proxy needs. A route reaches its
 * nodes through an inline `upstream`, an `upstream_id`, or a `service_id` whose service carries the upstream.
 * Cross-field rules (uri xor uris, host xor hosts, upstream xor upstream_id, one way to an upstream required) live
 * in shared/validate.ts beside the schema check, so both planes apply the same rules; that the referenced objects
 * exist is checked by the admin API when it writes.
 */
import { Type, type Static } from '@sinclair/typebox';
import {
  HostSchema,
  IdSchema,
  MethodSchema,
  NamedObjectFields,
  StatusSchema,
  TimeoutSchema,
} from './common.ts';
import { PluginsSchema } from './plugins.ts';
import { UpstreamSchema } from './upstream.ts';

export const RouteSchema = Type.Object(
  {
    ...NamedObjectFields,
    uri: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    uris: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { minItems: 1, uniqueItems: true })),
    priority: Type.Optional(Type.Integer()),
    methods: Type.Optional(Type.Array(MethodSchema, { uniqueItems: true })),
    host: Type.Optional(HostSchema),
    hosts: Type.Optional(Type.Array(HostSchema, { minItems: 1, uniqueItems: true })),
    status: Type.Optional(StatusSchema),
    timeout: Type.Optional(TimeoutSchema),
    upstream: Type.Optional(UpstreamSchema),
    upstream_id: Type.Optional(IdSchema),
    service_id: Type.Optional(IdSchema),
    plugin_config_id: Type.Optional(IdSchema),
    plugins: Type.Optional(PluginsSchema),
  },
  { additionalProperties: false },
);

export type RouteConf = Static<typeof RouteSchema>;
