/**
 * One request on the native engine, from its header list to the Call that owns it (listeners hand every request
 * here: HTTP/2 streams of the native engine, HTTP/1.1 exchanges of the routes that serve them): check it is gRPC,
 * pin the config snapshot, match a route, run its plugins, pick a node for this call, and hand over to a Call that
 * owns the stream to its last frame. Early exits answer with a gRPC status (respond()).
 *
 * A request that is not gRPC (HTTP/1.1, grpc-web, JSON) goes to web/serve-web.ts, which answers it or turns it into
 * a gRPC call on a wrapping Downstream and comes back through serveRouted(): plugins, limits, timeouts, metrics and
 * access logs apply to those calls as to any other.
 */
import type { Socket } from 'node:net';
import { describe, NoHealthyNode, RouteNotFound, type GatewayError } from '../../shared/errors.ts';
import { GrpcStatus } from '../../shared/grpc-status.ts';
import type { Logger } from '../../shared/logger.ts';
import type { Snapshot, Snapshots } from '../config/snapshots.ts';
import type { StreamHandler } from '../http2/connection.ts';
import type { CallObservation, Observer } from '../observability/observer.ts';
import { HeaderListRequest } from '../plugins/header-list-request.ts';
import { runAccess, type ChainVerdict } from '../plugins/pipeline.ts';
import type { BasePluginRequest } from '../plugins/request.ts';
import type { RouteTarget } from '../routing/route-target.ts';
import type { ClientPool } from '../upstream/client-pool.ts';
import { hashKeyOf, type HashSource } from '../upstream/hash-key.ts';
import { serveWeb } from '../web/serve-web.ts';
import { Call } from './call.ts';
import { isGrpcContentType } from './content-type.ts';
import type { Downstream } from './downstream.ts';
import { errorResponseFields, gatewayStatusOf } from './respond-error.ts';

export interface ServeDeps {
  snapshots: Snapshots;
  pool: ClientPool;
  log: Logger;
  /** Metrics, access log, request ids, traces (observability/observer.ts); undefined when all are off. */
  observer?: Observer | undefined;
}

/** What the observer records for a client that went before the answer (nginx's 499). */
const CLIENT_CLOSED_STATUS = 499;
const EMPTY = Buffer.alloc(0);
/**
 * One request from its header list. `http1`: it came as HTTP/1.1 (only the routes with grpc-web or grpc-transcode
 * serve those).
 */
export function serveRequest(stream: Downstream, fields: string[], endStream: boolean, deps: ServeDeps, http1 = false): void {
  let method = '';
  let path = '';
  let authority: string | undefined;
  let host: string | undefined;
  let contentType: string | undefined;
  const observer = deps.observer;
  const ridHeader = observer?.requestIdHeader;
  let requestId = '';
  let traceparent = '';
  let tracestate = '';
  let userAgent = '';
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    const value = fields[i + 1] as string;
    if (name === ':path') path = value;
    else if (name === ':method') method = value;
    else if (name === ':authority') authority = value;
    else if (name === 'content-type') contentType = value;
    else if (name === 'host') host = value;
    else if (observer !== undefined) {
      if (name === ridHeader) requestId = value;
      else if (name === 'traceparent') traceparent = value;
      else if (name === 'tracestate') tracestate = value;
      else if (name === 'user-agent') userAgent = value;
    }
  }
  let obs: CallObservation | undefined;
  if (observer !== undefined) {
    const socket = stream.conn.socket as Socket & { encrypted?: boolean };
    obs = observer.begin(method, path, authority ?? host ?? '', socket.remoteAddress ?? '', socket.remotePort ?? 0, socket.encrypted === true, requestId, traceparent, tracestate, userAgent);
  }
  const snapshot = deps.snapshots.current(); // 1. pinned for the whole call
  if (http1 || !isGrpcContentType(contentType)) {
    return serveWeb({ stream, fields, endStream, deps, obs, snapshot, method, path, authority: authority ?? host ?? '', contentType, http1 });
  }
  const match = snapshot.router.match({ path, method, authority: authority ?? host });
  if (match === undefined) return respond(stream, new RouteNotFound(path), obs, observer);
  if (obs !== undefined) observer?.route(obs, match);
  const target = match.target;
  if (target.error !== undefined) return respond(stream, target.error, obs, observer);
  serveRouted(stream, fields, endStream, deps, obs, snapshot, target, match.id, path, authority ?? host ?? '');
}

/**
 * A routed gRPC call (`fields`: its request header list as the upstream is to get it): 2. the global rules'
 * plugins and the route's, at the access phase (plugins/pipeline.ts), a refusal being a trailers-only answer; a
 * plugin that answers later (Redis) holds the stream until it does (HeldStream). Then proceed().
 */
export function serveRouted(
  stream: Downstream,
  fields: string[],
  endStream: boolean,
  deps: ServeDeps,
  obs: CallObservation | undefined,
  snapshot: Snapshot,
  target: RouteTarget,
  routeId: string,
  path: string,
  authority: string,
): void {
  const plugins = target.plugins;
  const globals = snapshot.globalPlugins;
  if (plugins === undefined && globals.length === 0) return proceed(stream, fields, target, deps, obs, undefined, endStream);
  const request = new HeaderListRequest(routeId, path, authority, snapshot.consumers, fields, stream.conn.socket);
  const verdict = runAccess(globals, plugins, request);
  if (!(verdict instanceof Promise)) return afterAccess(stream, fields, target, deps, obs, request, verdict, endStream);
  const held = new HeldStream(stream, fields, target, deps, obs, request, endStream);
  verdict.then((decided) => held.decided(decided)).catch((err: unknown) => held.failed(err));
}

/** The access phase's verdict applied: a refusal answered, or the call goes on with the plugins' header changes. */
function afterAccess(
  stream: Downstream,
  fields: string[],
  target: RouteTarget,
  deps: ServeDeps,
  obs: CallObservation | undefined,
  request: HeaderListRequest,
  verdict: ChainVerdict,
  endStream: boolean,
): void {
  if (obs !== undefined && request.consumer !== undefined) obs.consumerName = request.consumer.username;
  if (verdict?.error !== undefined) {
    respond(stream, verdict.error, obs, deps.observer, verdict.fields);
    request.finished(verdict.error.grpcStatus); // what a plugin before the one that refused holds (limit-conn's count) is released
    return;
  }
  // traffic-split chose another upstream: the route's target with it (timeouts, retries and node come from it).
  const chosen = request.upstream;
  const routed = chosen === undefined ? target : { ...target, upstream: chosen };
  proceed(stream, request.upstreamFields(fields), routed, deps, obs, verdict?.fields, endStream, request.releases === undefined ? undefined : request);
}

/**
 * 3. a node for this call (never per connection), 4. a Call: pooled connection, then headers, bytes, trailers.
 * `plugins`: the plugins' request when one of them waits for the call's end (limit-conn), which the Call tells.
 */
function proceed(
  stream: Downstream,
  upstreamFields: string[],
  target: RouteTarget,
  deps: ServeDeps,
  obs: CallObservation | undefined,
  extraFields: string[] | undefined,
  endStream: boolean,
  plugins?: BasePluginRequest,
): void {
  const upstream = target.upstream;
  const hash = upstream.hash;
  const hashKey = hash === undefined ? '' : hashKeyOf(hash.on, hash.key, hashSource(stream, upstreamFields));
  const node = upstream.pick(undefined, hashKey);
  if (node === undefined) {
    respond(stream, new NoHealthyNode(upstream.name), obs, deps.observer, extraFields);
    plugins?.finished(GrpcStatus.UNAVAILABLE);
    return;
  }
  const call = new Call(stream, upstreamFields, target, node, deps);
  call.hashKey = hashKey;
  call.obs = obs;
  call.responseFields = extraFields;
  if (plugins !== undefined) call.plugins = plugins;
  call.start(endStream);
}

/** Read through a call: afterAccess may answer or reset the stream, which TypeScript's narrowing does not see. */
function gone(stream: Downstream): boolean {
  return stream.removed;
}

/**
 * A stream whose access phase waits on a plugin that answers later: its DATA is kept, not consumed (so flow control
 * holds the client to one stream window), until the verdict, then handed to the Call in order or dropped with the
 * refusal. A client that resets meanwhile is recorded as cancelled, and the verdict finds nothing to do.
 */
class HeldStream implements StreamHandler<Downstream> {
  private readonly stream: Downstream;
  private readonly fields: string[];
  private readonly target: RouteTarget;
  private readonly deps: ServeDeps;
  private readonly obs: CallObservation | undefined;
  private readonly request: HeaderListRequest;
  private readonly endStream: boolean;
  /** DATA payloads and their END_STREAM flags, in order. */
  private readonly frames: (Buffer | boolean)[] = [];
  private bytes = 0;
  /** Answered before the verdict (its body was malformed). */
  private answered = false;

  constructor(stream: Downstream, fields: string[], target: RouteTarget, deps: ServeDeps, obs: CallObservation | undefined, request: HeaderListRequest, endStream: boolean) {
    this.stream = stream;
    this.fields = fields;
    this.target = target;
    this.deps = deps;
    this.obs = obs;
    this.request = request;
    this.endStream = endStream;
    stream.handler = this;
  }

  decided(verdict: ChainVerdict): void {
    const stream = this.stream;
    if (this.answered) return;
    if (stream.removed) {
      // Gone meanwhile: onReset recorded it and released what the plugins hold (a no-op here then), unless the
      // stream left without telling its handler.
      this.request.finished(GrpcStatus.CANCELLED);
      return;
    }
    afterAccess(stream, this.fields, this.target, this.deps, this.obs, this.request, verdict, this.endStream);
    const next = stream.handler;
    if (next === this || next === undefined || gone(stream)) {
      // Answered by the gateway (or gone): what the client sent is dropped, its window given back.
      if (this.bytes > 0) stream.consume(this.bytes); // a no-op once the stream is gone
      return;
    }
    const frames = this.frames;
    for (let i = 0; i < frames.length && !gone(stream) && stream.handler === next; i += 2) {
      next.onData(stream, frames[i] as Buffer, frames[i + 1] as boolean, true);
    }
  }

  /**
   * The verdict could not be applied (a plugin or the proxy threw after the wait): the call is answered INTERNAL
   * and logged, as a throw in the synchronous path would be; a rejection never reaches the process.
   */
  failed(err: unknown): void {
    this.deps.log.error({ err: describe(err), route: this.request.routeId }, 'a call held by its access phase failed');
    const stream = this.stream;
    if (!stream.removed && stream.handler === this) respond(stream, err, this.obs, this.deps.observer);
    this.request.finished(GrpcStatus.INTERNAL);
  }

  onHeaders(stream: Downstream, _fields: string[], endStream: boolean): void {
    // Request trailers: they end the request like END_STREAM (as Call.onHeaders has it).
    if (endStream) this.onData(stream, EMPTY, true, true);
  }

  onData(_stream: Downstream, data: Buffer, endStream: boolean, owned?: boolean): void {
    this.frames.push(owned === true ? data : Buffer.from(data), endStream);
    this.bytes += data.length;
  }

  onMalformed(stream: Downstream, err: GatewayError): void {
    // Refused now, as the verdict would find it: what the plugins hold is released (decided() then does nothing).
    this.frames.length = 0;
    this.answered = true;
    respond(stream, err, this.obs, this.deps.observer);
    this.request.finished(err.grpcStatus);
  }

  onReset(): void {
    this.frames.length = 0;
    // The call is over: what the plugins that ran hold is released now, not when the verdict comes.
    this.request.finished(GrpcStatus.CANCELLED);
    const obs = this.obs;
    if (obs !== undefined) this.deps.observer?.end(obs, CLIENT_CLOSED_STATUS, GrpcStatus.CANCELLED, 'client cancelled');
  }

  onSent(): void {
    // Nothing is sent before the verdict.
  }
}

/** What a `chash` key may be read from: the header list and the client's connection. */
function hashSource(stream: Downstream, fields: string[]): HashSource {
  const socket = stream.conn.socket as Socket & { servername?: string | false };
  return {
    fields,
    remoteAddress: socket.remoteAddress,
    remotePort: socket.remotePort,
    localAddress: socket.localAddress,
    servername: typeof socket.servername === 'string' ? socket.servername : undefined,
  };
}

/**
 * A trailers-only answer the gateway makes itself, with `extra` fields plugins added; the observer counts it with
 * the status sent and no node.
 */
export function respond(stream: Downstream, err: unknown, obs?: CallObservation, observer?: Observer, extra?: readonly string[]): void {
  const fields = errorResponseFields(err);
  if (extra !== undefined) fields.push(...extra);
  if (obs !== undefined && observer !== undefined && observer.requestIdInResponse && obs.requestId !== '') fields.push(observer.requestIdHeader as string, obs.requestId);
  stream.sendHeaders(fields, true);
  if (obs !== undefined && observer !== undefined) {
    // Recorded after the answer went: a wrapping stream (transcoding) tells the HTTP status it answered with.
    const { httpStatus, grpcStatus, grpcMessage } = gatewayStatusOf(fields);
    observer.end(obs, stream.answeredStatus ?? httpStatus, grpcStatus, grpcMessage);
  }
}

