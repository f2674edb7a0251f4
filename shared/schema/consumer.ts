/**
 * The consumer schema (APISIX `_M.consumer`): a client identity, named by `username` (its etcd key), with the
 * credentials the authentication plugins look it up by. A route with `key-auth` admits a call whose key belongs to
 * a consumer, and the consumer's name travels upstream (`x-consumer-username`) and to `consumer-restriction`.
 *
 * Consumer plugins are the credentials (`key-auth: { key }`, `jwt-auth: { key, secret | public_key, algorithm }`)
 * and the route's traffic plugins (limit-count, proxy-rewrite, ip-restriction, …), which APISIX merges over the
 * route's once the consumer is identified: the consumer's configuration of a plugin wins over the route's
 * (data-plane/plugins/pipeline.ts). Plugins that only make sense on a route (the authentication plugins' route
 * settings, consumer-restriction, grpc-limits, prometheus, opentelemetry, traffic-split) are refused as unknown.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Enum, IdSchema, ObjectMetaFields } from './common.ts';
import { PluginsSchema, type PluginsConf } from './plugins.ts';

/** APISIX's consumer name rule. */
export const USERNAME_PATTERN = '^[a-zA-Z0-9_\\-]+$';

export const KeyAuthConsumerSchema = Type.Object({ key: Type.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false });

/** JWT algorithms a consumer's tokens are signed with (APISIX's jwt-auth: HS256, HS512, RS256, ES256). */
export const JWT_ALGORITHMS = ['HS256', 'HS512', 'RS256', 'ES256'] as const;

export const JwtAuthConsumerSchema = Type.Object(
  {
    /** What the token's key claim (`key` unless the route says otherwise) names this consumer by. */
    key: Type.String({ minLength: 1, maxLength: 256 }),
    /** HS256/HS512: the shared secret (stored encrypted, never returned). */
    secret: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    /** RS256/ES256: the PEM public key tokens are verified with. */
    public_key: Type.Optional(Type.String({ minLength: 1, maxLength: 16384 })),
    algorithm: Type.Optional(Enum(JWT_ALGORITHMS)),
    /** Accepted for APISIX configurations (the lifetime of tokens APISIX would sign); tokens are verified by their own `exp`. */
    exp: Type.Optional(Type.Integer({ minimum: 1 })),
    /** The secret is base64 (decoded before use). */
    base64_secret: Type.Optional(Type.Boolean()),
    /** Seconds of clock skew allowed when checking `exp` and `nbf`. */
    lifetime_grace_period: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400 })),
  },
  { additionalProperties: false },
);

/** Route plugins a consumer cannot carry: they configure the route itself, or who may call it. */
export const ROUTE_ONLY_PLUGINS = ['key-auth', 'jwt-auth', 'consumer-restriction', 'grpc-limits', 'prometheus', 'opentelemetry', 'traffic-split', 'grpc-web', 'grpc-transcode', 'cors'] as const;

const ConsumerPolicyPlugins = Type.Omit(PluginsSchema, ROUTE_ONLY_PLUGINS);

export const ConsumerPluginsSchema = Type.Object(
  { ...ConsumerPolicyPlugins.properties, 'key-auth': Type.Optional(KeyAuthConsumerSchema), 'jwt-auth': Type.Optional(JwtAuthConsumerSchema) },
  { additionalProperties: false },
);

export const ConsumerSchema = Type.Object(
  {
    ...ObjectMetaFields,
    username: Type.String({ minLength: 1, maxLength: 100, pattern: USERNAME_PATTERN }),
    plugins: Type.Optional(ConsumerPluginsSchema),
    /** The consumer group whose plugins this consumer takes, under its own (which win). */
    group_id: Type.Optional(IdSchema),
  },
  { additionalProperties: false },
);

/**
 * A consumer group (APISIX `_M.consumer_group`): plugins that every consumer naming it by `group_id` takes, below
 * the consumer's own configuration of the same plugin (consumer > consumer group > route > plugin config > service).
 */
export const ConsumerGroupSchema = Type.Object(
  {
    ...ObjectMetaFields,
    plugins: Type.Object(ConsumerPolicyPlugins.properties, { additionalProperties: false }),
  },
  { additionalProperties: false },
);

export type ConsumerGroupConf = Static<typeof ConsumerGroupSchema>;

export type ConsumerConf = Static<typeof ConsumerSchema>;
export type JwtAuthConsumerConf = Static<typeof JwtAuthConsumerSchema>;

/** A consumer's plugins other than its credentials (what runs on its calls), undefined when it has none. */
export function consumerPolicyPlugins(plugins: ConsumerConf['plugins']): PluginsConf | undefined {
  if (plugins === undefined) return undefined;
  const { 'key-auth': _key, 'jwt-auth': _jwt, ...policies } = plugins;
  return Object.keys(policies).length === 0 ? undefined : policies;
}
