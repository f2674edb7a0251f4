/**
 * Value shapes shared by the sections of conf/config.yaml (./config-file.ts): a key that may be absent or `~`,
 * ports and listen addresses, nginx's size and duration forms, and APISIX's "a string or a list of strings".
 *
 * A `title` is the short name of a value kind; configuration errors say `expected <title>` with it
 * (shared/config-errors.ts). `writeOnly` marks secrets, whose values an error never repeats.
 */
import { Type, type Static, type TNull, type TOptional, type TSchema, type TUnion } from '@sinclair/typebox';

/**
 * A key that may be left out or set to `~`: both mean "the default", as in APISIX's config-default.yaml, which
 * writes `~` for every unset value.
 */
export function Maybe<T extends TSchema>(schema: T): TOptional<TUnion<[T, TNull]>> {
  return Type.Optional(Type.Union([schema, Type.Null()], schema.writeOnly === true ? { writeOnly: true } : {}));
}

/** A string an error message must not repeat (passwords, keys). */
export function Secret(options: { minLength?: number; description?: string } = {}) {
  return Type.String({ ...options, writeOnly: true });
}

export const PortSchema = Type.Integer({ minimum: 0, maximum: 65535 });

/** `ip` and `port`, each with the default of the key that holds it. */
export const AddressSchema = Type.Object({
  ip: Maybe(Type.String()),
  port: Maybe(PortSchema),
});

/**
 * One entry of `node_listen` / `ssl.listen`: a bare port (on 0.0.0.0), or a mapping whose `enable_http2` (APISIX
 * 2.x, per port) says whether the port serves HTTP/2; a port without it is HTTP/1.1, which a gRPC gateway skips.
 */
export const ListenEntrySchema = Type.Union(
  [
    PortSchema,
    Type.Object({
      ip: Maybe(Type.String({ default: '0.0.0.0' })),
      port: Maybe(Type.Integer({ minimum: 0, maximum: 65535, default: 0 })),
      enable_http2: Maybe(Type.Boolean({ description: 'Unset: apisix.enable_http2 (node_listen) or true (ssl.listen).' })),
    }),
  ],
  { title: 'a port or a mapping of ip, port and enable_http2' },
);

export function ListenSchema(options: { default: unknown; description: string }) {
  return Type.Union([PortSchema, Type.Array(ListenEntrySchema)], {
    ...options,
    title: 'a port or a list of ports and mappings of ip, port and enable_http2',
  });
}

/** APISIX's CLI schema takes a single string for a list of one (`etcd.host`, `keyring`, `allow_admin`). */
export function StringOrList(options: { description?: string; default?: unknown; writeOnly?: boolean } = {}) {
  const item = options.writeOnly === true ? Secret() : Type.String();
  return Type.Union([item, Type.Array(item)], { ...options, title: 'a string or a list of strings' });
}

/** nginx's time form, or a number of seconds. The bounds of each setting are checked where it is read. */
export const DURATION_PATTERN = '^\\s*\\d+(\\.\\d+)?(ms|s|m)?\\s*$';

export function DurationSchema(options: { description?: string; default?: unknown } = {}) {
  return Type.Union([Type.Number({ minimum: 0 }), Type.String({ pattern: DURATION_PATTERN, examples: ['10s', '500ms', '2m'] })], {
    ...options,
    title: 'seconds or a duration such as 10s, 500ms or 2m',
  });
}

/** nginx's size form (`32k`, `1m`, `2g`), or a number of bytes. */
export const SIZE_PATTERN = '^\\s*\\d+[kKmMgG]?\\s*$';

export function SizeSchema(options: { description?: string; default?: unknown } = {}) {
  return Type.Union([Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }), Type.String({ pattern: SIZE_PATTERN, examples: ['32k', '1m'] })], {
    ...options,
    title: 'bytes or a size such as 32k, 1m or 2g',
  });
}

export type Duration = Static<ReturnType<typeof DurationSchema>>;
export type Size = Static<ReturnType<typeof SizeSchema>>;
export type Address = Static<typeof AddressSchema>;
export type ListenFile = Static<ReturnType<typeof ListenSchema>>;
