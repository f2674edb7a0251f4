/**
 * The example gRPC upstream: a real @grpc/grpc-js server with the Greeter service, on plaintext HTTP/2 (scheme
 * `grpc`) or TLS (scheme `grpcs`). `startGreeter()` is what tests use; run as a program it stands in for
 * api7/grpc_server_example, the server of the seed document (grpc on :50051, grpcs on :50052).
 *
 * The listening socket is ours, not grpc-js's: connections are accepted by a node:net or node:tls server and handed
 * to grpc-js through a ConnectionInjector. That lets the server report what a test of the gateway needs to see and
 * grpc-js does not expose: how many connections reached it (pooling) and the SNI of each TLS handshake (what the
 * gateway sends upstream for scheme grpcs).
 *
 *   node examples/greeter-server.ts [--grpc-address :50051] [--grpcs-address :50052]
 *        [--cert cert.pem --key key.pem] [--id name]          (an empty address disables that listener)
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { readFile } from 'node:fs/promises';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { GREETER_METHODS, loadGreeterService, type GreeterMethod } from './greeter-proto.ts';
import { createGreeterHandlers, createRecorder, type ReceivedCall } from './greeter-service.ts';
import { createHealthHandlers, createHealthState, loadHealthService, type HealthState, type ServingStatus } from './health-service.ts';
import { isMainModule } from './is-main.ts';
import { selfSignedCert } from './self-signed.ts';

export interface GreeterOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: a free port, read it back from `port`. */
  port?: number;
  /** PEM certificate and key: serve TLS (ALPN h2) instead of plaintext HTTP/2. */
  tls?: { cert: string; key: string };
  /** Sent as `x-served-by` on every call; default `host:port`, the way an upstream node is written in APISIX. */
  id?: string;
}

export interface GreeterServer {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  /** `host:port` (`[v6]:port`), usable as a client target and as an upstream node key. */
  readonly address: string;
  readonly tls: boolean;
  /** Calls received per method, including failed and cancelled ones. */
  readonly counts: Readonly<Record<GreeterMethod, number>>;
  /** Sum of `counts`. */
  readonly totalCalls: number;
  readonly lastCall: ReceivedCall | undefined;
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** TLS handshakes completed so far (TLS only). */
  readonly handshakes: number;
  /** SNI of the last completed handshake: undefined before any, null when the client sent none. */
  readonly lastServername: string | null | undefined;
  /** Zeroes the counters and forgets the last call and handshake. */
  resetRecord(): void;
  /** grpc.health.v1: what Check answers per service ('' = the whole server; helloworld.Greeter is known too). */
  setHealth(status: ServingStatus, service?: string): void;
  /** Health Check calls answered, and the last one's service and :authority. */
  readonly health: Readonly<Pick<HealthState, 'checks' | 'lastService' | 'lastAuthority'>> & { readonly peers: number };
  /** Stops accepting, lets calls finish for `graceMs`, then cancels what is left. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

/** Long enough for a unary call in flight to finish, short enough that a test's after() never drags. */
const DEFAULT_CLOSE_GRACE_MS = 1_000;
/** gRPC over TLS requires HTTP/2 negotiated by ALPN (RFC 9113 §3.2). */
const ALPN_PROTOCOLS = ['h2'];

export async function startGreeter(options: GreeterOptions = {}): Promise<GreeterServer> {
  const host = options.host ?? '127.0.0.1';
  let id = options.id ?? '';
  const recorder = createRecorder();
  let connections = 0;
  let handshakes = 0;
  let lastServername: string | null | undefined;

  const grpcServer = new Server();
  grpcServer.addService(loadGreeterService(), createGreeterHandlers(() => id, recorder));
  // The standard health service, for the gateway's grpc health checks (checks.active.type: grpc).
  const health = createHealthState(['helloworld.Greeter']);
  grpcServer.addService(loadHealthService(), createHealthHandlers(health));
  // Plaintext towards grpc-js even for TLS: the socket it is given is already decrypted.
  const injector = grpcServer.createConnectionInjector(ServerCredentials.createInsecure());

  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    connections += 1;
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      if (sockets.size === 0) for (const resolve of whenNoSockets.splice(0)) resolve();
    });
  };
  const whenNoSockets: (() => void)[] = [];
  /** Resolves once every tracked connection has closed, or after `ms`. */
  const socketsClosed = async (ms: number): Promise<void> => {
    if (sockets.size === 0 || ms <= 0) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      whenNoSockets.push(resolve);
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
  };

  let listener: NetServer;
  if (options.tls === undefined) {
    listener = createNetServer((socket) => injector.injectConnection(socket));
  } else {
    const tlsServer = createTlsServer({ cert: options.tls.cert, key: options.tls.key, ALPNProtocols: ALPN_PROTOCOLS });
    tlsServer.on('secureConnection', (socket: TLSSocket) => {
      handshakes += 1;
      lastServername = typeof socket.servername === 'string' && socket.servername !== '' ? socket.servername : null;
      // A TLS socket's errors are the server user's to handle (nodejs/node#35824); http2 takes over after this.
      socket.on('error', () => socket.destroy());
      injector.injectConnection(socket);
    });
    listener = tlsServer;
  }
  listener.on('connection', track);

  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(options.port ?? 0, host, () => {
      listener.removeListener('error', reject);
      resolve();
    });
  });
  const bound = listener.address();
  const port = bound !== null && typeof bound === 'object' ? bound.port : 0;
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  if (id === '') id = address;

  let closing: Promise<void> | undefined;
  const close = (graceMs = DEFAULT_CLOSE_GRACE_MS): Promise<void> => {
    closing ??= (async () => {
      const listenerClosed = new Promise<void>((resolve) => listener.close(() => resolve()));
      const deadline = Date.now() + graceMs;
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => grpcServer.forceShutdown(), graceMs);
        grpcServer.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      // On Node 24, tryShutdown calls back as soon as it has sent GOAWAY on the injected connections, while their
      // calls are still in flight; the connections close themselves once those calls are answered, so wait for
      // that (within the grace) before anything is destroyed.
      await socketsClosed(deadline - Date.now());
      injector.destroy();
      // Connections that never became HTTP/2 sessions (a half-done handshake) are not grpc-js's to close.
      for (const socket of sockets) socket.destroy();
      await listenerClosed;
    })();
    return closing;
  };

  return {
    id,
    host,
    port,
    address,
    tls: options.tls !== undefined,
    get counts() {
      return { ...recorder.counts };
    },
    get totalCalls() {
      return Object.values(recorder.counts).reduce((sum, count) => sum + count, 0);
    },
    get lastCall() {
      return recorder.last;
    },
    get connections() {
      return connections;
    },
    get handshakes() {
      return handshakes;
    },
    get lastServername() {
      return lastServername;
    },
    setHealth(status, service = '') {
      health.statuses.set(service, status);
    },
    get health() {
      return { checks: health.checks, lastService: health.lastService, lastAuthority: health.lastAuthority, peers: health.peers.size };
    },
    resetRecord() {
      for (const method of GREETER_METHODS) recorder.counts[method] = 0;
      recorder.last = undefined;
      connections = 0;
      handshakes = 0;
      lastServername = undefined;
    },
    close,
  };
}

/** `:50051` → all IPv4 interfaces (Go's net.Listen would take every interface); `host:port`; `[v6]:port`. */
export function parseListenAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (match === null || !Number.isInteger(port) || port > 65_535) {
    throw new Error(`invalid listen address "${text}", want [host]:port`);
  }
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

async function main(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      'grpc-address': { type: 'string', default: ':50051' },
      'grpcs-address': { type: 'string', default: ':50052' },
      cert: { type: 'string' },
      key: { type: 'string' },
      id: { type: 'string', default: hostname() },
    },
  });
  if ((values.cert === undefined) !== (values.key === undefined)) throw new Error('--cert and --key go together');

  const servers: GreeterServer[] = [];
  const grpcAddress = values['grpc-address'];
  if (grpcAddress !== '') {
    servers.push(await startGreeter({ ...parseListenAddress(grpcAddress), id: values.id }));
  }
  const grpcsAddress = values['grpcs-address'];
  if (grpcsAddress !== '') {
    const tls =
      values.cert !== undefined && values.key !== undefined
        ? { cert: await readFile(values.cert, 'utf8'), key: await readFile(values.key, 'utf8') }
        : await selfSignedCert({ sans: ['localhost', '127.0.0.1', '::1'] });
    servers.push(await startGreeter({ ...parseListenAddress(grpcsAddress), tls, id: values.id }));
  }
  if (servers.length === 0) throw new Error('both listeners are disabled');
  for (const server of servers) {
    console.log(`greeter ${server.id}: ${server.tls ? 'grpcs' : 'grpc'} listening on ${server.address}`);
  }

  const shutdown = (signal: string): void => {
    console.log(`greeter ${values.id}: ${signal}, shutting down`);
    void Promise.all(servers.map((server) => server.close())).then(() => console.log(`greeter ${values.id}: stopped`));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

if (isMainModule(import.meta.url)) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
