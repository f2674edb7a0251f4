/**
 * The plugins that let browsers and REST clients reach gRPC services (issue #17), in APISIX's shapes:
 *
 * - `grpc-web` (apisix/plugins/grpc-web.lua): grpc-web requests (`application/grpc-web`, `+proto`,
 *   `application/grpc-web-text`) over HTTP/1.1 or HTTP/2 become gRPC calls; trailers go back in the body. CORS:
 *   preflights answered 204, `access-control-allow-origin: *` and the grpc headers exposed on every answer;
 *   `cors_allow_headers` is what a preflight allows (APISIX's default, which our default extends with
 *   `grpc-timeout`: the official client sends it when a call has a deadline).
 * - `grpc-transcode` (apisix/plugins/grpc-transcode.lua): an HTTP request with a JSON body (or query parameters)
 *   becomes a call of `service`/`method` of the proto `proto_id` (`/apisix/admin/protos`), its answer JSON;
 *   `deadline` (ms, 0 = none) bounds the call; `pb_option` picks the JSON mapping's options (data-plane/transcode);
 *   `show_status_in_body` puts a gRPC error's status in the JSON body, `status_detail_type` names the message type
 *   `grpc-status-details-bin`'s details are decoded as.
 * - `cors` (apisix/plugins/cors.lua): what the CORS answers of the route's grpc-web and transcoded calls say, instead
 *   of grpc-web's defaults: `allow_origins` (a comma-separated list, `*` for any, `**` for any even with
 *   credentials) or `allow_origins_by_regex`, `allow_methods`, `allow_headers` (`**`: whatever the preflight asks),
 *   `expose_headers`, `max_age` (seconds a browser keeps a preflight's answer), `allow_credential`. With
 *   `allow_credential`, `*` is refused (browsers ignore it then), as APISIX refuses it. gRPC calls are not CORS
 *   requests: the plugin changes nothing for them.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Enum, IdSchema } from './common.ts';

export const DEFAULT_CORS_ALLOW_HEADERS = 'content-type,x-grpc-web,x-user-agent,grpc-timeout';

export const GrpcWebSchema = Type.Object(
  {
    cors_allow_headers: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, default: DEFAULT_CORS_ALLOW_HEADERS })),
  },
  { additionalProperties: false },
);

/** lua-protobuf's options as APISIX's pb_option lists them (hooks are accepted and change nothing here). */
export const PB_OPTIONS = [
  'enum_as_name',
  'enum_as_value',
  'int64_as_number',
  'int64_as_string',
  'int64_as_hexstring',
  'auto_default_values',
  'no_default_values',
  'use_default_values',
  'use_default_metatable',
  'enable_hooks',
  'disable_hooks',
] as const;

/** The longest deadline a transcoded call may have (ms): a day, as timers hold. */
export const MAX_TRANSCODE_DEADLINE_MS = 86_400_000;

export const GrpcTranscodeSchema = Type.Object(
  {
    proto_id: IdSchema,
    service: Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z_][A-Za-z0-9_.]*$' }),
    method: Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }),
    deadline: Type.Optional(Type.Number({ minimum: 0, maximum: MAX_TRANSCODE_DEADLINE_MS, default: 0 })),
    pb_option: Type.Optional(Type.Array(Enum(PB_OPTIONS), { minItems: 1, maxItems: PB_OPTIONS.length })),
    show_status_in_body: Type.Optional(Type.Boolean({ default: false })),
    status_detail_type: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    /** Path segments that fill request fields (`/users/{user_id}`): an extension, shared/path-template.ts. */
    path_template: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, pattern: '^/' })),
    /** The largest response message transcoded, in bytes (beyond it the call fails: 502, the upstream's answer cannot be served). */
    max_resp_body_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 * 1024 * 1024 })),
  },
  { additionalProperties: false },
);

export const CorsSchema = Type.Object(
  {
    allow_origins: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, default: '*' })),
    allow_origins_by_regex: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 1024 }), { minItems: 1, maxItems: 64 })),
    allow_methods: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, default: '*' })),
    allow_headers: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, default: '*' })),
    expose_headers: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    max_age: Type.Optional(Type.Integer({ minimum: -1, maximum: 86_400, default: 5 })),
    allow_credential: Type.Optional(Type.Boolean({ default: false })),
  },
  { additionalProperties: false },
);

export type CorsConf = Static<typeof CorsSchema>;
export type GrpcWebConf = Static<typeof GrpcWebSchema>;
export type GrpcTranscodeConf = Static<typeof GrpcTranscodeSchema>;
