/**
 * Definitions shared by the resource schemas, ported from APISIX's apisix/schema_def.lua.
 */
import { Type, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox';

/** A plain JSON Schema `enum`, so a bad value reports the allowed list rather than one failed `const` branch. */
export function Enum<const T extends readonly (string | number)[]>(values: T): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: typeof values[0] === 'number' ? 'integer' : 'string', enum: [...values] });
}

export const IdSchema = Type.Union([
  Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9-_.]+$' }),
  Type.Integer({ minimum: 1 }),
]);

/** `*`, `*.foo.com`, `foo.com`, `[::1]` or an IP. */
export const HostSchema = Type.String({ pattern: '^\\*$|^\\*?[0-9a-zA-Z-._\\[\\]:]+$' });

/**
 * An object with any keys whose values all match `value`. Written with `additionalProperties` rather than
 * TypeBox's `Record` (`patternProperties: {"^(.*)$": …}`): the same rule, but OpenAPI generators keep it as is, so
 * the published OpenAPI bodies stay identical to the validation schemas.
 */
export function StringMap<T extends TSchema>(value: T, bounds: ObjectBounds = {}): TUnsafe<Record<string, Static<T>>> {
  return Type.Unsafe<Record<string, Static<T>>>({ type: 'object', additionalProperties: value, ...bounds });
}

/** JSON Schema's size keywords for an object with free-form keys. */
export interface ObjectBounds {
  maxProperties?: number;
  propertyNames?: { minLength?: number; maxLength?: number };
}

/**
 * Bounds that APISIX does not set (its `labels_def` bounds each value only): labels are matched by list filters and
 * shown in dashboards, so 64 pairs with keys as long as values (256) is generous; Kubernetes allows 63-character
 * names. Without them one object could carry a 1.5 MiB label set into every replica's memory and every list answer.
 */
export const MAX_LABELS = 64;
export const MAX_KEY_LENGTH = 256;

/** An object key: non-empty and at most MAX_KEY_LENGTH characters (JSON Schema `propertyNames`). */
export const KeyNameSchema = { minLength: 1, maxLength: MAX_KEY_LENGTH } as const;

export const LabelsSchema = StringMap(Type.String({ pattern: '^\\S+$', minLength: 1, maxLength: 256 }), {
  maxProperties: MAX_LABELS,
  propertyNames: KeyNameSchema,
});

export const NameSchema = Type.String({ minLength: 1, maxLength: 256 });
export const DescSchema = Type.String({ maxLength: 256 });
export const TimestampSchema = Type.Integer();

/**
 * Upper bound of every duration in seconds (timeouts, `retry_timeout`, `keepalive_pool.idle_timeout`). APISIX only
 * says > 0 (or ≥ 0); a bound is needed because Node clamps a timer above 2^31−1 ms (24.8 days) to 1 ms with a
 * TimeoutOverflowWarning, so `timeout.connect: 3000000` became a 1 ms connect timeout (issue #11 case 1). One day
 * is far beyond any sensible connect, send, read, retry or idle time and far below the clamp, even in milliseconds
 * with a multiplier applied.
 */
export const MAX_DURATION_SECONDS = 86400;

/** A positive duration in seconds, fractions allowed. */
export function PositiveSeconds(): ReturnType<typeof Type.Number> {
  return Type.Number({ exclusiveMinimum: 0, maximum: MAX_DURATION_SECONDS });
}

/** A duration in seconds where 0 means "none" (APISIX `retry_timeout`, `idle_timeout`). */
export function OptionalSeconds(): ReturnType<typeof Type.Number> {
  return Type.Number({ minimum: 0, maximum: MAX_DURATION_SECONDS });
}

/** Seconds, fractions allowed; APISIX requires all three when `timeout` is present. */
export const TimeoutSchema = Type.Object(
  {
    connect: PositiveSeconds(),
    send: PositiveSeconds(),
    read: PositiveSeconds(),
  },
  { additionalProperties: false },
);

export const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE'] as const;
export const MethodSchema = Enum(METHODS);

export const StatusSchema = Enum([0, 1] as const);

/** PEM text bounds from APISIX's certificate_scheme / private_key_schema. */
export const CertificateSchema = Type.String({ minLength: 128, maxLength: 65536 });
export const PrivateKeySchema = Type.String({ minLength: 64, maxLength: 65536 });

/**
 * The fields every stored object has (APISIX: `id`, `desc`, `labels`, `create_time`, `update_time`), spread into
 * each resource schema. Named objects add `name`; SSL objects have none.
 */
export const ObjectMetaFields = {
  id: Type.Optional(IdSchema),
  desc: Type.Optional(DescSchema),
  labels: Type.Optional(LabelsSchema),
  create_time: Type.Optional(TimestampSchema),
  update_time: Type.Optional(TimestampSchema),
};

export const NamedObjectFields = { ...ObjectMetaFields, name: Type.Optional(NameSchema) };
