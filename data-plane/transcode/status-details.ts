/**
 * The JSON error body of `grpc-transcode`'s `show_status_in_body` (APISIX): `{"code", "message", "details"}`, the
 * details read from `grpc-status-details-bin` (a google.rpc.Status, PROTOCOL-HTTP2.md's rich error model). Each
 * detail is a google.protobuf.Any; with `status_detail_type` its value is decoded as that message (APISIX's
 * option), else it is given as `{"type_url", "value"}` with the value in base64. Details that do not decode are
 * left out, with the status itself still answered.
 */
import { loadProtobuf } from '../../shared/proto-check.ts';
import { messageToJson, type JsonOptions, type MessageType } from './json-mapping.ts';

/** google.rpc.Status (google/rpc/status.proto) with its Any, as protobufjs JSON: two small types, built once. */
const STATUS_DESCRIPTOR = {
  nested: {
    google: {
      nested: {
        rpc: { nested: { Status: { fields: { code: { type: 'int32', id: 1 }, message: { type: 'string', id: 2 }, details: { rule: 'repeated', type: 'google.protobuf.Any', id: 3 } } } } },
        protobuf: { nested: { Any: { fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } } } },
      },
    },
  },
};

let statusType: MessageType | undefined;

function status(): MessageType {
  statusType ??= loadProtobuf().Root.fromJSON(STATUS_DESCRIPTOR).lookupType('google.rpc.Status');
  return statusType;
}

interface AnyDetail {
  type_url?: string;
  value?: Uint8Array;
}

export function statusBody(code: number, message: string, detailsBin: string | undefined, detailType: MessageType | undefined, options: JsonOptions): { code: number; message: string; details: unknown[] } {
  const details: unknown[] = [];
  if (detailsBin !== undefined && detailsBin !== '') {
    try {
      const decoded = status().decode(Buffer.from(detailsBin, 'base64')) as unknown as { details?: AnyDetail[] };
      for (const detail of decoded.details ?? []) {
        const value = detail.value ?? new Uint8Array(0);
        if (detailType === undefined) details.push({ type_url: detail.type_url ?? '', value: Buffer.from(value).toString('base64') });
        else details.push(messageToJson(detailType, value, options));
      }
    } catch {
      // Not a google.rpc.Status, or a detail that is not the configured type: the status is answered without it.
    }
  }
  return { code, message, details };
}
