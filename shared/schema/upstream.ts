/**
 * The upstream schema (APISIX `upstream_schema`, docs/admin-api.md), narrowed to what a gRPC gateway serves:
 * `scheme` is `grpc` (h2c) or `grpcs` (TLS), `type` is one of APISIX's balancers (`roundrobin`, `chash` with
 * `hash_on`/`key`, `least_conn`, `ewma`), `checks` configures health checks (./checks.ts). One schema serves both
 * the inline `upstream` of routes and services and the `/apisix/upstreams/<id>` resource, as in APISIX.
 *
 * Cross-field rules (`pass_host: rewrite` needs `upstream_host`, `tls` only with `grpcs`, a client certificate
 * with its key or by `client_cert_id` but not both, the PEM pair parsed and matched) live in shared/validate.ts.
 */
import { Type, type Static } from '@sinclair/typebox';
import {
  CertificateSchema,
  Enum,
  HostSchema,
  IdSchema,
  KeyNameSchema,
  NamedObjectFields,
  OptionalSeconds,
  PrivateKeySchema,
  StringMap,
  TimeoutSchema,
} from './common.ts';
import { ChecksSchema } from './checks.ts';

export const UPSTREAM_SCHEMES = ['grpc', 'grpcs'] as const;
export const BALANCER_TYPES = ['roundrobin', 'chash', 'least_conn', 'ewma'] as const;
export const HASH_ON = ['vars', 'header', 'cookie', 'consumer', 'vars_combinations'] as const;
export const PASS_HOST_MODES = ['pass', 'node', 'rewrite'] as const;

/**
 * Nodes per upstream. APISIX sets no bound; this one is Kubernetes': an Endpoints object is truncated at 1,000
 * addresses (EndpointSlices hold 100 each), so a static list longer than that is a mistake or an attack. The
 * roundrobin pick and the per-node pools are linear in it, and a 1.5 MiB body could otherwise hold ~60,000 nodes.
 */
export const MAX_NODES = 1000;

/**
 * Node `metadata` is free-form and unused by the gateway (APISIX keeps it for plugins). Its keys are bounded here
 * (64 of at most 256 characters) and its serialised size in shared/validate.ts (4 KiB, a page; the 1.5 MiB body limit
 * bounds the sum); its depth, like every value's, by shared/json-bounds.ts.
 */
export const MAX_METADATA_KEYS = 64;
export const MAX_METADATA_JSON_BYTES = 4096;

export const NodeMetadataSchema = Type.Object({}, { maxProperties: MAX_METADATA_KEYS, propertyNames: KeyNameSchema });

export const NodeSchema = Type.Object(
  {
    host: HostSchema,
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    weight: Type.Integer({ minimum: 0 }),
    priority: Type.Optional(Type.Integer()),
    metadata: Type.Optional(NodeMetadataSchema),
  },
  { additionalProperties: false },
);

/** `{"host:port": weight}`: the hash-map form of the seed document. */
export const NodeMapSchema = StringMap(Type.Integer({ minimum: 0 }), { maxProperties: MAX_NODES });

/**
 * Per-upstream connection pool (APISIX `keepalive_pool`; its defaults 320 / 60 s / 1000 are nginx's and are not
 * written). For HTTP/2 upstreams `size` bounds pooled sessions, `idle_timeout` closes a session without streams,
 * `requests` retires a session after that many streams.
 */
export const KeepalivePoolSchema = Type.Object(
  {
    size: Type.Optional(Type.Integer({ minimum: 1 })),
    idle_timeout: Type.Optional(OptionalSeconds()),
    requests: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);

/**
 * TLS towards `grpcs` nodes: a client certificate for mTLS, inline (`client_cert` + `client_key`, the key stored
 * encrypted, see shared/crypto.ts) or by reference to an ssl object of `type: client` (`client_cert_id`); and
 * `verify`, whether the node's certificate is checked (APISIX default false: its tests proxy to self-signed nodes).
 */
export const UpstreamTlsSchema = Type.Object(
  {
    client_cert: Type.Optional(CertificateSchema),
    client_key: Type.Optional(PrivateKeySchema),
    client_cert_id: Type.Optional(IdSchema),
    verify: Type.Optional(Type.Boolean()),
  },
  {
    additionalProperties: false,
    // APISIX's `dependencies`: a certificate without its key (or the reverse) is refused by the schema itself.
    dependencies: { client_cert: ['client_key'], client_key: ['client_cert'] },
  },
);

export const UpstreamSchema = Type.Object(
  {
    ...NamedObjectFields,
    nodes: Type.Union([NodeMapSchema, Type.Array(NodeSchema, { maxItems: MAX_NODES })]),
    scheme: Type.Optional(Enum(UPSTREAM_SCHEMES)),
    type: Type.Optional(Enum(BALANCER_TYPES)),
    hash_on: Type.Optional(Enum(HASH_ON)),
    key: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    checks: Type.Optional(ChecksSchema),
    timeout: Type.Optional(TimeoutSchema),
    retries: Type.Optional(Type.Integer({ minimum: 0 })),
    retry_timeout: Type.Optional(OptionalSeconds()),
    pass_host: Type.Optional(Enum(PASS_HOST_MODES)),
    upstream_host: Type.Optional(HostSchema),
    keepalive_pool: Type.Optional(KeepalivePoolSchema),
    tls: Type.Optional(UpstreamTlsSchema),
  },
  { additionalProperties: false },
);

export type UpstreamNodeConf = Static<typeof NodeSchema>;
export type UpstreamTlsConf = Static<typeof UpstreamTlsSchema>;
export type KeepalivePoolConf = Static<typeof KeepalivePoolSchema>;
export type UpstreamConf = Static<typeof UpstreamSchema>;
