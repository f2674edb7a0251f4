/**
 * Shared set-up of the flow tests (issue #3: backpressure, large messages, restarts, half-close, retries,
 * timeouts): one whole in-process gateway per test file (test/e2e/gateway-fixture.ts), routes written through the
 * admin API and waited for by etcd revision, raw HTTP/2 sessions to the gateway, nodes that misbehave at the TCP
 * level (a closed port, a server that accepts and never speaks), and a grpc-js "bytes" service whose messages are
 * raw buffers of any size, for tests that need more than a HelloRequest.
 *
 * Every wait is bounded (`within`, `waitUntil` from test/helpers/fake-upstream.ts) and fails with a message.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net, { type Socket } from 'node:net';
import {
  Client,
  Server,
  ServerCredentials,
  type ChannelOptions,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  type StatusObject,
} from '@grpc/grpc-js';
import type { GatewayFixture } from '../e2e/gateway-fixture.ts';
import { freePort } from '../helpers/ports.ts';

export { gatewaySession } from '../e2e/gateway-fixture.ts';
export { DEFAULT_LIMIT_MS, waitUntil, within } from '../helpers/fake-upstream.ts';

/** Per-test backstop for node:test, above every bounded wait inside a test. */
export const TEST_TIMEOUT_MS = 30_000;

/** Unlimited message sizes for grpc-js channels and servers (their default receive limit is 4 MiB). */
export const UNLIMITED_MESSAGES: ChannelOptions = {
  'grpc.max_receive_message_length': -1,
  'grpc.max_send_message_length': -1,
};

/**
 * PUTs route `id` through the admin API and waits until the data plane's snapshot has caught up with the etcd
 * revision of the write. Every call of a test must use a route that differs from the one before (new ports or
 * settings): an identical value may not produce a new snapshot revision.
 */
export async function putRoute(gw: GatewayFixture, id: string, route: Record<string, unknown>): Promise<void> {
  const put = await gw.admin('PUT', `/routes/${id}`, route);
  assert.ok(put.status === 200 || put.status === 201, `route PUT failed: ${put.status} ${JSON.stringify(put.body)}`);
  const got = await gw.admin('GET', `/routes/${id}`);
  const body = got.body;
  const modified =
    body !== null && typeof body === 'object' && 'modifiedIndex' in body ? String(body.modifiedIndex) : '';
  assert.match(modified, /^\d+$/, `route GET gave no modifiedIndex: ${JSON.stringify(body)}`);
  const revision = BigInt(modified);
  await gw.waitForSnapshot((snapshot) => BigInt(snapshot.revision) >= revision, `route ${id} at revision ${revision}`);
}


/** A loopback port nobody listens on: connecting to it is refused. */
export async function closedPort(): Promise<number> {
  return freePort();
}

export interface SilentServer {
  readonly port: number;
  /** TCP connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

/** Accepts TCP connections and never writes a byte: an HTTP/2 (or TLS) handshake to it never completes. */
export async function startSilentServer(): Promise<SilentServer> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => sockets.delete(socket));
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const bound = server.address();
      if (bound !== null && typeof bound === 'object') resolve(bound.port);
      else reject(new Error('silent server: no port'));
    });
  });
  let closing: Promise<void> | undefined;
  return {
    port,
    get accepted() {
      return accepted;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}

// ---- a grpc-js service of raw bytes ---------------------------------------------------------------------------

/** `/flow.Bytes/Reverse`: answers the request's bytes reversed, so request and response differ but are checkable. */
export const REVERSE_PATH = '/flow.Bytes/Reverse';

const identity = (b: Buffer): Buffer => b;

const BYTES_SERVICE: ServiceDefinition = {
  Reverse: {
    path: REVERSE_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

export interface BytesServer {
  readonly address: string;
  /** sha256 (hex) and length of every request received, in order. */
  readonly received: { sha256: string; length: number }[];
  close(): Promise<void>;
}

/** A grpc-js server with the bytes service and unlimited message sizes; TLS when given a certificate. */
export async function startBytesServer(tls?: { cert: string; key: string }): Promise<BytesServer> {
  const server = new Server(UNLIMITED_MESSAGES);
  const received: { sha256: string; length: number }[] = [];
  server.addService(BYTES_SERVICE, {
    Reverse: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
      received.push({ sha256: sha256(call.request), length: call.request.length });
      callback(null, Buffer.from(call.request).reverse());
    },
  });
  const credentials =
    tls === undefined
      ? ServerCredentials.createInsecure()
      : ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(tls.cert), private_key: Buffer.from(tls.key) }], false);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', credentials, (err, bound) => (err === null ? resolve(bound) : reject(err)));
  });
  let closing: Promise<void> | undefined;
  return {
    address: `127.0.0.1:${port}`,
    received,
    close() {
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), 1_000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return closing;
    },
  };
}

export interface BytesOutcome {
  reply: Buffer | undefined;
  status: StatusObject;
}

/** One unary call of the bytes service. Not bounded: wrap it in within(). */
export function callReverse(client: Client, request: Buffer): Promise<BytesOutcome> {
  return new Promise((resolve) => {
    let reply: Buffer | undefined;
    const call = client.makeUnaryRequest(REVERSE_PATH, identity, identity, request, (_err, value) => {
      reply = value;
    });
    call.once('status', (status: StatusObject) => {
      // The callback runs before 'status' in grpc-js; resolve on the next tick to be safe either way.
      setImmediate(() => resolve({ reply, status }));
    });
  });
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** What a flow test opens per test and must release after it: clients, raw sessions, fake upstreams, Greeter nodes. */
export interface TestResources {
  clients: { close(): void }[];
  sessions: { destroy(): void }[];
  fakes: { close(): Promise<void> }[];
  nodes: { close(graceMs?: number): Promise<void> }[];
  /** Closes and forgets everything registered so far (afterEach); a function property: it can be destructured. */
  release: () => Promise<void>;
}

export function testResources(): TestResources {
  const resources: TestResources = {
    clients: [],
    sessions: [],
    fakes: [],
    nodes: [],
    async release() {
      for (const client of resources.clients.splice(0)) client.close();
      for (const session of resources.sessions.splice(0)) session.destroy();
      await Promise.all([...resources.fakes.splice(0).map((f) => f.close()), ...resources.nodes.splice(0).map((n) => n.close(0))]);
    },
  };
  return resources;
}
