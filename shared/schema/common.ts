/**
 * Definitions shared by the resource schemas, ported from APISIX's apisix/schema_def.lua (apisix-compat §1.1).
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
export function StringMap<T extends TSchema>(value: T): TUnsafe<Record<string, Static<T>>> {
  return Type.Unsafe<Record<string, Static<T>>>({ type: 'object', additionalProperties: value });
}

export const LabelsSchema = StringMap(Type.String({ pattern: '^\\S+$', minLength: 1, maxLength: 256 }));

export const NameSchema = Type.String({ minLength: 1, maxLength: 256 });
export const DescSchema = Type.String({ maxLength: 256 });
export const TimestampSchema = Type.Integer();

/** Seconds, fractions allowed; APISIX requires all three when `timeout` is present. */
export const TimeoutSchema = Type.Object(
  {
    connect: Type.Number({ exclusiveMinimum: 0 }),
    send: Type.Number({ exclusiveMinimum: 0 }),
    read: Type.Number({ exclusiveMinimum: 0 }),
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
