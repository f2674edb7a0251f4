/**
 * Shared set-up of the fault tests: one whole gateway per test file (test/e2e/gateway-fixture.ts), a fresh scripted
 * fake upstream per test routed as `/helloworld.Greeter/*`, and downstream clients of two kinds:
 *
 * - raw node:http2 clients, which write gRPC frames by hand and report the HTTP/2 structure of the answer (was the
 *   response one HEADERS frame with END_STREAM? trailers? which RST_STREAM code?);
 * - real @grpc/grpc-js clients (test/helpers/greeter.ts), which report what an application would see.
 *
 * Tests run over the leg matrix of Envoy's HttpProtocolIntegrationTest, adapted: {h2c, TLS} downstream ×
 * {grpc, grpcs} upstream. Everything a test opens is released by `cleanup()` (afterEach) and `close()` (after).
 * Every wait is bounded by `within()`/`waitUntil()` and fails with a message naming what did not happen.
 */
import assert from 'node:assert/strict';
import {
  constants,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { after, afterEach, before } from 'node:test';
import type { Client } from '@grpc/grpc-js';
import { gatewaySession, startGateway, type GatewayFixture } from '../e2e/gateway-fixture.ts';
import { greeterClient } from '../helpers/greeter.ts';
import {
  DEFAULT_LIMIT_MS,
  grpcFrame,
  helloMessage,
  parseGrpcFrames,
  startFakeUpstream,
  within,
  type FakeUpstream,
  type FakeUpstreamOptions,
  type StreamControl,
} from '../helpers/fake-upstream.ts';

export { DEFAULT_LIMIT_MS, within };

export interface Leg {
  readonly down: 'h2c' | 'tls';
  readonly up: 'grpc' | 'grpcs';
}

export const ALL_LEGS: readonly Leg[] = [
  { down: 'h2c', up: 'grpc' },
  { down: 'h2c', up: 'grpcs' },
  { down: 'tls', up: 'grpc' },
  { down: 'tls', up: 'grpcs' },
];

export const legName = (leg: Leg): string => `${leg.down} client → ${leg.up} upstream`;

export const ROUTE_ID = 'fault';
export const SAY_HELLO = '/helloworld.Greeter/SayHello';
export const SERVER_STREAM = '/helloworld.Greeter/SayHelloServerStream';
export const BIDI_STREAM = '/helloworld.Greeter/SayHelloBidirectionalStream';

/** Per-test backstop for node:test, above every bounded wait inside a test. */
export const TEST_TIMEOUT_MS = 30_000;

export interface RouteOptions {
  /** Extra fields of the inline upstream (pass_host, upstream_host, timeout, retries…). */
  upstream?: Record<string, unknown>;
  /** Extra fields of the route (timeout…). */
  route?: Record<string, unknown>;
}

export interface Bench {
  readonly gw: GatewayFixture;
  /** A fake upstream of the leg's scheme, with `/helloworld.Greeter/*` routed to it (applied by the data plane). */
  fake(leg: Leg, options?: FakeUpstreamOptions & RouteOptions): Promise<FakeUpstream>;
  /** Routes `/helloworld.Greeter/*` to the given fakes and waits until the data plane applied it. */
  routeTo(fakes: readonly FakeUpstream[], options?: RouteOptions): Promise<void>;
  /** A connected raw HTTP/2 session to the gateway's h2c or TLS listener. */
  downSession(leg: Leg): Promise<ClientHttp2Session>;
  /** A grpc-js client to the gateway's h2c or TLS listener. */
  grpcClient(leg: Leg): Client;
  /** Releases everything opened since the last cleanup: clients, sessions, fakes. */
  cleanup(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Registers the suite's hooks: one bench for the file (before), each test's fakes and clients released
 * (afterEach), the bench closed (after). Returns a getter, since the bench exists only once before() ran.
 */
export function useBench(): () => Bench {
  let bench: Bench | undefined;
  before(async () => {
    bench = await startBench();
  });
  afterEach(async () => bench?.cleanup());
  after(async () => bench?.close());
  return () => {
    if (bench === undefined) throw new Error('the bench is used before before() ran');
    return bench;
  };
}

/** The usual upstream answer: wait for the client's half-close, one message, OK trailers. */
export async function answerOk(ctl: StreamControl, text = 'ok'): Promise<void> {
  await ctl.requestEnded();
  await ctl.writeMessage(text);
  ctl.sendTrailers();
}

export async function startBench(): Promise<Bench> {
  const gw = await startGateway();
  let fakes: FakeUpstream[] = [];
  let sessions: ClientHttp2Session[] = [];
  let clients: Client[] = [];

  const bench: Bench = {
    gw,
    async fake(leg, options = {}) {
      const fake = await startFakeUpstream({ ...options, tls: leg.up === 'grpcs' });
      fakes.push(fake);
      await bench.routeTo([fake], options);
      return fake;
    },
    async routeTo(targets, options = {}) {
      const nodes = Object.fromEntries(targets.map((f) => [f.address, 1]));
      const scheme = targets[0]?.scheme ?? 'grpc';
      const route = {
        uri: '/helloworld.Greeter/*',
        ...options.route,
        upstream: { scheme, type: 'roundrobin', nodes, ...options.upstream },
      };
      const res = await gw.admin('PUT', `/routes/${ROUTE_ID}`, route);
      assert.ok(res.status === 200 || res.status === 201, `route PUT failed: ${res.status} ${JSON.stringify(res.body)}`);
      const want = JSON.stringify(targets.map((f) => f.nodeKey));
      // Every test routes to a fresh fake (a new port), so a changed node list means the whole new route is live.
      await gw.waitForSnapshot(() => JSON.stringify(gw.routeNodes(ROUTE_ID)) === want, `route to ${want}`);
    },
    async downSession(leg) {
      const session = await gatewaySession(gw, leg.down);
      sessions.push(session);
      return session;
    },
    grpcClient(leg) {
      const client =
        leg.down === 'h2c' ? greeterClient(gw.h2cAddress) : greeterClient(gw.tlsAddress, { tls: { rootCert: gw.defaultCert.cert } });
      clients.push(client);
      return client;
    },
    async cleanup() {
      for (const client of clients) client.close();
      for (const session of sessions) session.destroy();
      await Promise.all(fakes.map((f) => f.close()));
      fakes = [];
      sessions = [];
      clients = [];
    },
    async close() {
      await bench.cleanup();
      await gw.close();
    },
  };
  return bench;
}

export interface RawCallOptions {
  path?: string;
  /** Request headers over the defaults (POST, application/grpc, te: trailers); `undefined` removes a default. */
  headers?: OutgoingHttpHeaders;
  /** Request messages: strings are HelloRequest names, buffers are written as payloads of gRPC frames. */
  messages?: readonly (string | Buffer)[];
  /** Half-close after the messages (default true). */
  end?: boolean;
}

export interface RawResult {
  /** Response HEADERS (the first one), undefined if the stream closed before any. */
  headers: IncomingHttpHeaders | undefined;
  /** Frame flags of that HEADERS frame. */
  headersFlags: number;
  /** The response was one HEADERS frame with END_STREAM: a trailers-only response. */
  trailersOnly: boolean;
  trailers: IncomingHttpHeaders | undefined;
  /** DATA bytes received. */
  data: Buffer;
  /** gRPC messages in `data` (payloads). */
  messages: Buffer[];
  /** RST_STREAM code of the close (NO_ERROR for a clean end). */
  rstCode: number | undefined;
  /** grpc-status from the trailers or the trailers-only HEADERS. */
  grpcStatus: number | undefined;
  /** grpc-message as received (still percent-encoded). */
  grpcMessage: string | undefined;
}

export interface RawCall {
  readonly stream: ClientHttp2Stream;
  /** Resolves with the first response HEADERS and their flags. */
  readonly response: Promise<{ headers: IncomingHttpHeaders; flags: number }>;
  /** Resolves when the stream closed, with everything observed. Not bounded: use finish(). */
  readonly done: Promise<RawResult>;
}

/** Starts a gRPC call on a raw session; see RawCallOptions. */
export function startRawCall(session: ClientHttp2Session, options: RawCallOptions = {}): RawCall {
  const headers: OutgoingHttpHeaders = {};
  const merged: OutgoingHttpHeaders = {
    ':method': 'POST',
    ':path': options.path ?? SAY_HELLO,
    'content-type': 'application/grpc',
    te: 'trailers',
    ...options.headers,
  };
  for (const [name, value] of Object.entries(merged)) if (value !== undefined) headers[name] = value;
  const stream = session.request(headers, { endStream: false });
  const result: RawResult = {
    headers: undefined,
    headersFlags: 0,
    trailersOnly: false,
    trailers: undefined,
    data: Buffer.alloc(0),
    messages: [],
    rstCode: undefined,
    grpcStatus: undefined,
    grpcMessage: undefined,
  };
  const response = new Promise<{ headers: IncomingHttpHeaders; flags: number }>((resolve) => {
    stream.once('response', (h: IncomingHttpHeaders, flags: number) => {
      result.headers = h;
      result.headersFlags = flags;
      result.trailersOnly = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      resolve({ headers: h, flags });
    });
  });
  response.catch(() => undefined);
  stream.on('trailers', (t: IncomingHttpHeaders) => {
    result.trailers = t;
  });
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('error', () => undefined); // the close code says what happened
  const done = new Promise<RawResult>((resolve) => {
    stream.once('close', () => {
      result.rstCode = stream.rstCode;
      result.data = Buffer.concat(chunks);
      result.messages = parseGrpcFrames(result.data).messages;
      const statusFrom = result.trailers ?? (result.trailersOnly ? result.headers : undefined);
      const status = statusFrom?.['grpc-status'];
      result.grpcStatus = typeof status === 'string' ? Number(status) : undefined;
      const message = statusFrom?.['grpc-message'];
      result.grpcMessage = typeof message === 'string' ? message : undefined;
      resolve(result);
    });
  });
  for (const message of options.messages ?? ['fault']) {
    stream.write(grpcFrame(typeof message === 'string' ? helloMessage(message) : message));
  }
  if (options.end ?? true) stream.end();
  return { stream, response, done };
}

/** The call's result within `limitMs`, or a failure saying the call hung. */
export function finish(call: RawCall, what: string, limitMs = DEFAULT_LIMIT_MS): Promise<RawResult> {
  return within(call.done, limitMs, `${what}: the downstream call did not end (a hang)`);
}

/** A readable summary of a raw result for assertion messages. */
export function describeResult(r: RawResult): string {
  return JSON.stringify({
    headers: r.headers,
    trailersOnly: r.trailersOnly,
    trailers: r.trailers,
    dataBytes: r.data.length,
    messages: r.messages.length,
    rstCode: r.rstCode,
  });
}

/** RFC 9113 §7 error codes, by name, for assertion messages. */
export const H2_ERRORS = {
  NO_ERROR: constants.NGHTTP2_NO_ERROR,
  PROTOCOL_ERROR: constants.NGHTTP2_PROTOCOL_ERROR,
  INTERNAL_ERROR: constants.NGHTTP2_INTERNAL_ERROR,
  REFUSED_STREAM: constants.NGHTTP2_REFUSED_STREAM,
  CANCEL: constants.NGHTTP2_CANCEL,
  ENHANCE_YOUR_CALM: constants.NGHTTP2_ENHANCE_YOUR_CALM,
} as const;
