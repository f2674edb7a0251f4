/**
 * An HTTP request on a `grpc-transcode` route (issue #17): the call of the route's method it becomes. Any HTTP
 * method is served (APISIX's plugin reads GET's query string and POST's JSON or form body alike); the upstream is
 * sent `POST <grpcPath>` with `content-type: application/grpc`, the request's other headers as metadata, and the
 * plugin's `deadline` as `grpc-timeout` unless the client sent one. Plugins, limits, timeouts, metrics and access
 * logs apply as to any call (proxy/serve-request.ts serveRouted).
 */
import type { RouteTarget } from '../routing/route-target.ts';
import { serveRouted } from '../proxy/serve-request.ts';
import { answerHttp, type WebRequest } from '../web/serve-web.ts';
import { TranscodeStream } from './transcode-stream.ts';

/** Request headers that describe the HTTP body or this hop, not the call: not passed on as metadata. */
const NOT_METADATA = new Set(['content-type', 'content-length', 'accept', 'accept-encoding', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'expect']);

export function serveTranscode(req: WebRequest, routeId: string, target: RouteTarget, path: string, query: string): void {
  const transcode = target.transcode;
  if (transcode === undefined) return;
  const pathFields = transcode.pathTemplate === undefined ? [] : transcode.pathTemplate.match(path);
  if (pathFields === undefined) return answerHttp(req, 404, `grpc-transcode: the path does not fit the route's path_template\n`, false);
  const fields = [':method', 'POST', ':scheme', 'http', ':path', transcode.grpcPath, ':authority', req.authority, 'content-type', 'application/grpc'];
  let hasTimeout = false;
  let origin: string | undefined;
  const input = req.fields;
  for (let i = 0; i < input.length; i += 2) {
    const name = input[i] as string;
    if (name.charCodeAt(0) === 58 /* ':' */ || NOT_METADATA.has(name)) continue;
    if (name === 'grpc-timeout') hasTimeout = true;
    else if (name === 'origin') origin = input[i + 1];
    fields.push(name, input[i + 1] as string);
  }
  if (!hasTimeout && transcode.deadlineMs > 0) fields.push('grpc-timeout', `${String(Math.ceil(transcode.deadlineMs))}m`);
  const request = { query, contentType: req.contentType ?? '', origin, cors: target.cors, pathFields };
  const stream = new TranscodeStream(req.stream, transcode, request, target.maxRequestMessageBytes, transcode.maxResponseBytes ?? target.maxResponseMessageBytes);
  // The request's end is delivered by the client's stream (HTTP/1.1's body end, HTTP/2's END_STREAM on DATA),
  // except when it came with the headers: then the message is made now, for the handler the call just attached.
  serveRouted(stream, fields, false, req.deps, req.obs, req.snapshot, target, routeId, path, req.authority);
  if (req.endStream) stream.requestEnded();
}
