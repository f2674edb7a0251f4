/**
 * The consumer schema (APISIX `_M.consumer`): a client identity, named by `username` (its etcd key), with the
 * credentials the authentication plugins look it up by. A route with `key-auth` admits a call whose key belongs to
 * a consumer, and the consumer's name travels upstream (`x-consumer-username`) and to `consumer-restriction`.
 *
 * Consumer plugins are the credentials: `key-auth: { key }`. Other plugins on a consumer (APISIX merges them over
 * the route's) are not supported yet and are refused as unknown.
 */
import { Type, type Static } from '@sinclair/typebox';
import { ObjectMetaFields } from './common.ts';

/** APISIX's consumer name rule. */
export const USERNAME_PATTERN = '^[a-zA-Z0-9_\\-]+$';

export const KeyAuthConsumerSchema = Type.Object({ key: Type.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false });

export const ConsumerPluginsSchema = Type.Object({ 'key-auth': Type.Optional(KeyAuthConsumerSchema) }, { additionalProperties: false });

export const ConsumerSchema = Type.Object(
  {
    ...ObjectMetaFields,
    username: Type.String({ minLength: 1, maxLength: 100, pattern: USERNAME_PATTERN }),
    plugins: Type.Optional(ConsumerPluginsSchema),
  },
  { additionalProperties: false },
);

export type ConsumerConf = Static<typeof ConsumerSchema>;
