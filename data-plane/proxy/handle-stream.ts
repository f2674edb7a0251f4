/**
 * One downstream stream from the first header: check it is gRPC, pin the config snapshot, match a route, run its
 * plugins, pick a node for this call, and hand over to a ProxyCall (forward.ts) that owns the stream to its last
 * frame. Every early exit goes through respondError, which answers with a gRPC status.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { describe, NoHealthyNode, RouteNotFound, UnsupportedMediaType } from '../../shared/errors.ts';
import { isGrpcContentType } from './content-type.ts';
import { GrpcStatus } from '../../shared/grpc-status.ts';
import type { Logger } from '../../shared/logger.ts';
import type { Snapshots } from '../config/snapshots.ts';
import type { TLSSocket } from 'node:tls';
import type { SessionPool } from '../upstream/pool.ts';
import { hashKeyOf, type HashSource } from '../upstream/hash-key.ts';
import { HeaderObjectRequest } from '../plugins/header-object-request.ts';
import { runAccess, type ChainVerdict } from '../plugins/pipeline.ts';
import type { RouteTarget } from '../routing/route-target.ts';
import { ProxyCall } from './forward.ts';
import { respondError } from './respond-error.ts';

export interface ProxyDeps {
  snapshots: Snapshots;
  pool: SessionPool;
  log: Logger;
}

export function handleStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, deps: ProxyDeps): void {
  const contentType = headers['content-type'];
  if (!isGrpcContentType(contentType)) {
    // grpc-web and transcoding are the native engine's (web/); this engine answers them as it answers any non-gRPC request.
    return respondError(stream, new UnsupportedMediaType(contentType));
  }
  const snapshot = deps.snapshots.current(); // 1. pinned for the whole call
  const path = headers[':path'] ?? '';
  const match = snapshot.router.match({ path, method: headers[':method'] ?? '', authority: headers[':authority'] ?? headers.host });
  if (match === undefined) return respondError(stream, new RouteNotFound(path));
  const target = match.target;
  if (target.error !== undefined) return respondError(stream, target.error);
  // 2. the global rules' plugins and the route's, at the access phase (plugins/pipeline.ts): a refusal is a
  // trailers-only answer. A plugin that answers later (Redis) holds the stream, unread (flow control holds the
  // client), until it does.
  const plugins = target.plugins;
  const globals = snapshot.globalPlugins;
  if (plugins === undefined && globals.length === 0) return proceed(stream, headers, target, deps, undefined, 0);
  const host = headers[':authority'] ?? headers.host ?? '';
  const request = new HeaderObjectRequest(match.id, path, host, snapshot.consumers, headers, stream.session?.socket);
  const verdict = runAccess(globals, plugins, request);
  if (!(verdict instanceof Promise)) {
    if (request.releases !== undefined) finishOnClose(stream, request);
    return afterAccess(stream, headers, target, deps, request, verdict, 0);
  }
  const arrivedAt = Date.now(); // the call's deadline runs from here, through the wait
  stream.on('error', ignore); // a reset meanwhile is seen as `destroyed` below
  finishOnClose(stream, request); // releases registered before the verdict, or after it
  verdict
    .then((decided) => {
      if (!stream.destroyed) afterAccess(stream, headers, target, deps, request, decided, arrivedAt);
    })
    .catch((err: unknown) => {
      // A plugin or the proxy threw after the wait: INTERNAL and a log line, never an unhandled rejection.
      deps.log.error({ err: describe(err), route: match.id }, 'a call held by its access phase failed');
      respondError(stream, err);
      request.finished(GrpcStatus.INTERNAL);
    });
}

function ignore(): void {
  // See handleStream: errors of a held stream end it, which the verdict then finds.
}

/**
 * The plugins hear of the call's end (limit-conn's release) when its stream closes: the one event every ending
 * comes to on node:http2 (answered, refused, failed, reset by the client, its session gone). Only for a call whose
 * plugins asked, or may still ask; before the stream can have closed (this turn, or while the verdict is pending).
 */
function finishOnClose(stream: ServerHttp2Stream, request: HeaderObjectRequest): void {
  stream.once('close', () => request.finished());
}

/** `arrivedAt`: when a call held by its access phase arrived (0: not held). */
function afterAccess(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  target: RouteTarget,
  deps: ProxyDeps,
  request: HeaderObjectRequest,
  verdict: ChainVerdict,
  arrivedAt: number,
): void {
  if (verdict?.error !== undefined) {
    request.finished(verdict.error.grpcStatus); // the stream's 'close' would tell it too, without the status
    return respondError(stream, verdict.error, verdict.fields);
  }
  request.applyTo(headers);
  // traffic-split chose another upstream: the route's target with it (timeouts, retries and node come from it).
  const chosen = request.upstream;
  proceed(stream, headers, chosen === undefined ? target : { ...target, upstream: chosen }, deps, verdict?.fields, arrivedAt, request);
}

/** 3. a node per call, never per connection; 4. a ProxyCall: pooled session, then headers, bytes, trailers. */
function proceed(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  target: RouteTarget,
  deps: ProxyDeps,
  extraFields: string[] | undefined,
  arrivedAt: number,
  request?: HeaderObjectRequest,
): void {
  const hash = target.upstream.hash;
  const node = target.upstream.pick(undefined, hash === undefined ? undefined : hashKeyOf(hash.on, hash.key, hashSource(stream, headers)));
  if (node === undefined) {
    request?.finished(GrpcStatus.UNAVAILABLE);
    return respondError(stream, new NoHealthyNode(target.upstream.name), extraFields);
  }
  const call = new ProxyCall(stream, headers, target, node, deps);
  if (arrivedAt > 0) call.startedAt = arrivedAt;
  if (request?.releases !== undefined) call.plugins = request;
  call.responseFields = extraFields;
  call.start();
}

/** A `chash` key's sources on node:http2: the headers as a flat list, and the client's socket. */
function hashSource(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): HashSource {
  const fields: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value === 'string') fields.push(name, value);
    else if (Array.isArray(value)) fields.push(name, value.join(', '));
  }
  const socket = stream.session?.socket as (TLSSocket & { servername?: string | false }) | undefined;
  return {
    fields,
    remoteAddress: socket?.remoteAddress,
    remotePort: socket?.remotePort,
    localAddress: socket?.localAddress,
    servername: typeof socket?.servername === 'string' ? socket.servername : undefined,
  };
}
