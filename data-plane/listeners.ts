/**
 * The data plane's servers: the only node:http2 server code. h2c listeners (prior-knowledge HTTP/2 over plain
 * TCP) and TLS listeners (ALPN `h2` only: gRPC needs HTTP/2) both hand every stream to handleStream.
 *
 * Clients that do not speak HTTP/2 get a readable answer instead of binary frames or a hang (a common way gRPC
 * "does not work at all" behind other proxies): on an h2c port the first bytes are
 * sniffed and anything but the HTTP/2 preface gets an HTTP/1.1 505 saying what the port speaks; on a TLS port a
 * client offering ALPN without `h2` fails the handshake (Node sends the no_application_protocol alert) and one
 * offering no ALPN at all gets the same 505.
 *
 * TLS certificates come from the current snapshot's SNI table, per handshake. Clients that send no SNI (a client
 * dialling an IP address) never reach SNICallback and get the server's default context, which follows
 * `apisix.ssl.fallback_sni` when it names a configured certificate and the default certificate otherwise; it is
 * replaced with setSecureContext() whenever a new snapshot changes that choice.
 */
import http2, { type Http2Server, type Http2SecureServer, type Http2Session, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import net, { type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Http2Limits } from '../shared/config-http2.ts';
import type { ListenAddress } from '../shared/config.ts';
import type { ConnectionLimits } from '../shared/config-connections.ts';
import type { Snapshot } from './config/snapshots.ts';
import { createConnectionGuard } from './limits/connection-guard.ts';
import { widenSessionWindow } from './http2-settings.ts';
import { createStreamLimits } from './limits/stream-limits.ts';
import type { ProxyDeps } from './proxy/handle-stream.ts';
import { listenOn } from './listen.ts';
import type { PemPair } from './tls/default-cert.ts';
import type { ListenerTlsOptions } from './tls/tls-policy.ts';

export interface ListenerOptions {
  h2c: readonly ListenAddress[];
  tls: readonly ListenAddress[];
  fallbackSni: string | undefined;
  defaultCert: PemPair;
  /** Versions and ciphers (data-plane/tls/tls-policy.ts): in the server options and every context it is given. */
  tlsPolicy: ListenerTlsOptions;
  /** HTTP/2 limits (data-plane/limits/): SETTINGS, per-connection guards, memory watermark. */
  limits: Http2Limits;
  deps: ProxyDeps;
  /** Caps, header deadline and idle timeout of client connections (limits/connection-guard.ts). */
  connections: ConnectionLimits;
}

export interface BoundAddress {
  kind: 'h2c' | 'tls';
  host: string;
  port: number;
}

export interface Listeners {
  readonly addresses: readonly BoundAddress[];
  /** Client connections now (with a stream open: writing; without: waiting) and since start (native engine only). */
  stats?(): ConnectionStats;
  /** Stops accepting, sends GOAWAY to every client session, destroys what is still open after `graceMs`. */
  close(graceMs?: number): Promise<void>;
}

export interface ConnectionStats {
  active: number;
  writing: number;
  waiting: number;
  accepted: number;
  handled: number;
}

export async function startListeners(options: ListenerOptions): Promise<Listeners> {
  const { deps } = options;
  const log = deps.log.child({ module: 'listeners' });
  const guard = createConnectionGuard(options.connections, log);
  const sessions = new Set<Http2Session>();
  const sockets = new Set<Socket>();
  const servers: (net.Server | Http2SecureServer)[] = [];
  const addresses: BoundAddress[] = [];
  const limits = createStreamLimits(options.limits, log);
  const onStream = (stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void => {
    stream.on('error', ignoreStreamError);
    limits.onStream(stream, headers, deps);
  };
  const draining = { on: false };
  const track = (session: ServerHttp2Session): void => {
    sessions.add(session);
    guard.watchSession(session);
    widenSessionWindow(session);
    limits.watchSession(session);
    // A connection accepted just as the drain began (or sniffed after it) gets its GOAWAY at once, like the others:
    // the client sends its calls elsewhere instead of having them cut when the grace ends.
    if (draining.on) session.close();
    session.on('close', () => sessions.delete(session));
    session.on('error', (err: Error) => log.debug({ err: err.message }, 'client session error'));
  };
  const trackSocket = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const onServerError = (err: Error): void => {
    if (!guard.acceptError(err)) log.error({ err: err.message }, 'listener error');
  };

  try {
    for (const address of options.h2c) {
      const h2 = http2.createServer({ settings: limits.settings });
      h2.on('stream', onStream);
      h2.on('session', track);
      const front = net.createServer((socket) => {
        if (!guard.admit(socket)) return; // over a connection cap: closed before a byte is read
        trackSocket(socket);
        sniffPreface(socket, h2);
      });
      servers.push(front);
      addresses.push({ kind: 'h2c', host: address.ip, port: await listenOn(front, address) });
      front.on('error', onServerError);
    }
    if (options.tls.length > 0) {
      const defaultContext = createSecureContext({ ...options.tlsPolicy, cert: options.defaultCert.cert, key: options.defaultCert.key });
      const fallback = (snapshot: Snapshot): { context: SecureContext; cert: string | string[]; key: string | string[]; id: string } => {
        const chosen = options.fallbackSni === undefined ? undefined : snapshot.sni.lookup(options.fallbackSni);
        if (chosen !== undefined) return { context: chosen.context, cert: chosen.cert, key: chosen.key, id: `${chosen.id}@${chosen.modRevision}` };
        return { context: defaultContext, cert: options.defaultCert.cert, key: options.defaultCert.key, id: 'default' };
      };
      let current = fallback(deps.snapshots.current());
      const tlsServers: Http2SecureServer[] = [];
      for (const address of options.tls) {
        const server = http2.createSecureServer({
          ...options.tlsPolicy,
          cert: current.cert,
          key: current.key,
          allowHTTP1: false,
          ALPNProtocols: ['h2'],
          settings: limits.settings,
          SNICallback: (servername, callback) => {
            const snapshot = deps.snapshots.current();
            callback(null, snapshot.sni.lookup(servername)?.context ?? fallback(snapshot).context);
          },
        });
        server.on('stream', onStream);
        server.on('session', track);
        server.on('connection', (socket: Socket) => {
          // Node's TLS wrapper exists by now, but no byte of the handshake has been read: a refusal costs no crypto.
          if (guard.admit(socket)) trackSocket(socket);
        });
        server.on('unknownProtocol', (socket: Duplex) => socket.end(NOT_HTTP2_RESPONSE));
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
    limits.close();
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    addresses,
    close: (graceMs = 0) => {
      draining.on = true;
      limits.close();
      closing ??= closeAll(servers, sessions, sockets, graceMs).finally(() => guard.close());
      return closing;
    },
  };
}

function ignoreStreamError(): void {
  // Client resets surface as 'error' on some codes; forward() reacts to 'close', and an unhandled 'error' would
  // crash the process.
}

const NOT_HTTP2_BODY = 'This port serves gRPC over HTTP/2 (h2c with prior knowledge, or TLS with ALPN h2). HTTP/1.1 is not supported.\n';
const NOT_HTTP2_RESPONSE =
  'HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: text/plain\r\nconnection: close\r\n' +
  `content-length: ${Buffer.byteLength(NOT_HTTP2_BODY)}\r\n\r\n${NOT_HTTP2_BODY}`;
/** RFC 9113 §3.4: the client connection preface starts with "PRI * HTTP/2.0". */
const PREFACE_START = Buffer.from('PRI ');

/** Hands a plaintext connection to the HTTP/2 server if it starts with the preface, else answers 505. */
function sniffPreface(socket: Socket, h2: Http2Server): void {
  socket.on('error', ignoreStreamError);
  socket.once('data', (chunk: Buffer) => {
    socket.pause();
    const n = Math.min(chunk.length, PREFACE_START.length);
    if (chunk.subarray(0, n).equals(PREFACE_START.subarray(0, n))) {
      socket.unshift(chunk);
      h2.emit('connection', socket);
    } else {
      socket.end(NOT_HTTP2_RESPONSE);
    }
  });
}


async function closeAll(
  servers: (net.Server | Http2SecureServer)[],
  sessions: Set<Http2Session>,
  sockets: Set<Socket>,
  graceMs: number,
): Promise<void> {
  const closed = Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  for (const session of sessions) session.close(); // GOAWAY: in-flight streams may finish
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      // Sessions, and sockets that never became one (a TLS handshake that stalls), may not outlive the grace.
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      resolve();
    }, graceMs);
  });
  await Promise.race([closed, deadline]);
  clearTimeout(timer);
}
