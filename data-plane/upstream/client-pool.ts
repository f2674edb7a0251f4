/**
 * Upstream connections of the native engine (data-plane/http2/client-connection.ts), pooled per node: the same
 * rules as the node:http2 pool (pool.ts), on the engine's own connections.
 *
 * - A call takes a ready connection with room under the server's SETTINGS_MAX_CONCURRENT_STREAMS; when every one is
 *   full it dials another until the node has `keepalive_pool.size`, then queues on the least loaded one (the
 *   connection opens the stream when one closes). Dials are shared by the calls that arrive while one is under way.
 * - `grpc` nodes are dialled as h2c with prior knowledge, `grpcs` over TLS with ALPN `h2` (a server that does not
 *   select h2 is a failed connect), with the upstream's client certificate, and verification per `tls.verify`
 *   against `apisix.ssl.ssl_trusted_certificate` when set.
 * - GOAWAY or a close takes a connection out of the pool at once; its streams finish or end as described in
 *   client-connection.ts. `keepalive_pool.requests` retires a connection after that many streams.
 * - Every CHECK_INTERVAL_MS: connections with streams are PINGed every KEEPALIVE_TIME_MS and destroyed when the
 *   answer takes PING_TIMEOUT_MS; connections idle for `keepalive_pool.idle_timeout` are closed (never pinged while
 *   idle: grpc-go servers answer pings without streams with GOAWAY too_many_pings).
 */
import type net from 'node:net';
import type { Http2Limits } from '../../shared/config-http2.ts';
import { UpstreamConnectError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import { ClientConnection, type ClientHooks } from '../http2/client-connection.ts';
import type { ConnectionOptions } from '../http2/connection.ts';
import { DEFAULT_MAX_FRAME_SIZE } from '../http2/frame.ts';
import { clampDelay } from '../timers.ts';
import type { UpstreamTlsDefaults } from '../tls/tls-policy.ts';
import { dialUpstream } from './dial.ts';
import { CHECK_INTERVAL_MS, KEEPALIVE_TIME_MS, PING_TIMEOUT_MS } from './pool.ts';
import type { UpstreamNode } from './upstream.ts';

/** The upstream connections' receive window: many calls share one connection. */
const CONNECTION_WINDOW = 16 * 1024 * 1024;

interface NodeEntry {
  conns: ClientConnection[];
  dialing: Promise<ClientConnection> | undefined;
}

interface DialState {
  node: UpstreamNode;
  resolve: (conn: ClientConnection) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
}

export class ClientPool implements ClientHooks {
  private readonly log: Logger;
  private readonly options: ConnectionOptions;
  private readonly tls: UpstreamTlsDefaults;
  private readonly entries = new Map<string, NodeEntry>();
  private readonly nodeOf = new Map<ClientConnection, UpstreamNode>();
  private readonly dials = new Map<ClientConnection, DialState>();
  private readonly draining = new Set<ClientConnection>();
  private readonly lastUsed = new Map<ClientConnection, number>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(log: Logger, limits: Http2Limits, tlsDefaults: UpstreamTlsDefaults) {
    this.log = log.child({ module: 'pool' });
    this.tls = tlsDefaults;
    this.options = {
      settings: {
        headerTableSize: 4096,
        enablePush: false,
        maxConcurrentStreams: Number.POSITIVE_INFINITY,
        initialWindowSize: limits.streamWindowBytes,
        maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
        maxHeaderListSize: Math.max(limits.maxHeaderListSize, 64 * 1024),
      },
      connectionWindow: CONNECTION_WINDOW,
    };
    this.timer = setInterval(() => this.check(), CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  /** A connection that can take a stream now, without waiting; undefined when one must be dialled. */
  ready(node: UpstreamNode): ClientConnection | undefined {
    const entry = this.entries.get(node.key);
    if (entry === undefined) return undefined;
    let least: ClientConnection | undefined;
    for (const conn of entry.conns) {
      if (!conn.usable || this.draining.has(conn)) continue;
      if (conn.hasRoom) return conn;
      if (least === undefined || conn.active < least.active) least = conn;
    }
    if (least !== undefined && (entry.conns.length >= node.pool.maxSessions || entry.dialing !== undefined)) return least;
    return undefined;
  }

  acquire(node: UpstreamNode, connectTimeoutMs: number): Promise<ClientConnection> {
    const existing = this.ready(node);
    if (existing !== undefined) return Promise.resolve(existing);
    if (this.closed) return Promise.reject(new UpstreamConnectError(node.key, new Error('gateway is shutting down')));
    let entry = this.entries.get(node.key);
    if (entry === undefined) {
      entry = { conns: [], dialing: undefined };
      this.entries.set(node.key, entry);
    }
    if (entry.dialing !== undefined) return entry.dialing;
    const dialing = this.dial(node, entry, connectTimeoutMs);
    entry.dialing = dialing;
    const clear = (): void => {
      if (entry.dialing === dialing) entry.dialing = undefined;
    };
    dialing.then(clear, clear);
    return dialing;
  }

  /** Counts a stream opened on `conn` (keepalive_pool.requests). */
  opened(conn: ClientConnection): void {
    const node = this.nodeOf.get(conn);
    if (node !== undefined && conn.served >= node.pool.maxStreamsPerSession) this.retire(conn);
  }

  /** Takes a connection out of the pool; it closes once its streams are done. */
  retire(conn: ClientConnection): void {
    this.draining.add(conn);
    this.remove(conn);
    conn.close();
  }

  private dial(node: UpstreamNode, entry: NodeEntry, connectTimeoutMs: number): Promise<ClientConnection> {
    return new Promise<ClientConnection>((resolve, reject) => {
      let socket: net.Socket;
      try {
        socket = dialUpstream(node.host, node.port, node.tls === undefined ? undefined : { ...node.tls, ca: this.tls.ca });
      } catch (err) {
        reject(new UpstreamConnectError(node.key, err));
        return;
      }
      socket.setNoDelay(true);
      const conn = new ClientConnection(socket, this.options, this);
      entry.conns.push(conn);
      this.nodeOf.set(conn, node);
      const timer = setTimeout(() => {
        const state = this.dials.get(conn);
        if (state === undefined) return;
        this.dials.delete(conn);
        conn.destroy(new Error(`connect timed out after ${connectTimeoutMs} ms`));
        state.reject(new UpstreamConnectError(node.key, new Error(`connect timed out after ${connectTimeoutMs} ms`)));
      }, clampDelay(connectTimeoutMs));
      this.dials.set(conn, { node, resolve, reject, timer });
    });
  }

  // ---- ClientHooks ----------------------------------------------------------------------------------------------

  onReady(conn: ClientConnection): void {
    const state = this.dials.get(conn);
    if (state === undefined) return;
    this.dials.delete(conn);
    clearTimeout(state.timer);
    this.lastUsed.set(conn, Date.now());
    state.resolve(conn);
  }

  onGoaway(conn: ClientConnection, lastStreamId: number, code: number): void {
    const node = this.nodeOf.get(conn);
    this.log.info({ node: node?.key, code, lastStreamID: lastStreamId }, 'upstream session received GOAWAY');
    this.remove(conn);
  }

  onStreamClosed(conn: ClientConnection): void {
    this.lastUsed.set(conn, Date.now());
  }

  onClosed(conn: ClientConnection, err?: Error): void {
    const state = this.dials.get(conn);
    const node = this.nodeOf.get(conn);
    if (state !== undefined) {
      this.dials.delete(conn);
      clearTimeout(state.timer);
      state.reject(new UpstreamConnectError(state.node.key, err ?? new Error('connection closed')));
    } else if (err !== undefined) {
      this.log.warn({ node: node?.key, err: err.message }, 'upstream session error');
    }
    this.remove(conn);
    this.nodeOf.delete(conn);
    this.draining.delete(conn);
    this.lastUsed.delete(conn);
  }

  private remove(conn: ClientConnection): void {
    const node = this.nodeOf.get(conn);
    if (node === undefined) return;
    const entry = this.entries.get(node.key);
    if (entry === undefined) return;
    const index = entry.conns.indexOf(conn);
    if (index >= 0) entry.conns.splice(index, 1);
    if (entry.conns.length === 0 && entry.dialing === undefined) this.entries.delete(node.key);
  }

  private check(): void {
    const now = Date.now();
    for (const [conn, node] of this.nodeOf) {
      if (conn.closed) continue;
      if (conn.pingSentAt !== 0 && now - conn.pingSentAt >= PING_TIMEOUT_MS) {
        this.log.warn({ node: node.key }, 'upstream session did not answer PING; closing it');
        conn.destroy(new Error('PING timeout'));
        continue;
      }
      if (!conn.ready) continue;
      if (conn.active === 0) {
        if (this.draining.has(conn)) {
          conn.close();
        } else if (now - (this.lastUsed.get(conn) ?? now) >= node.pool.idleTimeoutMs) {
          this.log.debug({ node: node.key }, 'closing idle upstream session');
          this.retire(conn);
        }
      } else if (now - Math.max(conn.lastActivity, this.lastUsed.get(conn) ?? 0) >= KEEPALIVE_TIME_MS) {
        conn.ping();
      }
    }
  }

  /** Connections to nodes no config references any more drain; their streams finish first. */
  retain(liveKeys: ReadonlySet<string>): void {
    for (const [key, entry] of this.entries) {
      if (liveKeys.has(key)) continue;
      for (const conn of entry.conns.filter((c) => c.ready)) {
        this.log.info({ node: key }, 'draining session of a removed upstream node');
        this.retire(conn);
      }
    }
  }

  stats(): { connections: number; streams: number; bufferedBytes: number } {
    let streams = 0;
    let bufferedBytes = 0;
    for (const conn of this.nodeOf.keys()) {
      streams += conn.active;
      bufferedBytes += conn.queuedBytes;
    }
    return { connections: this.nodeOf.size, streams, bufferedBytes };
  }

  /** Closes every connection; streams still open after `graceMs` are cut. */
  async close(graceMs = 0): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    const conns = [...this.nodeOf.keys()];
    for (const conn of conns) conn.close();
    const deadline = Date.now() + graceMs;
    while (conns.some((c) => !c.closed) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const conn of conns) if (!conn.closed) conn.destroy();
    this.entries.clear();
  }
}
