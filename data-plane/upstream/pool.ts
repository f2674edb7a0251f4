/**
 * Pooled upstream HTTP/2 sessions: the only node:http2 client code of the gateway. One session per node key
 * (scheme, host, port) is shared by every call and every route that goes to that node, so calls are multiplexed
 * as streams instead of costing a connection each (nginx's grpc_pass opens one per in-flight call).
 *
 * A session that receives GOAWAY or closes leaves the pool at once, so new calls open a fresh one while the old
 * session's streams finish. `grpc` nodes are dialled as h2c with prior knowledge, `grpcs` over TLS with ALPN `h2`;
 * upstream certificates are not verified (APISIX's behaviour: its own tests proxy to self-signed backends).
 */
import http2, { type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';
import type { Logger } from '../../shared/logger.ts';
import { UpstreamConnectError } from '../../shared/errors.ts';
import type { UpstreamNode } from './upstream.ts';

interface PoolEntry {
  session: ClientHttp2Session;
  /** Settles when the session is connected; shared by the calls that arrive while it connects. */
  ready: Promise<ClientHttp2Session>;
  connected: boolean;
}

export class SessionPool {
  private readonly entries = new Map<string, PoolEntry>();
  private readonly log: Logger;
  private closed = false;

  constructor(log: Logger) {
    this.log = log.child({ module: 'pool' });
  }

  /** A connected, usable session for the node, without waiting; undefined when one must be (or is being) dialled. */
  ready(node: UpstreamNode): ClientHttp2Session | undefined {
    const entry = this.entries.get(node.key);
    if (entry === undefined || !entry.connected) return undefined;
    const { session } = entry;
    if (session.closed || session.destroyed) {
      this.entries.delete(node.key);
      return undefined;
    }
    return session;
  }

  /** Resolves with a connected session for the node, dialling one if needed, within `connectTimeoutMs`. */
  acquire(node: UpstreamNode, connectTimeoutMs: number): Promise<ClientHttp2Session> {
    const existing = this.ready(node);
    if (existing !== undefined) return Promise.resolve(existing);
    const pending = this.entries.get(node.key);
    if (pending !== undefined && !pending.connected) return pending.ready;
    if (this.closed) return Promise.reject(new UpstreamConnectError(node.key, new Error('gateway is shutting down')));
    return this.dial(node, connectTimeoutMs);
  }

  private dial(node: UpstreamNode, connectTimeoutMs: number): Promise<ClientHttp2Session> {
    const url = `${node.scheme === 'grpcs' ? 'https' : 'http'}://${node.host}:${node.port}`;
    const options: SecureClientSessionOptions = node.scheme === 'grpcs' ? { ALPNProtocols: ['h2'], rejectUnauthorized: false } : {};
    const session = http2.connect(url, options);
    let entry: PoolEntry | undefined;
    const ready = new Promise<ClientHttp2Session>((resolve, reject) => {
      const timer = setTimeout(() => {
        session.destroy(new Error(`connect timed out after ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      session.once('connect', () => {
        clearTimeout(timer);
        if (entry !== undefined) entry.connected = true;
        this.log.debug({ node: node.key }, 'upstream session opened');
        resolve(session);
      });
      session.once('close', () => {
        clearTimeout(timer);
        reject(new UpstreamConnectError(node.key, new Error('connection closed')));
      });
      session.once('error', (err: Error) => {
        clearTimeout(timer);
        reject(new UpstreamConnectError(node.key, err));
      });
    });
    ready.catch(() => undefined); // callers get the rejection; this only stops an unhandled-rejection warning
    entry = { session, ready, connected: false };
    this.entries.set(node.key, entry);
    const forget = (): void => {
      if (this.entries.get(node.key)?.session === session) this.entries.delete(node.key);
    };
    session.on('goaway', (code: number) => {
      this.log.info({ node: node.key, code }, 'upstream session received GOAWAY');
      forget();
    });
    session.on('close', () => {
      this.log.debug({ node: node.key }, 'upstream session closed');
      forget();
    });
    session.on('error', (err: Error) => {
      this.log.warn({ node: node.key, err: err.message }, 'upstream session error');
      forget();
    });
    return ready;
  }

  /** Gracefully closes sessions to nodes that no config references any more: their streams finish first. */
  retain(liveKeys: ReadonlySet<string>): void {
    for (const [key, entry] of this.entries) {
      if (liveKeys.has(key)) continue;
      this.entries.delete(key);
      this.log.info({ node: key }, 'draining session of a removed upstream node');
      entry.session.close();
    }
  }

  /** Closes every session; streams still open after `graceMs` are destroyed. Idempotent. */
  async close(graceMs = 0): Promise<void> {
    this.closed = true;
    const sessions = [...this.entries.values()].map((e) => e.session);
    this.entries.clear();
    await Promise.all(
      sessions.map(
        (session) =>
          new Promise<void>((resolve) => {
            if (session.destroyed) return resolve();
            const timer = setTimeout(() => session.destroy(), graceMs);
            session.close(() => {
              clearTimeout(timer);
              resolve();
            });
            session.once('close', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
  }
}
