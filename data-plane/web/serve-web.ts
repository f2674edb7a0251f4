/**
 * Requests that are not gRPC over HTTP/2 (issue #17): HTTP/1.1 ones, and HTTP/2 ones with another content type.
 * The route they match says what serves them:
 *
 * - `grpc-web`: a grpc-web request (any method the route allows; APISIX's rules: OPTIONS is a CORS preflight,
 *   answered 204; another method than POST is 405; a content type that is not grpc-web's is 400) becomes a gRPC call
 *   on a GrpcWebStream. On a prefix route (`/grpc/web/*`) the upstream's `:path` is what the `*` matched, as APISIX
 *   strips the prefix; on an exact route it is the request's path.
 * - `grpc-transcode`: an HTTP request becomes a call of the configured method (transcode/serve-transcode.ts); with
 *   the `cors` plugin, a preflight (OPTIONS with an Origin) is answered by it, and every answer has its fields.
 * - nothing: HTTP/1.1 is answered with the listeners' readable 505 (connection closed, as before HTTP/1.1 was
 *   served), an HTTP/2 request with another content type with a trailers-only UNIMPLEMENTED-free 415 as before.
 */
import { RouteNotFound, UnsupportedMediaType } from '../../shared/errors.ts';
import type { Snapshot } from '../config/snapshots.ts';
import type { CallObservation } from '../observability/observer.ts';
import type { Downstream } from '../proxy/downstream.ts';
import { respond, serveRouted, type ServeDeps } from '../proxy/serve-request.ts';
import type { RouteConf } from '../../shared/schema/route.ts';
import { serveTranscode } from '../transcode/serve-transcode.ts';
import { GrpcWebStream, webMode } from './grpc-web-stream.ts';
import { fieldValue } from '../http2/fields.ts';
import type { WebCors } from './cors.ts';
import type { RouteTarget } from '../routing/route-target.ts';

export interface WebRequest {
  readonly stream: Downstream;
  readonly fields: string[];
  readonly endStream: boolean;
  readonly deps: ServeDeps;
  readonly obs: CallObservation | undefined;
  readonly snapshot: Snapshot;
  readonly method: string;
  /** The request's path with its query, as the client sent it. */
  readonly path: string;
  readonly authority: string;
  readonly contentType: string | undefined;
  readonly http1: boolean;
}

export const NOT_HTTP2_BODY = 'This port serves gRPC over HTTP/2 (h2c with prior knowledge, or TLS with ALPN h2). HTTP/1.1 is not supported.\n';

export function serveWeb(req: WebRequest): void {
  const query = req.path.indexOf('?');
  const path = query < 0 ? req.path : req.path.slice(0, query);
  const match = req.snapshot.router.match({ path, method: req.method, authority: req.authority });
  const target = match?.target;
  if (match !== undefined && target !== undefined && target.error === undefined) {
    const cors = target.cors;
    if (cors?.grpcWeb === true) {
      if (req.obs !== undefined) req.deps.observer?.route(req.obs, match);
      return serveGrpcWeb(req, match.id, match.route, target, cors, path);
    }
    if (target.transcode !== undefined) {
      if (req.obs !== undefined) req.deps.observer?.route(req.obs, match);
      if (cors !== undefined && req.method === 'OPTIONS' && fieldValue(req.fields, 'origin') !== undefined) {
        return answerFields(req, cors.preflightFields(fieldValue(req.fields, 'origin'), fieldValue(req.fields, 'access-control-request-headers')), '');
      }
      return serveTranscode(req, match.id, target, path, query < 0 ? '' : req.path.slice(query + 1));
    }
  }
  const plugins = match?.route.plugins;
  if (match !== undefined && target?.error !== undefined && (plugins?.['grpc-web'] !== undefined || plugins?.['grpc-transcode'] !== undefined)) {
    // A browser-facing route whose references cannot be followed (a missing upstream): its error, as HTTP.
    if (req.obs !== undefined) req.deps.observer?.route(req.obs, match);
    return answerHttp(req, target.error.httpStatus, `${target.error.publicMessage}\n`, false);
  }
  if (req.http1) return answerHttp(req, 505, NOT_HTTP2_BODY, true);
  if (match === undefined && req.contentType !== undefined && webMode(req.contentType) !== undefined) return respond(req.stream, new RouteNotFound(path), req.obs, req.deps.observer);
  respond(req.stream, new UnsupportedMediaType(req.contentType), req.obs, req.deps.observer);
}

function serveGrpcWeb(req: WebRequest, routeId: string, route: RouteConf, target: RouteTarget, cors: WebCors, path: string): void {
  if (req.method === 'OPTIONS') return answerFields(req, cors.preflightFields(fieldValue(req.fields, 'origin'), fieldValue(req.fields, 'access-control-request-headers')), '');
  if (req.method !== 'POST') return answerHttp(req, 405, 'grpc-web: only POST and OPTIONS (CORS preflight) are served\n', false);
  const mode = webMode(req.contentType);
  if (mode === undefined) return answerHttp(req, 400, `grpc-web: content-type ${JSON.stringify(req.contentType ?? '')} is not grpc-web's\n`, false);
  const upstreamPath = grpcPathOf(route, path);
  const fields: string[] = [];
  const input = req.fields;
  let origin: string | undefined;
  for (let i = 0; i < input.length; i += 2) {
    const name = input[i] as string;
    const value = input[i + 1] as string;
    if (name === 'content-type') fields.push(name, mode.upstreamType);
    else if (name === ':path') fields.push(name, upstreamPath);
    else if (name === 'content-length' || name === 'accept' || name === 'accept-encoding') continue; // this hop's
    else {
      if (name === 'origin') origin = value;
      fields.push(name, value);
    }
  }
  const stream = new GrpcWebStream(req.stream, mode, cors, origin);
  serveRouted(stream, fields, req.endStream, req.deps, req.obs, req.snapshot, target, routeId, upstreamPath, req.authority);
}

/**
 * The gRPC method a grpc-web request names: on a prefix route (`/grpc/web/*`) what the `*` matched when that is a
 * whole `Service/Method` (APISIX strips the prefix), else the path itself (an exact route, or a prefix that is part
 * of the method's path, as `/helloworld.Greeter/*`).
 */
function grpcPathOf(route: RouteConf, path: string): string {
  for (const uri of route.uris ?? (route.uri === undefined ? [] : [route.uri])) {
    if (!uri.endsWith('*')) continue;
    const prefix = uri.slice(0, -1);
    if (!path.startsWith(prefix)) continue;
    const rest = path.slice(prefix.length).replace(/^\/+/, '');
    const slash = rest.indexOf('/');
    if (slash > 0 && slash < rest.length - 1 && rest.indexOf('/', slash + 1) < 0) return `/${rest}`;
  }
  return path;
}

/** A plain HTTP answer with a text body (`close`: the connection closes after it, HTTP/1.1 only). */
export function answerHttp(req: WebRequest, status: number, body: string, close: boolean): void {
  answerFields(req, textAnswerFields(status, body, close && req.http1), body);
}

/** The header list of a text answer of `status` with `body`. */
export function textAnswerFields(status: number, body: string, close: boolean): string[] {
  const fields = [':status', String(status), 'content-type', 'text/plain; charset=utf-8', 'content-length', String(Buffer.byteLength(body))];
  if (close) fields.push('connection', 'close');
  return fields;
}

/** An answer from its header list and body; the observer records it with its HTTP status and no gRPC status. */
export function answerFields(req: WebRequest, fields: string[], body: string | Buffer): void {
  const obs = req.obs;
  if (obs !== undefined) req.deps.observer?.end(obs, Number(fields[1]), -1, '', true);
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  req.stream.sendHeaders(fields, bytes.length === 0);
  if (bytes.length > 0) req.stream.sendData(bytes, true);
}
