/**
 * A proto (APISIX `_M.proto`, `/apisix/admin/protos/<id>`): the text of a .proto file that HTTP/JSON transcoding
 * (issue #17's `grpc-transcode`) reads its services and messages from. Its syntax is checked when it is written
 * (shared/proto-check.ts: the parser's message with the line and column), and it may import the well-known types
 * (`google/protobuf/*.proto`) and other protos by `"<id>.proto"`, which must exist.
 */
import { Type, type Static } from '@sinclair/typebox';
import { NameSchema, ObjectMetaFields } from './common.ts';

/** 256 KiB of .proto text: larger than any hand-written file, small enough for etcd and every worker. */
export const MAX_PROTO_BYTES = 262_144;

export const ProtoSchema = Type.Object(
  {
    ...ObjectMetaFields,
    name: Type.Optional(NameSchema),
    content: Type.String({ minLength: 1, maxLength: MAX_PROTO_BYTES }),
  },
  { additionalProperties: false },
);

export type ProtoConf = Static<typeof ProtoSchema>;
