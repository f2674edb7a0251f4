/**
 * The route schema (APISIX `_M.route`, apisix-compat §1.2) for the fields a gRPC proxy needs. Cross-field rules
 * (uri xor uris, host xor hosts, an upstream is required) live in shared/validate.ts beside the schema check, so
 * both planes apply the same rules.
 */
import { Type, type Static } from '@sinclair/typebox';
import {
  DescSchema,
  HostSchema,
  IdSchema,
  LabelsSchema,
  MethodSchema,
  NameSchema,
  StatusSchema,
  TimeoutSchema,
  TimestampSchema,
} from './common.ts';
import { PluginsSchema } from './plugins.ts';
import { UpstreamSchema } from './upstream.ts';

export const RouteSchema = Type.Object(
  {
    id: Type.Optional(IdSchema),
    name: Type.Optional(NameSchema),
    desc: Type.Optional(DescSchema),
    labels: Type.Optional(LabelsSchema),
    create_time: Type.Optional(TimestampSchema),
    update_time: Type.Optional(TimestampSchema),
    uri: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    uris: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { minItems: 1, uniqueItems: true })),
    priority: Type.Optional(Type.Integer()),
    methods: Type.Optional(Type.Array(MethodSchema, { uniqueItems: true })),
    host: Type.Optional(HostSchema),
    hosts: Type.Optional(Type.Array(HostSchema, { minItems: 1, uniqueItems: true })),
    status: Type.Optional(StatusSchema),
    timeout: Type.Optional(TimeoutSchema),
    upstream: Type.Optional(UpstreamSchema),
    plugins: Type.Optional(PluginsSchema),
  },
  { additionalProperties: false },
);

export type RouteConf = Static<typeof RouteSchema>;
