/**
 * Pooled upstream HTTP/2 sessions: the only node:http2 client code of the gateway. Calls to a node are multiplexed
 * as streams over a few shared sessions instead of costing a connection each (nginx's grpc_pass opens one per
 * in-flight call).
 *
 * - A session is handed out only after the upstream's first SETTINGS frame arrived: before it, its
 *   SETTINGS_MAX_CONCURRENT_STREAMS is unknown and a burst of calls would be refused above the limit.
 * - A node gets another session when every session it has is at the upstream's stream limit (up to
 *   keepalive_pool.size, default 8; past that nghttp2 queues the streams until one finishes).
 * - A session that receives GOAWAY or closes leaves the pool at once: new calls open a fresh one while the old
 *   session's streams finish. Streams the upstream refused (REFUSED_STREAM, or above GOAWAY's last-stream-id) are
 *   retried by the caller (see proxy/forward.ts).
 * - Sessions carrying streams are checked with HTTP/2 PING every KEEPALIVE_TIME_MS and destroyed when the ack does
 *   not come within PING_TIMEOUT_MS, so a silently dead path fails its calls instead of hanging them. Sessions
 *   without streams are never pinged: grpc-go servers answer pings without active streams, or more often than
 *   every 5 minutes, with GOAWAY ENHANCE_YOUR_CALM "too_many_pings" (their default keepalive enforcement policy).
 *   Instead a session with no streams for keepalive_pool.idle_timeout (default 60 s, APISIX's) is closed, so
 *   an idle connection is never trusted for long.
 * - `grpc` nodes are dialled as h2c with prior knowledge, `grpcs` over TLS with ALPN `h2`, presenting the upstream's
 *   client certificate for mTLS if it has one; the node's certificate is verified only with `tls.verify: true`
 *   (APISIX's default: its own tests proxy to self-signed backends).
 */
import http2, {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type OutgoingHttpHeaders,
  type SecureClientSessionOptions,
  type Settings,
} from 'node:http2';
import type { Socket } from 'node:net';
import { upstreamSettings, widenSessionWindow } from '../http2-settings.ts';
import { clampDelay } from '../timers.ts';
import { UpstreamConnectError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import type { UpstreamNode } from './upstream.ts';
import { UPSTREAM_MIN_VERSION, type UpstreamTlsDefaults } from '../tls/tls-policy.ts';

/** How often the pool looks at its sessions (idle closing, keepalive). */
export const CHECK_INTERVAL_MS = 10_000;
/** gRPC's keepalive guidance: servers by default reject clients that ping more often than every 5 minutes. */
export const KEEPALIVE_TIME_MS = 300_000;
export const PING_TIMEOUT_MS = 20_000;
/** What RFC 9113 §6.5.2 lets a peer assume until SETTINGS say otherwise is "unlimited"; nghttp2 reports 2^32-1. */
const UNLIMITED_STREAMS = 0xffffffff;

/** One pooled session and its load. */
export class PooledSession {
  readonly session: ClientHttp2Session;
  readonly node: UpstreamNode;
  active = 0;
  served = 0;
  ready = false;
  draining = false;
  lastUsed = Date.now();
  lastPing = Date.now();
  /** The last-stream-id of a GOAWAY the upstream sent: streams above it were never processed (RFC 9113 §6.8). */
  goawayLastStreamId: number | undefined;
  private readonly onStreamClose = (): void => {
    this.active--;
    this.lastUsed = Date.now();
  };

  constructor(session: ClientHttp2Session, node: UpstreamNode) {
    this.session = session;
    this.node = node;
  }

  /**
   * Whether the upstream never processed this stream: it was not sent yet (no id), or its id is above the last-stream-id
   * of a GOAWAY. Such a stream is safe to retry whatever code Node closed it with (REFUSED_STREAM, or CANCEL when the
   * session went away first, as newer Node versions do).
   */
  unprocessed(stream: { readonly id?: number | undefined }): boolean {
    if (stream.id === undefined) return true;
    return this.goawayLastStreamId !== undefined && stream.id > this.goawayLastStreamId;
  }

  get usable(): boolean {
    return this.ready && !this.draining && !this.session.closed && !this.session.destroyed;
  }

  get full(): boolean {
    return this.active >= (this.session.remoteSettings.maxConcurrentStreams ?? UNLIMITED_STREAMS);
  }

  /** Opens a stream and counts it against this session until it closes. Throws like session.request(). */
  request(headers: OutgoingHttpHeaders): ClientHttp2Stream {
    const stream = this.session.request(headers, OPEN_STREAM);
    this.active++;
    // keepalive_pool.requests: a session that served its share takes no new streams and closes when idle.
    if (++this.served >= this.node.pool.maxStreamsPerSession) this.draining = true;
    this.lastUsed = Date.now();
    stream.on('close', this.onStreamClose); // 'close' comes once: on() spares once()'s wrapper per stream
    return stream;
  }
}

/** request() copies its options: one shared object. */
const OPEN_STREAM = { endStream: false } as const;

interface NodeSessions {
  sessions: PooledSession[];
  /** A dial in progress, shared by the calls that arrive while it connects. */
  dialing: Promise<PooledSession> | undefined;
}

export class SessionPool {
  private readonly nodes = new Map<string, NodeSessions>();
  private readonly log: Logger;
  private readonly keepalive: NodeJS.Timeout;
  private closed = false;
  /** SETTINGS of every session dialled (data-plane/http2-settings.ts: the stream window follows the client budget). */
  private readonly settings: Settings;

  /** The CA bundle for `tls.verify: true` (`apisix.ssl.ssl_trusted_certificate`, tls/tls-policy.ts). */
  private readonly tls: UpstreamTlsDefaults;

  constructor(log: Logger, settings: Settings = upstreamSettings(), tls: UpstreamTlsDefaults = { ca: undefined }) {
    this.log = log.child({ module: 'pool' });
    this.settings = settings;
    this.tls = tls;
    this.keepalive = setInterval(() => this.checkSessions(), CHECK_INTERVAL_MS);
    this.keepalive.unref();
  }

  /** A usable session with room for one more stream, without waiting; undefined when one must be dialled. */
  ready(node: UpstreamNode): PooledSession | undefined {
    const entry = this.nodes.get(node.key);
    if (entry === undefined) return undefined;
    let fallback: PooledSession | undefined;
    for (const pooled of entry.sessions) {
      if (!pooled.usable) continue;
      if (!pooled.full) return pooled;
      if (fallback === undefined || pooled.active < fallback.active) fallback = pooled;
    }
    // Every session is at the upstream's limit: dial another unless the node has its share, else queue on the
    // least loaded one (nghttp2 holds the stream until the upstream has room).
    if (fallback !== undefined && (entry.sessions.length >= node.pool.maxSessions || entry.dialing !== undefined)) return fallback;
    return undefined;
  }

  /** Resolves with a usable session for the node, dialling one if needed, within `connectTimeoutMs`. */
  acquire(node: UpstreamNode, connectTimeoutMs: number): Promise<PooledSession> {
    const existing = this.ready(node);
    if (existing !== undefined) return Promise.resolve(existing);
    if (this.closed) return Promise.reject(new UpstreamConnectError(node.key, new Error('gateway is shutting down')));
    let entry = this.nodes.get(node.key);
    if (entry === undefined) {
      entry = { sessions: [], dialing: undefined };
      this.nodes.set(node.key, entry);
    }
    if (entry.dialing !== undefined) return entry.dialing;
    let dialing: Promise<PooledSession>;
    try {
      dialing = this.dial(node, entry, connectTimeoutMs);
    } catch (err) {
      // http2.connect() throws synchronously on what it cannot even start (a TLS key or CA it cannot load, an
      // address no URL can hold): that is a failed connect for this call, never an exception in the stream handler.
      return Promise.reject(new UpstreamConnectError(node.key, err));
    }
    entry.dialing = dialing;
    const clear = (): void => {
      if (entry.dialing === dialing) entry.dialing = undefined;
    };
    dialing.then(clear, clear);
    return dialing;
  }

  /** Forgets a session whose stream was refused or failed oddly, so the next call does not pick it again. */
  retire(pooled: PooledSession): void {
    pooled.draining = true;
    this.remove(pooled);
  }

  private dial(node: UpstreamNode, entry: NodeSessions, connectTimeoutMs: number): Promise<PooledSession> {
    const url = `${node.scheme === 'grpcs' ? 'https' : 'http'}://${node.host}:${node.port}`;
    const options: SecureClientSessionOptions = { settings: this.settings };
    if (node.tls !== undefined) {
      options.ALPNProtocols = ['h2'];
      options.rejectUnauthorized = node.tls.verify;
      options.minVersion = UPSTREAM_MIN_VERSION; // ciphers: Node's client defaults (tls/tls-policy.ts says why)
      if (node.tls.verify && this.tls.ca !== undefined) options.ca = this.tls.ca; // replaces the root store
      if (node.tls.clientCert !== undefined) {
        options.cert = node.tls.clientCert.cert;
        options.key = node.tls.clientCert.key;
      }
    }
    const session = http2.connect(url, options);
    session.once('connect', () => widenSessionWindow(session));
    const pooled = new PooledSession(session, node);
    entry.sessions.push(pooled);
    session.on('goaway', (code: number, lastStreamID: number) => {
      this.log.info({ node: node.key, code, lastStreamID }, 'upstream session received GOAWAY');
      pooled.goawayLastStreamId = Math.min(lastStreamID, pooled.goawayLastStreamId ?? lastStreamID);
      pooled.draining = true;
      this.remove(pooled);
    });
    session.on('close', () => {
      this.log.debug({ node: node.key }, 'upstream session closed');
      this.remove(pooled);
    });
    session.on('error', (err: Error) => {
      this.log.warn({ node: node.key, err: err.message }, 'upstream session error');
      this.remove(pooled);
    });
    const ready = new Promise<PooledSession>((resolve, reject) => {
      // Clamped (timers.ts): an enormous timeout.connect must not become Node's 1 ms and tear every dial down.
      const timer = setTimeout(() => {
        const err = new Error(`connect timed out after ${connectTimeoutMs} ms`);
        session.destroy(err);
        this.remove(pooled);
        reject(new UpstreamConnectError(node.key, err)); // settle even if the destroyed session stays silent
      }, clampDelay(connectTimeoutMs));
      const fail = (err: Error): void => {
        clearTimeout(timer);
        reject(new UpstreamConnectError(node.key, err));
      };
      session.once('remoteSettings', () => {
        clearTimeout(timer);
        pooled.ready = true;
        this.log.debug({ node: node.key, maxStreams: session.remoteSettings.maxConcurrentStreams }, 'upstream session opened');
        resolve(pooled);
      });
      session.once('error', fail);
      session.once('close', () => fail(new Error('connection closed')));
      // A TLS 1.3 peer that rejects our client certificate does so after the handshake seemed complete: Node then
      // destroys the session without emitting 'error' or 'close' on it, so the socket's own events are watched.
      // 'connect' can still come after the session was destroyed (a connect timeout racing the handshake): its
      // socket is then gone (undefined), and the destroy already settled the dial.
      session.once('connect', () => {
        const socket = session.socket as Socket | undefined; // @types/node says always a Socket
        if (socket === undefined || session.destroyed || socket.destroyed) {
          this.remove(pooled);
          fail(new Error('connection closed'));
          return;
        }
        socket.once('error', (err: Error) => {
          this.remove(pooled);
          fail(err);
        });
        socket.once('close', () => {
          this.remove(pooled);
          fail(new Error('connection closed'));
        });
      });
    });
    ready.catch(() => undefined); // callers get the rejection; this only stops an unhandled-rejection warning
    return ready;
  }

  private remove(pooled: PooledSession): void {
    const entry = this.nodes.get(pooled.node.key);
    if (entry === undefined) return;
    const index = entry.sessions.indexOf(pooled);
    if (index >= 0) entry.sessions.splice(index, 1);
    if (entry.sessions.length === 0 && entry.dialing === undefined) this.nodes.delete(pooled.node.key);
  }

  /** Idle closing and keepalive PINGs, every CHECK_INTERVAL_MS. */
  private checkSessions(): void {
    const now = Date.now();
    for (const entry of this.nodes.values()) {
      for (const pooled of [...entry.sessions]) {
        if (pooled.draining && pooled.active === 0 && pooled.ready) {
          this.retire(pooled);
          pooled.session.close();
          continue;
        }
        if (pooled.session.destroyed) {
          this.remove(pooled);
          continue;
        }
        if (!pooled.usable) continue;
        if (pooled.active === 0 && now - pooled.lastUsed >= pooled.node.pool.idleTimeoutMs) {
          this.log.debug({ node: pooled.node.key }, 'closing idle upstream session');
          this.retire(pooled);
          pooled.session.close();
          continue;
        }
        if (pooled.active > 0 && now - pooled.lastPing >= KEEPALIVE_TIME_MS) this.ping(pooled);
      }
    }
  }

  private ping(pooled: PooledSession): void {
    const { session } = pooled;
    pooled.lastPing = Date.now();
    const timer = setTimeout(() => {
      this.log.warn({ node: pooled.node.key }, 'upstream session did not answer PING; closing it');
      session.destroy();
    }, PING_TIMEOUT_MS);
    timer.unref();
    let sent = false;
    try {
      sent = session.ping((err) => {
        clearTimeout(timer);
        if (err !== null && !session.destroyed) session.destroy();
      });
    } catch {
      // ping() throws on a session that closed since the check: nothing to keep alive
    }
    if (!sent) clearTimeout(timer);
  }

  /** Gracefully closes sessions to nodes that no config references any more: their streams finish first. */
  retain(liveKeys: ReadonlySet<string>): void {
    for (const [key, entry] of this.nodes) {
      if (liveKeys.has(key)) continue;
      // A session still connecting may be awaited by a call pinned to the old snapshot: it stays (idle closing
      // retires it once that call is done); connected ones drain now.
      for (const pooled of entry.sessions.filter((p) => p.ready)) {
        this.log.info({ node: key }, 'draining session of a removed upstream node');
        this.retire(pooled);
        pooled.session.close();
      }
    }
  }

  /** Closes every session; streams still open after `graceMs` are destroyed. Idempotent. */
  async close(graceMs = 0): Promise<void> {
    this.closed = true;
    clearInterval(this.keepalive);
    const sessions = [...this.nodes.values()].flatMap((e) => e.sessions.map((p) => p.session));
    this.nodes.clear();
    await Promise.all(
      sessions.map(
        (session) =>
          new Promise<void>((resolve) => {
            if (session.destroyed) return resolve();
            const timer = setTimeout(() => {
              // Node does not always emit 'close' for a session destroyed while its socket is still settling.
              session.destroy();
              resolve();
            }, clampDelay(graceMs));
            session.once('close', () => {
              clearTimeout(timer);
              resolve();
            });
            session.close();
          }),
      ),
    );
  }
}
