/**
 * A real @grpc/grpc-js server with the standard health service (grpc.health.v1.Health/Check, as
 * grpc/doc/health-checking.md and grpc-go's health server define it): for the active probe tests
 * (test/data-plane/health-probes.test.ts) and the probe benchmark (bench/health-probes.ts).
 *
 * - The service is the example upstream's (examples/health-service.ts, examples/proto/health.proto through
 *   proto-loader): the probe encodes its request by hand, so the server decodes with an independent, real codec.
 * - Statuses per service name, "" (the whole server) SERVING at start; a service with no status answers NOT_FOUND,
 *   as grpc-go's and grpc-js's health servers do. `health: false` serves no health service at all (UNIMPLEMENTED).
 * - Like examples/greeter-server.ts, connections are accepted by our own net/tls listeners and injected into
 *   grpc-js, so the server can count them (connection reuse), and one grpc-js server can listen on many ports (the
 *   benchmark's 1,000 targets).
 *
 * Run as a program it serves in a child process (the freeze test stops it with SIGSTOP; the benchmark keeps the
 * servers' CPU out of the prober's) and prints one JSON line, `{"ports":[…]}`, once it listens:
 *
 *   node test/helpers/grpc-health.ts [--host 127.0.0.1] [--port 0] [--listeners 1]
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { parseArgs } from 'node:util';
import { createHealthHandlers, createHealthState, loadHealthService, type ServingStatus } from '../../examples/health-service.ts';
import { isMainModule } from '../../examples/is-main.ts';

export type { ServingStatus };

export interface HealthCheckSeen {
  readonly service: string;
  /** `:authority` of the call. */
  readonly authority: string;
}

export interface HealthServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (a free port); with `listeners` > 1, every listener takes a free port. */
  port?: number;
  /** Listening ports sharing the one grpc-js server. Default 1. */
  listeners?: number;
  /** Serve TLS (ALPN h2) with this certificate. */
  tls?: { cert: string; key: string };
  /** Register the health service (default true); false: every call is UNIMPLEMENTED. */
  health?: boolean;
}

export interface HealthServer {
  readonly host: string;
  readonly port: number;
  readonly ports: readonly number[];
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** Check calls answered so far, and the last ones (at most 100). */
  readonly calls: number;
  readonly seen: readonly HealthCheckSeen[];
  /** Sets a service's status; undefined removes it (Check then answers NOT_FOUND). */
  setStatus(service: string, status: ServingStatus | undefined): void;
  close(): Promise<void>;
}

export async function startHealthServer(options: HealthServerOptions = {}): Promise<HealthServer> {
  const host = options.host ?? '127.0.0.1';
  // The example upstream's health service (examples/health-service.ts), knowing only the whole server ("").
  const state = createHealthState([]);
  let connections = 0;

  const grpcServer = new Server();
  if (options.health !== false) grpcServer.addService(loadHealthService(), createHealthHandlers(state));
  const injector = grpcServer.createConnectionInjector(ServerCredentials.createInsecure());
  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };

  const listeners: NetServer[] = [];
  const ports: number[] = [];
  const count = options.listeners ?? 1;
  for (let i = 0; i < count; i++) {
    let listener: NetServer;
    if (options.tls === undefined) {
      listener = createNetServer((socket) => injector.injectConnection(socket));
    } else {
      const tlsServer = createTlsServer({ cert: options.tls.cert, key: options.tls.key, ALPNProtocols: ['h2'] });
      tlsServer.on('secureConnection', (socket) => {
        socket.on('error', () => socket.destroy());
        injector.injectConnection(socket);
      });
      // Handshakes that fail (the probe that does not trust us) are the test's point, not an error here.
      tlsServer.on('tlsClientError', () => {});
      listener = tlsServer;
    }
    listener.on('connection', track);
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(count === 1 ? (options.port ?? 0) : 0, host, () => {
        listener.removeListener('error', reject);
        resolve();
      });
    });
    const bound = listener.address();
    ports.push(bound !== null && typeof bound === 'object' ? bound.port : 0);
    listeners.push(listener);
  }

  let closing: Promise<void> | undefined;
  return {
    host,
    port: ports[0] ?? 0,
    ports,
    get connections() {
      return connections;
    },
    get calls() {
      return state.checks;
    },
    seen: state.seen,
    setStatus(service, status) {
      if (status === undefined) state.statuses.delete(service);
      else state.statuses.set(service, status);
    },
    close() {
      closing ??= (async () => {
        const closed = listeners.map((listener) => new Promise<void>((resolve) => listener.close(() => resolve())));
        grpcServer.forceShutdown();
        injector.destroy();
        for (const socket of sockets) socket.destroy();
        await Promise.all(closed);
      })();
      return closing;
    },
  };
}

async function main(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      listeners: { type: 'string', default: '1' },
    },
  });
  const server = await startHealthServer({ host: values.host, port: Number(values.port), listeners: Number(values.listeners) });
  process.stdout.write(`${JSON.stringify({ ports: server.ports })}\n`);
  const stop = (): void => {
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (isMainModule(import.meta.url)) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
