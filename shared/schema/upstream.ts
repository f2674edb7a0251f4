/**
 * The upstream schema (APISIX `upstream_schema`, apisix-compat §1.3), narrowed to what a gRPC gateway serves:
 * `scheme` is `grpc` (h2c) or `grpcs` (TLS), `type` is a balancer this gateway implements. Used inline in routes
 * and, later, as the `/apisix/upstreams/<id>` resource.
 */
import { Type, type Static } from '@sinclair/typebox';
import { DescSchema, Enum, HostSchema, IdSchema, LabelsSchema, NameSchema, TimeoutSchema, TimestampSchema } from './common.ts';

export const UPSTREAM_SCHEMES = ['grpc', 'grpcs'] as const;
export const BALANCER_TYPES = ['roundrobin'] as const;
export const PASS_HOST_MODES = ['pass', 'node', 'rewrite'] as const;

export const NodeSchema = Type.Object(
  {
    host: HostSchema,
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    weight: Type.Integer({ minimum: 0 }),
    priority: Type.Optional(Type.Integer()),
    metadata: Type.Optional(Type.Object({})),
  },
  { additionalProperties: false },
);

/** `{"host:port": weight}`: the hash-map form of the seed document. */
export const NodeMapSchema = Type.Record(Type.String(), Type.Integer({ minimum: 0 }));

export const UpstreamSchema = Type.Object(
  {
    id: Type.Optional(IdSchema),
    name: Type.Optional(NameSchema),
    desc: Type.Optional(DescSchema),
    labels: Type.Optional(LabelsSchema),
    create_time: Type.Optional(TimestampSchema),
    update_time: Type.Optional(TimestampSchema),
    nodes: Type.Union([NodeMapSchema, Type.Array(NodeSchema)]),
    scheme: Type.Optional(Enum(UPSTREAM_SCHEMES)),
    type: Type.Optional(Enum(BALANCER_TYPES)),
    timeout: Type.Optional(TimeoutSchema),
    retries: Type.Optional(Type.Integer({ minimum: 0 })),
    retry_timeout: Type.Optional(Type.Number({ minimum: 0 })),
    pass_host: Type.Optional(Enum(PASS_HOST_MODES)),
    upstream_host: Type.Optional(HostSchema),
  },
  { additionalProperties: false },
);

export type UpstreamNodeConf = Static<typeof NodeSchema>;
export type UpstreamConf = Static<typeof UpstreamSchema>;
