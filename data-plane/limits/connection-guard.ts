/**
 * The lifecycle of every client connection of one data-plane process (issue #11 case 7: idle and half-open
 * connections lived forever, 7,000 of them held with no cap): caps checked at accept, one deadline from accept to
 * the first request, and an idle timeout for sessions with no open stream. listeners.ts calls `admit` first thing
 * for every accepted socket, `watchSession` for every HTTP/2 session and `acceptError` for listener errors; the
 * logic lives here so that the listeners stay the node:http2 adapter.
 *
 * - Caps (`nginx_config.event.worker_connections`, `nginx_config.max_connections_per_ip`, per process): a socket
 *   over a cap is destroyed in the listener's first 'connection' callback, before a byte of TLS handshake or
 *   HTTP/2 preface is read, and counted into a rate-limited warning (rate-limited-log.ts), as nginx's limit_conn
 *   closes and logs. The global cap is also kept below the process's open-file limit, so that at the limit a dial
 *   is refused with a log line instead of timing out in the kernel's backlog while libuv silently accepts and
 *   closes (its EMFILE trick never reaches JavaScript).
 * - Header deadline (`nginx_config.http.client_header_timeout`): from accept to the first HEADERS frame, covering
 *   the TLS handshake (tls.Server's own `handshakeTimeout` is 120 s), the preface (RFC 9113 §3.4) and SETTINGS.
 *   A connection still without a request is closed; an HTTP/2 session gets GOAWAY first.
 * - Idle timeout (`nginx_config.http.keepalive_timeout`): a session whose last open stream closed that long ago
 *   gets GOAWAY(NO_ERROR) and is closed, as nginx does for HTTP/2; a session with an open stream (a long-lived
 *   watch) is never idle. grpc-js and grpc-go treat GOAWAY(NO_ERROR) as "reconnect for the next call".
 */
import { readFileSync } from 'node:fs';
import type { Http2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { ConnectionLimits } from '../../shared/config-connections.ts';
import type { Logger } from '../../shared/logger.ts';
import { limitedLog, type LimitedLog } from './limited-log.ts';

/** A connection of the native engine, as the guard closes it: GOAWAY(NO_ERROR), streams in flight finish. */
export interface GracefulClose {
  shutdown(): void;
}

/** What the native engine tells the guard about one connection's streams. */
export interface ConnectionWatch {
  streamOpened(): void;
  streamClosed(): void;
}

export interface ConnectionGuard {
  /** At accept, before any TLS or HTTP/2 work: false, with the socket destroyed, when a cap turns it away. */
  admit(socket: Socket): boolean;
  /** For every HTTP/2 session of an admitted connection. */
  watchSession(session: Http2Session): void;
  /**
   * For every connection of the native engine (`socket`: the one it reads, TLS or plain): undefined when the socket
   * was not admitted or went already. The engine reports its streams to what this returns.
   */
  watchConnection(socket: Socket, conn: GracefulClose): ConnectionWatch | undefined;
  /** A listener's 'error': EMFILE/ENFILE (out of file descriptors) becomes a rate-limited warning; true if handled. */
  acceptError(err: Error): boolean;
  /** Client connections open now. */
  readonly open: number;
  close(): void;
}

/** After GOAWAY, how long a session may take to close before its socket is destroyed (a client that never reads). */
const CLOSE_GRACE_MS = 1_000;
/**
 * File descriptors kept free of client connections: upstream sessions, etcd, log and config files. A worker's
 * upstream connections are pooled per node, so a few hundred cover even a large upstream set.
 */
const FD_RESERVE = 256;
/** Under a small limit (a container's 1024), the reserve is this fraction of it instead (1/4). */
const FD_RESERVE_SHARE = 4;

/** An IPv4 client of a dual-stack (`::`) listener appears as `::ffff:a.b.c.d`: one address, one count. */
const V4_MAPPED_PREFIX = '::ffff:';

export function createConnectionGuard(limits: ConnectionLimits, log: Logger): ConnectionGuard {
  const maxConnections = fdLimitCap(limits.maxConnections, log);
  const perIp = new Map<string, number>();
  /** Keyed by the connection's address 4-tuple: the one thing a TLS session's socket and its TCP socket share. */
  const byTuple = new Map<string, Tracked>();
  const refusedGlobal = limitedLog(log, 'client connection refused: worker_connections reached');
  const refusedPerIp = limitedLog(log, 'client connection refused: max_connections_per_ip reached');
  const headerTimeouts = limitedLog(log, 'client connection closed: no request within client_header_timeout');
  const outOfFds = limitedLog(log, 'client connections failing: out of file descriptors');
  let open = 0;

  const release = (tracked: Tracked): void => {
    open -= 1;
    const left = (perIp.get(tracked.ip) ?? 1) - 1;
    if (left > 0) perIp.set(tracked.ip, left);
    else perIp.delete(tracked.ip);
    // A 4-tuple reused by a newer connection (its accept seen before this 'close') stays with the newer one.
    if (byTuple.get(tracked.tuple) === tracked) byTuple.delete(tracked.tuple);
    tracked.dispose();
  };

  return {
    admit(socket) {
      const raw = socket.remoteAddress;
      if (raw === undefined) {
        socket.destroy(); // already gone: nothing to serve
        return false;
      }
      const ip = raw.startsWith(V4_MAPPED_PREFIX) ? raw.slice(V4_MAPPED_PREFIX.length) : raw;
      const fromIp = perIp.get(ip) ?? 0;
      if (open >= maxConnections) {
        socket.destroy();
        refusedGlobal.hit({ client: ip, open, worker_connections: maxConnections });
        return false;
      }
      if (limits.maxConnectionsPerIp > 0 && fromIp >= limits.maxConnectionsPerIp) {
        socket.destroy();
        refusedPerIp.hit({ client: ip, open: fromIp, max_connections_per_ip: limits.maxConnectionsPerIp });
        return false;
      }
      open += 1;
      perIp.set(ip, fromIp + 1);
      const tracked = new Tracked(socket, ip, tupleOf(socket), limits, headerTimeouts);
      byTuple.set(tracked.tuple, tracked);
      // on, not once: 'close' comes once, and once() would add a wrapper closure to every connection.
      socket.on('close', () => release(tracked));
      return true;
    },
    watchSession(session) {
      let tracked: Tracked | undefined;
      try {
        tracked = byTuple.get(tupleOf(session.socket));
      } catch {
        return; // node:http2 throws ERR_HTTP2_SOCKET_UNBOUND for a session already torn down: nothing to watch
      }
      tracked?.attach(session);
    },
    watchConnection(socket, conn) {
      const tracked = byTuple.get(tupleOf(socket));
      if (tracked === undefined || !tracked.attachNative(conn)) return undefined;
      return tracked;
    },
    acceptError(err) {
      const code = 'code' in err ? err.code : undefined;
      if (code !== 'EMFILE' && code !== 'ENFILE') return false;
      outOfFds.hit({ code, open, worker_connections: maxConnections });
      return true;
    },
    get open() {
      return open;
    },
    close() {
      for (const tracked of byTuple.values()) tracked.dispose();
      for (const logged of [refusedGlobal, refusedPerIp, headerTimeouts, outOfFds]) logged.close();
    },
  };
}

function tupleOf(socket: Socket): string {
  return `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}|${socket.localAddress ?? ''}|${socket.localPort ?? ''}`;
}

/** One admitted connection: its header deadline, then (once it is a session) its open streams and idle timer. */
class Tracked implements ConnectionWatch {
  private headerTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private session: Http2Session | undefined;
  private native: GracefulClose | undefined;
  private onStream: ((stream: { on(event: 'close', listener: () => void): unknown }) => void) | undefined;
  private openStreams = 0;
  private disposed = false;

  private readonly socket: Socket;
  readonly ip: string;
  readonly tuple: string;
  private readonly limits: ConnectionLimits;
  private readonly headerTimeouts: LimitedLog;

  constructor(socket: Socket, ip: string, tuple: string, limits: ConnectionLimits, headerTimeouts: LimitedLog) {
    this.socket = socket;
    this.ip = ip;
    this.tuple = tuple;
    this.limits = limits;
    this.headerTimeouts = headerTimeouts;
    this.headerTimer = setTimeout(headerTimedOut, limits.headerTimeoutMs, this);
    this.headerTimer.unref();
  }

  attach(session: Http2Session): void {
    if (this.disposed || this.session !== undefined) return;
    this.session = session;
    // Listeners made once per node:http2 connection, never per stream: the hot path gets no new closure. (The
    // native engine reports streams by calls: no closure per connection at all.)
    const onStreamClose = (): void => this.streamClosed();
    this.onStream = (stream): void => {
      this.streamOpened();
      // on, not once: 'close' comes once, and once() would wrap the listener in a new closure per stream.
      stream.on('close', onStreamClose);
    };
    session.on('stream', this.onStream);
  }

  attachNative(conn: GracefulClose): boolean {
    if (this.disposed || this.session !== undefined || this.native !== undefined) return false;
    this.native = conn;
    return true;
  }

  streamOpened(): void {
    if (this.headerTimer !== undefined) {
      clearTimeout(this.headerTimer);
      this.headerTimer = undefined;
    }
    this.openStreams += 1;
  }

  streamClosed(): void {
    this.openStreams -= 1;
    if (this.openStreams > 0 || this.disposed) return;
    // The idle period starts now; a timer that fires while a stream is open does nothing and is re-armed here.
    if (this.idleTimer === undefined) {
      this.idleTimer = setTimeout(idleTimedOut, this.limits.keepaliveTimeoutMs, this);
      this.idleTimer.unref();
    } else {
      this.idleTimer.refresh();
    }
  }

  private get attached(): boolean {
    return this.session !== undefined || this.native !== undefined;
  }

  private closeAttached(): void {
    if (this.native !== undefined) {
      this.native.shutdown();
      setTimeout(destroySocket, CLOSE_GRACE_MS, this.socket).unref();
    } else if (this.session !== undefined) {
      closeGracefully(this.session, this.socket);
    }
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.headerTimer);
    clearTimeout(this.idleTimer);
    if (this.onStream !== undefined) this.session?.off('stream', this.onStream);
  }

  headerTimeout(): void {
    this.headerTimer = undefined;
    if (this.disposed) return;
    this.headerTimeouts.hit({ client: this.ip, client_header_timeout_ms: this.limits.headerTimeoutMs, http2: this.attached });
    if (!this.attached) this.socket.destroy();
    else this.closeAttached();
  }

  idleTimeout(): void {
    if (this.disposed || this.openStreams > 0 || !this.attached) return;
    this.closeAttached();
  }
}

function headerTimedOut(tracked: Tracked): void {
  tracked.headerTimeout();
}

function idleTimedOut(tracked: Tracked): void {
  tracked.idleTimeout();
}

/**
 * GOAWAY(NO_ERROR) and a graceful close (RFC 9113 §6.8: the client learns no new stream will be served and opens
 * its next call elsewhere), then the TCP socket destroyed after CLOSE_GRACE_MS. node:http2's graceful close only
 * half-closes the socket and waits for the peer's FIN, which a client that never reads never sends: without the
 * destroy, each such client would keep its file descriptor forever.
 */
function closeGracefully(session: Http2Session, socket: Socket): void {
  if (!session.destroyed) session.close();
  setTimeout(destroySocket, CLOSE_GRACE_MS, socket).unref();
}

function destroySocket(socket: Socket): void {
  if (!socket.destroyed) socket.destroy();
}

/**
 * The global cap, lowered below the soft open-file limit when it would not fit (Linux: /proc/self/limits; Node
 * already raises the soft limit to the hard one at start), with a warning saying so. Elsewhere the cap stands.
 */
function fdLimitCap(configured: number, log: Logger): number {
  let text: string;
  try {
    text = readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return configured;
  }
  const cap = capForOpenFileLimit(configured, text);
  if (cap.limit !== undefined && cap.used < configured) {
    log.warn({ worker_connections: configured, open_file_limit: cap.limit, used: cap.used }, 'worker_connections lowered to fit the open-file limit');
  }
  return cap.used;
}

/** `limitsText` is /proc/self/limits; `limit` is undefined when it says "unlimited" or cannot be read. */
export function capForOpenFileLimit(configured: number, limitsText: string): { used: number; limit: number | undefined } {
  const soft = /^Max open files\s+(\d+)/m.exec(limitsText)?.[1];
  if (soft === undefined) return { used: configured, limit: undefined };
  const limit = Number(soft);
  const room = Math.max(1, limit - Math.min(FD_RESERVE, Math.floor(limit / FD_RESERVE_SHARE)));
  return { used: Math.min(configured, room), limit };
}
