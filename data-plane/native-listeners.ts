/**
 * The data plane's servers on the native engine (data-plane/http2/): h2c listeners (plain `net`, prior knowledge)
 * and TLS listeners (`node:tls`, ALPN `h2` or `http/1.1`), every connection a ServerConnection, every request
 * served by proxy/serve-request.ts (a Call for each gRPC call). The behaviour users see is listeners.ts's, plus:
 *
 * - A client that speaks HTTP/1 (h2c: its first bytes are not the preface; TLS: ALPN http/1.1, or none) is served
 *   by node:http through the engine (http1/http1-server.ts): routes with grpc-web or grpc-transcode answer it, any
 *   other request gets a readable HTTP/1.1 505 and the connection closes. One offering ALPN with neither `h2` nor
 *   `http/1.1` fails the handshake (no_application_protocol).
 * - TLS certificates come from the current snapshot's SNI table per handshake; clients without SNI get the context
 *   `apisix.ssl.fallback_sni` names, else the default certificate, replaced whenever a new snapshot changes it.
 * - Connection caps, the header deadline and the idle timeout (limits/connection-guard.ts), and the stream limits
 *   of the engine itself (SETTINGS, keepalive_requests, premature resets), logged through one rate-limited log;
 *   over the memory watermark a new stream is answered RESOURCE_EXHAUSTED and never reaches an upstream.
 * - close(grace): stop accepting, GOAWAY(NO_ERROR) to every connection, destroy what is left after the grace.
 */
import net, { type Socket } from 'node:net';
import tls, { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { NOT_HTTP2_BODY, textAnswerFields } from './web/serve-web.ts';
import type { Http2Limits } from '../shared/config-http2.ts';
import type { Logger } from '../shared/logger.ts';
import type { Snapshot } from './config/snapshots.ts';
import { ErrorCode, type ConnectionOptions, type Http2Stream } from './http2/connection.ts';
import { DEFAULT_MAX_FRAME_SIZE } from './http2/frame.ts';
import { fieldValue } from './http2/fields.ts';
import { ServerConnection, type Http1Takeover, type ServerHooks, type ServerLimits } from './http2/server-connection.ts';
import { Http1Server } from './http1/http1-server.ts';
import { createConnectionGuard, type ConnectionGuard, type ConnectionWatch } from './limits/connection-guard.ts';
import { MemoryWatermark, Overloaded } from './limits/memory-watermark.ts';
import { RateLimitedLog } from './limits/rate-limited-log.ts';
import { listenOn } from './listen.ts';
import type { BoundAddress, ListenerOptions, Listeners } from './listeners.ts';
import { respond, serveRequest, type ServeDeps } from './proxy/serve-request.ts';
import { SESSION_WINDOW_BYTES } from './http2-settings.ts';

export type NativeDeps = ServeDeps;

export type NativeListenerOptions = Omit<ListenerOptions, 'deps'> & { deps: NativeDeps };

const OVERLOADED_BODY = 'the gateway is over its memory watermark; retry later\n';
/** The largest HTTP/1.1 request head (node:http's limit is 16 KiB by default; the HTTP/2 header-list limit caps it). */
const MAX_HTTP1_HEADER_BYTES = 64 * 1024;
const NOT_HTTP2_RESPONSE =
  'HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: text/plain\r\nconnection: close\r\n' +
  `content-length: ${Buffer.byteLength(NOT_HTTP2_BODY)}\r\n\r\n${NOT_HTTP2_BODY}`;


/** What the listener's connections share: the engine's options, the limits, the proxy's dependencies. */
class ListenerContext {
  readonly options: ConnectionOptions;
  readonly limits: ServerLimits;
  readonly deps: NativeDeps;
  readonly guard: ConnectionGuard;
  readonly notes: RateLimitedLog;
  readonly watermark: MemoryWatermark;
  readonly connections = new Set<ServerConnection>();
  /** HTTP/1.1 connections (grpc-web and transcoding routes; a 505 for others): node:http, fed by the engine. */
  readonly http1: Http1Server;
  /** Sockets accepted (refused ones included) and served as HTTP/2 connections, since start (nginx stub_status). */
  accepted = 0;
  handled = 0;
  draining = false;
  onEmpty: (() => void) | undefined;

  constructor(limits: Http2Limits, deps: NativeDeps, guard: ConnectionGuard, log: Logger, bodyTimeoutMs: number) {
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
    const http1 = { maxHeaderBytes: Math.min(limits.maxHeaderListSize, MAX_HTTP1_HEADER_BYTES), keepaliveRequests: limits.keepaliveRequests, bodyTimeoutMs };
    this.http1 = new Http1Server(http1, (stream, fields) => {
      if (this.watermark.overloaded) {
        this.notes.note('memory_watermark', {}, 'new request refused: over the memory watermark');
        // An HTTP answer (grpc-web and REST clients read the status line): 503, the connection closed.
        stream.sendHeaders(textAnswerFields(503, OVERLOADED_BODY, true), false);
        stream.sendData(Buffer.from(OVERLOADED_BODY), true);
        return;
      }
      serveRequest(stream, fields, false, this.deps, true);
    });
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

  onHttp1(conn: ServerConnection): Http1Takeover {
    return this.ctx.http1.adopt(conn.socket, this.watch);
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

export async function startNativeListeners(options: NativeListenerOptions): Promise<Listeners> {
  const { deps } = options;
  const log = deps.log.child({ module: 'listeners' });
  const guard = createConnectionGuard(options.connections, log);
  const ctx = new ListenerContext(options.limits, deps, guard, log, options.connections.bodyTimeoutMs);
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
          // http/1.1 for the routes that serve browsers and REST clients (grpc-web, grpc-transcode): the connection
          // then reads as HTTP/1 and is served by ctx.http1 (a 505 for other routes).
          ALPNProtocols: ['h2', 'http/1.1'],
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
        // h2, http/1.1 or no ALPN at all: the first bytes tell HTTP/2's preface from an HTTP/1 request.
        server.on('secureConnection', (socket: TLSSocket) => ctx.serve(socket));
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

function fieldOf(fields: string[], name: string): string {
  return fieldValue(fields, name) ?? '';
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
