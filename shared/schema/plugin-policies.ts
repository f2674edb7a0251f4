/**
 * Traffic-policy plugins in APISIX's shapes (field names, defaults and ranges as APISIX documents them), applied by
 * the data plane's plugin pipeline (data-plane/plugins/). Every rejection is a trailers-only gRPC answer.
 *
 * - `ip-restriction`: exactly one of `whitelist` / `blacklist` (IPs or CIDR blocks); a refused client gets
 *   PERMISSION_DENIED with `message` (`response_code` is accepted for APISIX configs; gRPC answers carry HTTP 200).
 * - `fault-injection`: `abort` answers the call without reaching the upstream, for `percentage` of calls, with the
 *   status gRPC maps `http_status` to, or with `grpc_status` (our extension: a gRPC client reads only the gRPC
 *   status); `body` is the grpc-message. `delay` holds the call `duration` seconds (at most MAX_FAULT_DELAY_SECONDS)
 *   before it goes on, for `percentage` of calls; both may be set (delay first, then abort, as APISIX). Each takes
 *   `vars` (APISIX's lua-resty-expr rules, shared/vars-expr.ts): the fault applies only to calls they match.
 * - `limit-count`: at most `count` calls per `time_window` seconds per key (fixed window, from the key's first call),
 *   counted in each data-plane process (`policy: local`); over it, RESOURCE_EXHAUSTED with `rejected_msg`.
 * - `limit-req`: `rate` calls per second per key (nginx's leaky bucket), `burst` more held until their turn (or let
 *   through at once with `nodelay`); beyond, RESOURCE_EXHAUSTED with `rejected_msg`. `policy: local` only.
 * - `limit-conn`: at most `conn` concurrent calls per key, `burst` more held for a delay; beyond, RESOURCE_EXHAUSTED.
 * - `key-auth` (on a route or service): the call's key, read from the metadata `header` (default `apikey`), must be a
 *   consumer's (consumer.ts); else UNAUTHENTICATED. `hide_credentials` keeps the key from the upstream.
 * - `consumer-restriction`: the consumer an authentication plugin found must (`whitelist`) or must not
 *   (`blacklist`) be one of the names; else PERMISSION_DENIED with `rejected_msg`.
 * - `proxy-rewrite`: what the upstream is sent instead of the client's request: `uri` (the `:path`, so a
 *   service or method can be renamed), `host` (the `:authority`), `headers` to set, add or remove (APISIX 3's
 *   `{set, add, remove}` or the older flat map, which sets); `regex_uri` (pairs of regex and replacement with `$1`…,
 *   the first that matches the client's `:path` applies; `uri` wins over it). `uri` and header values may name
 *   APISIX's `$variables` (shared/variable-template.ts), header values also `regex_uri`'s captures.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Enum, IdSchema, PositiveSeconds, StringMap } from './common.ts';
import { UpstreamSchema } from './upstream.ts';

export const IpRestrictionSchema = Type.Object(
  {
    whitelist: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 4096 })),
    blacklist: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 4096 })),
    message: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    response_code: Type.Optional(Type.Integer({ minimum: 403, maximum: 404 })),
  },
  { additionalProperties: false },
);

/**
 * The longest `fault-injection` delay, in seconds. APISIX sets no bound; a call held longer than a minute tests
 * nothing a minute does not, and every held call keeps its stream and buffered DATA in the gateway meanwhile.
 */
export const MAX_FAULT_DELAY_SECONDS = 60;

/**
 * APISIX's `vars` (lua-resty-expr): rules (OR) of expressions (AND). As in APISIX's schema, only the two outer
 * levels are checked here; each expression is checked, with a message naming it, by shared/vars-expr.ts.
 */
const VarsSchema = Type.Array(Type.Array(Type.Unknown(), { maxItems: 32 }), { maxItems: 20 });

export const FaultInjectionSchema = Type.Object(
  {
    abort: Type.Optional(
      Type.Object(
        {
          http_status: Type.Optional(Type.Integer({ minimum: 200, maximum: 599 })),
          grpc_status: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 })),
          body: Type.Optional(Type.String({ maxLength: 1024 })),
          percentage: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
          vars: Type.Optional(VarsSchema),
        },
        { additionalProperties: false },
      ),
    ),
    delay: Type.Optional(
      Type.Object(
        {
          /** Seconds, fractions allowed. */
          duration: Type.Number({ exclusiveMinimum: 0, maximum: MAX_FAULT_DELAY_SECONDS }),
          percentage: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
          vars: Type.Optional(VarsSchema),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const LimitCountSchema = Type.Object(
  {
    count: Type.Integer({ minimum: 1 }),
    time_window: Type.Integer({ minimum: 1 }),
    key_type: Type.Optional(Enum(['var', 'var_combination', 'constant'] as const)),
    key: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    rejected_code: Type.Optional(Type.Integer({ minimum: 200, maximum: 599 })),
    rejected_msg: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    /** local: this process counts; redis / redis-cluster: every replica shares one count (data-plane/plugins/redis-stores.ts). */
    policy: Type.Optional(Enum(['local', 'redis', 'redis-cluster'] as const)),
    show_limit_quota_header: Type.Optional(Type.Boolean()),
    /** With Redis unreachable: true lets calls through uncounted, false (APISIX's default) refuses them. */
    allow_degradation: Type.Optional(Type.Boolean()),
    redis_host: Type.Optional(Type.String({ minLength: 2, maxLength: 253 })),
    redis_port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    redis_username: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    redis_password: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    redis_database: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    redis_ssl: Type.Optional(Type.Boolean()),
    redis_ssl_verify: Type.Optional(Type.Boolean()),
    /** Milliseconds a Redis round trip may take before the call is degraded (APISIX's default 1000). */
    redis_timeout: Type.Optional(Type.Integer({ minimum: 1, maximum: 60_000 })),
    /** Accepted for APISIX's configurations: the client keeps one connection per server, never idle-closed. */
    redis_keepalive_timeout: Type.Optional(Type.Integer({ minimum: 1000 })),
    redis_keepalive_pool: Type.Optional(Type.Integer({ minimum: 1 })),
    redis_cluster_nodes: Type.Optional(Type.Array(Type.String({ minLength: 2, maxLength: 300 }), { minItems: 1, maxItems: 64 })),
    redis_cluster_name: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    redis_cluster_ssl: Type.Optional(Type.Boolean()),
    redis_cluster_ssl_verify: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

/** limit-req's and limit-conn's `key_type` (APISIX's: no `constant`, which only limit-count has). */
const VarKeyType = Enum(['var', 'var_combination'] as const);
/** A limit key: one variable (`remote_addr`, `http_x_user`) or text with `$variables` (shared/limit-key.ts). */
const LimitKey = Type.String({ minLength: 1, maxLength: 256 });

/** APISIX's limit-req (required: rate, burst, key). Counted in each data-plane process (data-plane/plugins/limit-req.ts). */
export const LimitReqSchema = Type.Object(
  {
    /** Calls per second the bucket drains at. */
    rate: Type.Number({ exclusiveMinimum: 0 }),
    /** Calls beyond the rate that are held (or, with nodelay, let through) rather than refused. */
    burst: Type.Number({ minimum: 0 }),
    key_type: Type.Optional(VarKeyType),
    key: LimitKey,
    rejected_code: Type.Optional(Type.Integer({ minimum: 200, maximum: 599 })),
    rejected_msg: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    /** true: calls within the burst go on at once instead of waiting for their turn. */
    nodelay: Type.Optional(Type.Boolean()),
    /** Accepted for APISIX's configurations: the local policy cannot fail to count. */
    allow_degradation: Type.Optional(Type.Boolean()),
    /** Only `local`: APISIX's redis and redis-cluster policies are not supported for limit-req. */
    policy: Type.Optional(Enum(['local'] as const)),
  },
  { additionalProperties: false },
);

/** APISIX's limit-conn (required: conn, burst, default_conn_delay, key), counted in each process (limit-conn.ts). */
export const LimitConnSchema = Type.Object(
  {
    /** Concurrent calls per key. */
    conn: Type.Integer({ minimum: 1 }),
    /** Concurrent calls beyond `conn` that are delayed rather than refused. */
    burst: Type.Integer({ minimum: 0 }),
    /** Seconds a call beyond `conn` is delayed (per `conn` calls ahead of it, as APISIX counts). */
    default_conn_delay: PositiveSeconds(),
    /** true: always default_conn_delay; false (APISIX's default): the delay follows how long calls last. */
    only_use_default_delay: Type.Optional(Type.Boolean()),
    key_type: Type.Optional(VarKeyType),
    key: LimitKey,
    rejected_code: Type.Optional(Type.Integer({ minimum: 200, maximum: 599 })),
    rejected_msg: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    /** Accepted for APISIX's configurations: the local policy cannot fail to count. */
    allow_degradation: Type.Optional(Type.Boolean()),
    /** Only `local`: APISIX's redis and redis-cluster policies are not supported for limit-conn. */
    policy: Type.Optional(Enum(['local'] as const)),
  },
  { additionalProperties: false },
);

export const KeyAuthSchema = Type.Object(
  {
    header: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9_-]+$' })),
    /** APISIX reads a query argument too; a gRPC call has none, so it is accepted and unused. */
    query: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    hide_credentials: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const JwtAuthSchema = Type.Object(
  {
    header: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9_-]+$' })),
    /** APISIX also reads a query argument and a cookie; a gRPC call has neither, so they are accepted and unused. */
    query: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    cookie: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    hide_credentials: Type.Optional(Type.Boolean()),
    key_claim_name: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    store_in_ctx: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const ConsumerNames = Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { minItems: 1, maxItems: 4096 });

export const ConsumerRestrictionSchema = Type.Object(
  {
    type: Type.Optional(Enum(['consumer_name'] as const)),
    whitelist: Type.Optional(ConsumerNames),
    blacklist: Type.Optional(ConsumerNames),
    rejected_code: Type.Optional(Type.Integer({ minimum: 200, maximum: 599 })),
    rejected_msg: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
  },
  { additionalProperties: false },
);

const HeaderName = Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$' });
/** Names are checked with the plugin (shared/validate.ts): a free-form map, as the schema document can say it. */
const HeaderMap = StringMap(Type.String({ maxLength: 4096 }), { maxProperties: 256, propertyNames: { minLength: 1, maxLength: 256 } });

export const ProxyRewriteSchema = Type.Object(
  {
    uri: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, pattern: '^/' })),
    /** Pairs of [regex, replacement]: checked (even length, regexes, `$n` captures) by shared/validate.ts. */
    regex_uri: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { minItems: 2, maxItems: 64 })),
    host: Type.Optional(Type.String({ minLength: 1, maxLength: 255, pattern: '^[0-9a-zA-Z._\\[\\]:-]+$' })),
    headers: Type.Optional(
      Type.Union([
        Type.Object(
          {
            set: Type.Optional(HeaderMap),
            add: Type.Optional(HeaderMap),
            remove: Type.Optional(Type.Array(HeaderName, { minItems: 1, maxItems: 256 })),
          },
          { additionalProperties: false },
        ),
        HeaderMap,
      ]),
    ),
    /** APISIX's: the raw request URI instead of the normalized one; a gRPC `:path` is used as sent either way. */
    use_real_request_uri_unsafe: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export type IpRestrictionConf = Static<typeof IpRestrictionSchema>;
export type FaultInjectionConf = Static<typeof FaultInjectionSchema>;
export type LimitCountConf = Static<typeof LimitCountSchema>;
export type LimitReqConf = Static<typeof LimitReqSchema>;
export type LimitConnConf = Static<typeof LimitConnSchema>;
export type KeyAuthConf = Static<typeof KeyAuthSchema>;
export type ConsumerRestrictionConf = Static<typeof ConsumerRestrictionSchema>;
export type ProxyRewriteConf = Static<typeof ProxyRewriteSchema>;
export type JwtAuthConf = Static<typeof JwtAuthSchema>;

/**
 * `traffic-split` (APISIX priority 966): `rules`, each with `match` (a list of `{vars}`, any one matching; no match:
 * every call) and `weighted_upstreams` (an upstream by `upstream_id` or inline, or neither for the route's own, each
 * with a `weight`). The first rule that matches picks the call's upstream by weighted round robin; no rule
 * matching leaves the route's upstream.
 */
export const TrafficSplitSchema = Type.Object(
  {
    rules: Type.Array(
      Type.Object(
        {
          match: Type.Optional(
            Type.Array(Type.Object({ vars: Type.Optional(Type.Array(Type.Array(Type.Unknown(), { maxItems: 32 }), { maxItems: 32 })) }, { additionalProperties: false }), { maxItems: 32 }),
          ),
          weighted_upstreams: Type.Array(
            Type.Object(
              {
                upstream_id: Type.Optional(IdSchema),
                upstream: Type.Optional(UpstreamSchema),
                weight: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
              },
              { additionalProperties: false },
            ),
            { minItems: 1, maxItems: 64 },
          ),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 64 },
    ),
  },
  { additionalProperties: false },
);

export type TrafficSplitConf = Static<typeof TrafficSplitSchema>;

const GrpcStatuses = (minimum: number) => Type.Array(Type.Integer({ minimum, maximum: 16 }), { minItems: 1, maxItems: 17, uniqueItems: true });

/**
 * `api-breaker` (APISIX priority 1005): after `unhealthy.failures` unhealthy answers in a row the route's calls are
 * answered by the gateway for 2, 4, 8 … seconds (at most `max_breaker_sec`), until `healthy.successes` healthy
 * answers close it. APISIX counts HTTP statuses, which are 200 for every gRPC answer: `grpc_statuses` (an
 * extension) are what a gRPC call is judged by, and `http_statuses` are matched against the HTTP status gRPC's
 * mapping gives the call's status (INTERNAL → 500, UNAVAILABLE → 503, …).
 */
export const ApiBreakerSchema = Type.Object(
  {
    break_response_code: Type.Integer({ minimum: 200, maximum: 599 }),
    break_response_body: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    break_response_headers: Type.Optional(
      Type.Array(
        Type.Object(
          { key: Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$' }), value: Type.String({ minLength: 1, maxLength: 4096 }) },
          { additionalProperties: false },
        ),
        { maxItems: 32 },
      ),
    ),
    max_breaker_sec: Type.Optional(Type.Integer({ minimum: 3, maximum: 86_400 })),
    unhealthy: Type.Optional(
      Type.Object(
        {
          http_statuses: Type.Optional(Type.Array(Type.Integer({ minimum: 500, maximum: 599 }), { minItems: 1, maxItems: 100, uniqueItems: true })),
          grpc_statuses: Type.Optional(GrpcStatuses(1)),
          failures: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
        },
        { additionalProperties: false },
      ),
    ),
    healthy: Type.Optional(
      Type.Object(
        {
          http_statuses: Type.Optional(Type.Array(Type.Integer({ minimum: 200, maximum: 499 }), { minItems: 1, maxItems: 300, uniqueItems: true })),
          grpc_statuses: Type.Optional(GrpcStatuses(0)),
          successes: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export type ApiBreakerConf = Static<typeof ApiBreakerSchema>;
