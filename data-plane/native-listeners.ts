/**
 * The data plane's servers on the native engine (data-plane/http2/): h2c listeners (plain `net`, prior knowledge)
 * and TLS listeners (`node:tls`, ALPN `h2` only), every connection a ServerConnection, every request a Call
 * (proxy/call.ts). The behaviour users see is listeners.ts's, unchanged:
 *
 * - A client that does not speak HTTP/2 gets a readable HTTP/1.1 505 (h2c: its first bytes are not the preface;
 *   TLS: it offered no ALPN). One offering ALPN without `h2` fails the handshake (no_application_protocol).
 * - TLS certificates come from the current snapshot's SNI table per handshake; clients without SNI get the context
 *   `apisix.ssl.fallback_sni` names, else the default certificate, replaced whenever a new snapshot changes it.
 * - Connection caps, the header deadline and the idle timeout (limits/connection-guard.ts), and the stream limits
 *   of the engine itself (SETTINGS, keepalive_requests, premature resets), logged through one rate-limited log;
 *   over the memory watermark a new stream is answered RESOURCE_EXHAUSTED and never reaches an upstream.
 * - close(grace): stop accepting, GOAWAY(NO_ERROR) to every connection, destroy what is left after the grace.
 */
import net, { type Socket } from 'node:net';
import tls, { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { describe, NoHealthyNode, RouteNotFound, UnsupportedMediaType } from '../shared/errors.ts';
import type { Http2Limits } from '../shared/config-http2.ts';
import type { Logger } from '../shared/logger.ts';
import type { Snapshot, Snapshots } from './config/snapshots.ts';
import { ErrorCode, type ConnectionOptions, type Http2Stream, type StreamHandler } from './http2/connection.ts';
import { DEFAULT_MAX_FRAME_SIZE } from './http2/frame.ts';
import { ServerConnection, type ServerHooks, type ServerLimits } from './http2/server-connection.ts';
import { createConnectionGuard, type ConnectionGuard, type ConnectionWatch } from './limits/connection-guard.ts';
import { MemoryWatermark, Overloaded } from './limits/memory-watermark.ts';
import { RateLimitedLog } from './limits/rate-limited-log.ts';
import { listenOn } from './listen.ts';
import type { BoundAddress, ListenerOptions, Listeners } from './listeners.ts';
import { Call } from './proxy/call.ts';
import { gatewayStatusOf } from './proxy/respond-error.ts';
import type { CallObservation, Observer } from './observability/observer.ts';
import { errorResponseFields } from './proxy/respond-error.ts';
import type { ClientPool } from './upstream/client-pool.ts';
import { hashKeyOf, type HashSource } from './upstream/hash-key.ts';
import { fieldValue } from './http2/fields.ts';
import { HeaderListRequest } from './plugins/header-list-request.ts';
import type { BasePluginRequest } from './plugins/request.ts';
import { runAccess, type ChainVerdict } from './plugins/pipeline.ts';
import type { RouteTarget } from './routing/route-target.ts';
import { GrpcStatus } from '../shared/grpc-status.ts';
import { SESSION_WINDOW_BYTES } from './http2-settings.ts';

export interface NativeDeps {
  snapshots: Snapshots;
  pool: ClientPool;
  log: Logger;
  /** Metrics, access log, request ids, traces (observability/observer.ts); undefined when all are off. */
  observer?: Observer | undefined;
}

export type NativeListenerOptions = Omit<ListenerOptions, 'deps'> & { deps: NativeDeps };

const NOT_HTTP2_BODY = 'This port serves gRPC over HTTP/2 (h2c with prior knowledge, or TLS with ALPN h2). HTTP/1.1 is not supported.\n';
const NOT_HTTP2_RESPONSE =
  'HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: text/plain\r\nconnection: close\r\n' +
  `content-length: ${Buffer.byteLength(NOT_HTTP2_BODY)}\r\n\r\n${NOT_HTTP2_BODY}`;

/** What nginx logs for a client that went before the answer (as proxy/call.ts records it). */
const CLIENT_CLOSED_STATUS = 499;
const EMPTY = Buffer.alloc(0);

/** What the listener's connections share: the engine's options, the limits, the proxy's dependencies. */
class ListenerContext {
  readonly options: ConnectionOptions;
  readonly limits: ServerLimits;
  readonly deps: NativeDeps;
  readonly guard: ConnectionGuard;
  readonly notes: RateLimitedLog;
  readonly watermark: MemoryWatermark;
  readonly connections = new Set<ServerConnection>();
  /** Sockets accepted (refused ones included) and served as HTTP/2 connections, since start (nginx stub_status). */
  accepted = 0;
  handled = 0;
  draining = false;
  onEmpty: (() => void) | undefined;

  constructor(limits: Http2Limits, deps: NativeDeps, guard: ConnectionGuard, log: Logger) {
    this.options = {
      settings: {
        headerTableSize: 4096,
        enablePush: false,
        maxConcurrentStreams: limits.maxConcurrentStreams,
        initialWindowSize: limits.streamWindowBytes,
        maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
        maxHeaderListSize: limits.maxHeaderListSize,
      },
      connectionWindow: Math.max(SESSION_WINDOW_BYTES, limits.perConnectionBufferBytes),
    };
    this.limits = {
      keepaliveRequests: limits.keepaliveRequests,
      prematureResetTotalStreamCount: limits.prematureResetTotalStreamCount,
      prematureResetMinStreamLifetimeMs: limits.prematureResetMinStreamLifetimeMs,
    };
    this.deps = deps;
    this.guard = guard;
    this.notes = new RateLimitedLog(log.child({ module: 'limits' }));
    this.watermark = new MemoryWatermark(limits.overload, log.child({ module: 'overload' }));
  }

  /** A socket ready for HTTP/2 (plain after accept, TLS after a handshake that selected h2). */
  serve(socket: Socket): void {
    this.handled++;
    const link = new ClientLink(this);
    const conn = new ServerConnection(socket, this.options, this.limits, link, NOT_HTTP2_RESPONSE);
    link.watch = this.guard.watchConnection(socket, conn);
    this.connections.add(conn);
    if (this.draining) conn.shutdown();
  }

  closed(conn: ServerConnection): void {
    this.connections.delete(conn);
    if (this.draining && this.connections.size === 0) this.onEmpty?.();
  }

  close(): void {
    this.watermark.close();
    this.notes.close();
  }
}

/** One client connection's hooks: the stream reports go to its guard watch. */
class ClientLink implements ServerHooks {
  private readonly ctx: ListenerContext;
  watch: ConnectionWatch | undefined;

  constructor(ctx: ListenerContext) {
    this.ctx = ctx;
  }

  onRequest(stream: Http2Stream, fields: string[], endStream: boolean): void {
    const ctx = this.ctx;
    if (ctx.watermark.overloaded) {
      ctx.notes.note('memory_watermark', {}, 'new stream refused: over the memory watermark');
      return respond(stream, new Overloaded(), ctx.deps.observer?.begin(fieldOf(fields, ':method'), fieldOf(fields, ':path'), fieldOf(fields, ':authority'), '', 0, false, '', '', '', ''), ctx.deps.observer);
    }
    serveRequest(stream, fields, endStream, ctx.deps);
  }

  onConnectionClosed(conn: ServerConnection): void {
    this.ctx.closed(conn);
  }

  onStreamOpened(): void {
    this.watch?.streamOpened();
  }

  onStreamClosed(): void {
    this.watch?.streamClosed();
  }

  onLimit(conn: ServerConnection, kind: 'keepalive_requests' | 'premature_resets' | 'protocol_error', detail: Record<string, unknown>): void {
    const notes = this.ctx.notes;
    if (kind === 'keepalive_requests') notes.note(kind, detail, 'connection reached keepalive_requests: GOAWAY, the client reconnects');
    else if (kind === 'premature_resets') {
      notes.note(kind, { client: conn.socket.remoteAddress, ...detail }, 'client reset too many streams prematurely (rapid reset): GOAWAY ENHANCE_YOUR_CALM');
    } else notes.note(kind, detail, 'malformed request: RST_STREAM PROTOCOL_ERROR');
  }
}

/**
 * One request from its header list: check it is gRPC, pin the config snapshot, match a route, run its plugins, pick
 * a node for this call, and hand over to a Call that owns the stream to its last frame. Early exits answer with a
 * gRPC status.
 */
function serveRequest(stream: Http2Stream, fields: string[], endStream: boolean, deps: NativeDeps): void {
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
  if (contentType === undefined || !contentType.startsWith('application/grpc')) return respond(stream, new UnsupportedMediaType(contentType), obs, observer);
  const snapshot = deps.snapshots.current(); // 1. pinned for the whole call
  const match = snapshot.router.match({ path, method, authority: authority ?? host });
  if (match === undefined) return respond(stream, new RouteNotFound(path), obs, observer);
  if (obs !== undefined) observer?.route(obs, match);
  const target = match.target;
  if (target.error !== undefined) return respond(stream, target.error, obs, observer);
  // 2. the global rules' plugins and the route's, at the access phase (plugins/pipeline.ts): a refusal is a
  // trailers-only answer. A plugin that answers later (Redis) holds the stream until it does (HeldStream).
  const plugins = target.plugins;
  const globals = snapshot.globalPlugins;
  if (plugins === undefined && globals.length === 0) return proceed(stream, fields, target, deps, obs, undefined, endStream);
  const request = new HeaderListRequest(match.id, path, authority ?? host ?? '', snapshot.consumers, fields, stream.conn.socket);
  const verdict = runAccess(globals, plugins, request);
  if (!(verdict instanceof Promise)) return afterAccess(stream, fields, target, deps, obs, request, verdict, endStream);
  const held = new HeldStream(stream, fields, target, deps, obs, request, endStream);
  verdict.then((decided) => held.decided(decided)).catch((err: unknown) => held.failed(err));
}

/** The access phase's verdict applied: a refusal answered, or the call goes on with the plugins' header changes. */
function afterAccess(
  stream: Http2Stream,
  fields: string[],
  target: RouteTarget,
  deps: NativeDeps,
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
  stream: Http2Stream,
  upstreamFields: string[],
  target: RouteTarget,
  deps: NativeDeps,
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
function gone(stream: Http2Stream): boolean {
  return stream.removed;
}

/**
 * A stream whose access phase waits on a plugin that answers later: its DATA is kept, not consumed (so flow control
 * holds the client to one stream window), until the verdict, then handed to the Call in order or dropped with the
 * refusal. A client that resets meanwhile is recorded as cancelled, and the verdict finds nothing to do.
 */
class HeldStream implements StreamHandler {
  private readonly stream: Http2Stream;
  private readonly fields: string[];
  private readonly target: RouteTarget;
  private readonly deps: NativeDeps;
  private readonly obs: CallObservation | undefined;
  private readonly request: HeaderListRequest;
  private readonly endStream: boolean;
  /** DATA payloads and their END_STREAM flags, in order. */
  private readonly frames: (Buffer | boolean)[] = [];
  private bytes = 0;

  constructor(stream: Http2Stream, fields: string[], target: RouteTarget, deps: NativeDeps, obs: CallObservation | undefined, request: HeaderListRequest, endStream: boolean) {
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

  onHeaders(stream: Http2Stream, _fields: string[], endStream: boolean): void {
    // Request trailers: they end the request like END_STREAM (as Call.onHeaders has it).
    if (endStream) this.onData(stream, EMPTY, true, true);
  }

  onData(_stream: Http2Stream, data: Buffer, endStream: boolean, owned?: boolean): void {
    this.frames.push(owned === true ? data : Buffer.from(data), endStream);
    this.bytes += data.length;
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

function fieldOf(fields: string[], name: string): string {
  return fieldValue(fields, name) ?? '';
}

/** What a `chash` key may be read from: the header list and the client's connection. */
function hashSource(stream: Http2Stream, fields: string[]): HashSource {
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
function respond(stream: Http2Stream, err: unknown, obs?: CallObservation, observer?: Observer, extra?: readonly string[]): void {
  const fields = errorResponseFields(err);
  if (extra !== undefined) fields.push(...extra);
  if (obs !== undefined && observer !== undefined) {
    if (observer.requestIdInResponse && obs.requestId !== '') fields.push(observer.requestIdHeader as string, obs.requestId);
    const { httpStatus, grpcStatus, grpcMessage } = gatewayStatusOf(fields);
    observer.end(obs, httpStatus, grpcStatus, grpcMessage);
  }
  stream.sendHeaders(fields, true);
}

export async function startNativeListeners(options: NativeListenerOptions): Promise<Listeners> {
  const { deps } = options;
  const log = deps.log.child({ module: 'listeners' });
  const guard = createConnectionGuard(options.connections, log);
  const ctx = new ListenerContext(options.limits, deps, guard, log);
  const servers: (net.Server | tls.Server)[] = [];
  const sockets = new Set<Socket>();
  const addresses: BoundAddress[] = [];
  // One listener for every socket ('close' comes once; `this` is the socket): nothing allocated per connection.
  const untrack = function (this: Socket): void {
    sockets.delete(this);
  };
  const trackSocket = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('close', untrack);
  };
  const onServerError = (err: Error): void => {
    if (!guard.acceptError(err)) log.error({ err: err.message }, 'listener error');
  };

  try {
    for (const address of options.h2c) {
      const server = net.createServer({ noDelay: true }, (socket) => {
        ctx.accepted++;
        if (!guard.admit(socket)) return; // over a connection cap: closed before a byte is read
        trackSocket(socket);
        ctx.serve(socket);
      });
      servers.push(server);
      addresses.push({ kind: 'h2c', host: address.ip, port: await listenOn(server, address) });
      server.on('error', onServerError);
    }
    if (options.tls.length > 0) {
      const defaultContext = createSecureContext({ ...options.tlsPolicy, cert: options.defaultCert.cert, key: options.defaultCert.key });
      const fallback = (snapshot: Snapshot): { context: SecureContext; cert: string | string[]; key: string | string[]; id: string } => {
        const chosen = options.fallbackSni === undefined ? undefined : snapshot.sni.lookup(options.fallbackSni);
        if (chosen !== undefined) return { context: chosen.context, cert: chosen.cert, key: chosen.key, id: `${chosen.id}@${chosen.modRevision}` };
        return { context: defaultContext, cert: options.defaultCert.cert, key: options.defaultCert.key, id: 'default' };
      };
      let current = fallback(deps.snapshots.current());
      const tlsServers: tls.Server[] = [];
      for (const address of options.tls) {
        const server = tls.createServer({
          ...options.tlsPolicy,
          cert: current.cert,
          key: current.key,
          ALPNProtocols: ['h2'],
          noDelay: true,
          SNICallback: (servername, callback) => {
            const snapshot = deps.snapshots.current();
            callback(null, snapshot.sni.lookup(servername)?.context ?? fallback(snapshot).context);
          },
        });
        server.on('connection', (socket: Socket) => {
          ctx.accepted++;
          // No byte of the handshake has been read yet: a refusal costs no crypto.
          if (guard.admit(socket)) trackSocket(socket);
        });
        server.on('secureConnection', (socket: TLSSocket) => {
          if (socket.alpnProtocol !== 'h2') {
            // No ALPN at all (ALPN without h2 already failed the handshake): say what the port speaks.
            socket.end(NOT_HTTP2_RESPONSE);
            return;
          }
          ctx.serve(socket);
        });
        server.on('tlsClientError', (err: Error) => log.debug({ err: err.message }, 'TLS handshake failed'));
        servers.push(server);
        tlsServers.push(server);
        addresses.push({ kind: 'tls', host: address.ip, port: await listenOn(server, address) });
        server.on('error', onServerError);
      }
      deps.snapshots.onSwap((snapshot) => {
        const next = fallback(snapshot);
        if (next.id === current.id) return;
        current = next;
        for (const server of tlsServers) server.setSecureContext({ ...options.tlsPolicy, cert: next.cert, key: next.key });
        log.info({ certificate: next.id }, 'certificate for clients without SNI changed');
      });
    }
  } catch (err) {
    for (const server of servers) server.close();
    guard.close();
    ctx.close();
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    addresses,
    stats: () => {
      let writing = 0;
      for (const conn of ctx.connections) if (conn.activeStreams > 0) writing++;
      const active = ctx.connections.size;
      return { active, writing, waiting: active - writing, accepted: ctx.accepted, handled: ctx.handled };
    },
    close: (graceMs = 0) => {
      closing ??= closeAll(servers, ctx, sockets, graceMs).finally(() => {
        guard.close();
        ctx.close();
      });
      return closing;
    },
  };
}

async function closeAll(servers: (net.Server | tls.Server)[], ctx: ListenerContext, sockets: Set<Socket>, graceMs: number): Promise<void> {
  ctx.draining = true;
  for (const server of servers) server.close();
  const drained = new Promise<void>((resolve) => {
    ctx.onEmpty = resolve;
    if (ctx.connections.size === 0) resolve();
  });
  for (const conn of [...ctx.connections]) conn.shutdown(); // GOAWAY: in-flight streams may finish
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, graceMs);
  });
  await Promise.race([drained, deadline]);
  clearTimeout(timer);
  // Connections, and sockets that never became one (a TLS handshake that stalls), may not outlive the grace.
  for (const conn of [...ctx.connections]) conn.connectionError(ErrorCode.NO_ERROR, 'shutting down');
  for (const socket of sockets) socket.destroy();
}
