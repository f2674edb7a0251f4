/**
 * A `grpc-transcode` route compiled with its snapshot (issue #17): the method it calls, resolved in the route's
 * proto (proto-registry.ts, with the proto's imports), the request and response message types, and the plugin's
 * options as the JSON mapping takes them. Built once per route build; a route whose proto is missing or does not
 * define the service or method cannot be built (the snapshot skips it with a log line, keeping its last good build).
 */
import type { GrpcTranscodeConf } from '../../shared/schema/plugin-web.ts';
import type { CompiledProto, ProtoRoot } from './proto-registry.ts';
import { parsePbOptions, type JsonOptions } from './json-mapping.ts';
import { findTranscodeMethod } from '../../shared/proto-check.ts';
import { compilePathTemplate, type PathTemplate } from '../../shared/path-template.ts';

export type MessageType = ReturnType<ProtoRoot['lookupType']>;

export interface TranscodeTarget {
  /** The upstream's `:path`: `/<package>.<Service>/<Method>`. */
  readonly grpcPath: string;
  readonly requestType: MessageType;
  readonly responseType: MessageType;
  /** A server-streaming method: its messages go out as newline-delimited JSON as they come. */
  readonly serverStreaming: boolean;
  readonly options: JsonOptions;
  /** `deadline` in ms (0: none): sent upstream as `grpc-timeout`, enforced by the call. */
  readonly deadlineMs: number;
  readonly showStatusInBody: boolean;
  /** `path_template`: the fields the request's path fills (undefined: none). */
  readonly pathTemplate: PathTemplate | undefined;
  /** `max_resp_body_size`: the largest response message transcoded (else the route's grpc-limits cap, else 4 MiB). */
  readonly maxResponseBytes: number | undefined;
  /** The message type of `grpc-status-details-bin`'s details (`status_detail_type`), when configured. */
  readonly detailType: MessageType | undefined;
}

export function compileTranscode(conf: GrpcTranscodeConf, proto: CompiledProto | undefined, protoError: string | undefined): TranscodeTarget {
  const protoId = String(conf.proto_id);
  if (proto === undefined) throw new Error(`grpc-transcode: proto ${protoId} ${protoError === undefined ? 'not found' : `cannot be compiled: ${protoError}`}`);
  const root = proto.root;
  const method = findTranscodeMethod(root, protoId, conf.service, conf.method);
  if (typeof method === 'string') throw new Error(`grpc-transcode: ${method}`);
  const serviceName = method.parent === null ? conf.service : method.parent.fullName.replace(/^\./, '');
  const requestType = root.lookupType(method.requestType);
  const responseType = root.lookupType(method.responseType);
  let detailType: MessageType | undefined;
  if (conf.status_detail_type !== undefined) {
    try {
      detailType = root.lookupType(conf.status_detail_type);
    } catch {
      throw new Error(`grpc-transcode: proto ${protoId} defines no message ${conf.status_detail_type} (status_detail_type)`);
    }
  }
  return {
    grpcPath: `/${serviceName}/${method.name}`,
    requestType,
    responseType,
    serverStreaming: method.responseStream === true,
    options: parsePbOptions(conf.pb_option ?? []),
    deadlineMs: conf.deadline ?? 0,
    showStatusInBody: conf.show_status_in_body ?? false,
    maxResponseBytes: conf.max_resp_body_size,
    pathTemplate: templateOf(conf.path_template),
    detailType,
  };
}

function templateOf(source: string | undefined): PathTemplate | undefined {
  if (source === undefined) return undefined;
  const compiled = compilePathTemplate(source);
  if (typeof compiled === 'string') throw new Error(`grpc-transcode: ${compiled}`);
  return compiled;
}
