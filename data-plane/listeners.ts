/**
 * The data plane's servers: the only node:http2 server code. h2c listeners (prior-knowledge HTTP/2 over plain
 * TCP) and TLS listeners (ALPN `h2` only: gRPC needs HTTP/2) both hand every stream to handleStream.
 *
 * TLS certificates come from the current snapshot's SNI table, per handshake. Clients that send no SNI (a client
 * dialling an IP address) never reach SNICallback and get the server's default context, which follows
 * `apisix.ssl.fallback_sni` when it names a configured certificate and the default certificate otherwise; it is
 * replaced with setSecureContext() whenever a new snapshot changes that choice.
 */
import http2, { type Http2Server, type Http2SecureServer, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { ListenAddress } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import type { Snapshot, Snapshots } from './config/snapshots.ts';
import { handleStream, type ProxyDeps } from './proxy/handle-stream.ts';
import type { PemPair } from './tls/default-cert.ts';

export interface ListenerOptions {
  h2c: readonly ListenAddress[];
  tls: readonly ListenAddress[];
  fallbackSni: string | undefined;
  defaultCert: PemPair;
  deps: ProxyDeps;
}

export interface BoundAddress {
  kind: 'h2c' | 'tls';
  host: string;
  port: number;
}

export interface Listeners {
  readonly addresses: readonly BoundAddress[];
  /** Stops accepting, sends GOAWAY to every client session, destroys what is still open after `graceMs`. */
  close(graceMs?: number): Promise<void>;
}

export async function startListeners(options: ListenerOptions): Promise<Listeners> {
  const { deps } = options;
  const log = deps.log.child({ module: 'listeners' });
  const sessions = new Set<Http2Session>();
  const servers: (Http2Server | Http2SecureServer)[] = [];
  const addresses: BoundAddress[] = [];
  const onStream = (stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void => {
    stream.on('error', ignoreStreamError);
    handleStream(stream, headers, deps);
  };
  const track = (session: Http2Session): void => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', (err: Error) => log.debug({ err: err.message }, 'client session error'));
  };

  try {
    for (const address of options.h2c) {
      const server = http2.createServer();
      server.on('stream', onStream);
      server.on('session', track);
      servers.push(server);
      addresses.push({ kind: 'h2c', host: address.ip, port: await listen(server, address) });
    }
    if (options.tls.length > 0) {
      const defaultContext = createSecureContext({ cert: options.defaultCert.cert, key: options.defaultCert.key });
      const fallback = (snapshot: Snapshot): { context: SecureContext; cert: string | string[]; key: string | string[]; id: string } => {
        const chosen = options.fallbackSni === undefined ? undefined : snapshot.sni.lookup(options.fallbackSni);
        if (chosen !== undefined) return { context: chosen.context, cert: chosen.cert, key: chosen.key, id: `${chosen.id}@${chosen.modRevision}` };
        return { context: defaultContext, cert: options.defaultCert.cert, key: options.defaultCert.key, id: 'default' };
      };
      let current = fallback(deps.snapshots.current());
      const tlsServers: Http2SecureServer[] = [];
      for (const address of options.tls) {
        const server = http2.createSecureServer({
          cert: current.cert,
          key: current.key,
          allowHTTP1: false,
          ALPNProtocols: ['h2'],
          SNICallback: (servername, callback) => {
            const snapshot = deps.snapshots.current();
            callback(null, snapshot.sni.lookup(servername)?.context ?? fallback(snapshot).context);
          },
        });
        server.on('stream', onStream);
        server.on('session', track);
        server.on('tlsClientError', (err: Error) => log.debug({ err: err.message }, 'TLS handshake failed'));
        servers.push(server);
        tlsServers.push(server);
        addresses.push({ kind: 'tls', host: address.ip, port: await listen(server, address) });
      }
      deps.snapshots.onSwap((snapshot) => {
        const next = fallback(snapshot);
        if (next.id === current.id) return;
        current = next;
        for (const server of tlsServers) server.setSecureContext({ cert: next.cert, key: next.key });
        log.info({ certificate: next.id }, 'certificate for clients without SNI changed');
      });
    }
  } catch (err) {
    for (const server of servers) server.close();
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    addresses,
    close: (graceMs = 0) => {
      closing ??= closeAll(servers, sessions, graceMs);
      return closing;
    },
  };
}

function ignoreStreamError(): void {
  // Client resets surface as 'error' on some codes; forward() reacts to 'close', and an unhandled 'error' would
  // crash the process.
}

function listen(server: Http2Server | Http2SecureServer, address: ListenAddress): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.ip, () => {
      server.off('error', reject);
      const bound = server.address();
      resolve(bound !== null && typeof bound === 'object' ? bound.port : address.port);
    });
  });
}

async function closeAll(servers: (Http2Server | Http2SecureServer)[], sessions: Set<Http2Session>, graceMs: number): Promise<void> {
  const closed = servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
  for (const session of sessions) session.close(); // GOAWAY: in-flight streams may finish
  const timer = setTimeout(() => {
    for (const session of sessions) session.destroy();
  }, graceMs);
  await Promise.all(closed);
  clearTimeout(timer);
}
