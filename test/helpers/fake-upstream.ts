/**
 * A scripted HTTP/2 upstream for fault tests: the frames a real gRPC server (grpc-js) will not produce on demand.
 * Envoy's integration tests do the same with `FakeUpstream` (test/integration/fake_upstream.cc): the test, not a
 * service implementation, decides what each stream answers and when: response HEADERS, gRPC-framed DATA,
 * trailers, a trailers-only response, RST_STREAM with any code, END_STREAM without trailers, a non-200 or
 * non-gRPC answer, GOAWAY with any last-stream-id, or a dead connection.
 *
 * It listens on loopback port 0, as h2c (prior knowledge) or TLS with ALPN `h2` and a certificate from certs.ts,
 * with the HTTP/2 SETTINGS a test asks for (`settings: { maxConcurrentStreams: 10 }`). Every stream and session
 * it sees is recorded: request headers (te, :authority, metadata), bytes and gRPC messages received, whether
 * END_STREAM arrived, and how the stream closed, in particular whether the *peer* (the gateway) reset it and with
 * which RST_STREAM code, which is what cancellation and deadline tests assert (Envoy: `waitForReset()`).
 *
 * Bounded waits live here too (`within`, `waitUntil`): a fault test must fail with a message, never hang.
 * close() destroys every session and socket and stops listening; it is idempotent.
 */
import http2, {
  constants,
  type Http2SecureServer,
  type Http2Session,
  type Http2Server,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
  type Settings,
} from 'node:http2';
import type { Socket } from 'node:net';
import { makeCert } from './certs.ts';

/** Default limit of a bounded wait: generous for a loaded CI machine, short enough that a hang fails fast. */
export const DEFAULT_LIMIT_MS = 5_000;

/** gRPC length-prefixed message: 1 byte compressed flag, 4 bytes big-endian length (PROTOCOL-HTTP2.md). */
const GRPC_PREFIX_BYTES = 5;

export interface FakeUpstreamOptions {
  /** Serve TLS with ALPN h2 (a `grpcs` node); h2c otherwise (a `grpc` node). */
  tls?: boolean;
  /** HTTP/2 SETTINGS sent to every client, e.g. `{ maxConcurrentStreams: 10 }`. */
  settings?: Settings;
  /** SANs of the TLS certificate; the gateway does not verify upstreams, so the default rarely matters. */
  sans?: readonly string[];
}

export interface StreamRecord {
  /** 1-based index of the session (connection) the stream arrived on, in order of arrival. */
  readonly session: number;
  /** HTTP/2 stream identifier. */
  readonly id: number;
  readonly headers: IncomingHttpHeaders;
  /** DATA payload bytes received from the gateway. */
  bytesReceived: number;
  /** Complete gRPC messages received (payloads without the 5-byte prefix). */
  readonly messages: Buffer[];
  /** The request half-closed (END_STREAM arrived). */
  endStreamReceived: boolean;
  closed: boolean;
  /** RST_STREAM code of the close (NO_ERROR for a clean end); undefined while open. */
  rstCode: number | undefined;
  /** The gateway reset the stream (RST_STREAM received), as opposed to the script or a dead session. */
  resetByPeer: boolean;
  /** Node's 'aborted': the stream was reset by the peer before our side finished. */
  aborted: boolean;
  /** The script called reset(), destroySession() or the fake was closed. */
  endedByScript: boolean;
  /** Resolves when the stream is closed, however that happened. */
  readonly closedPromise: Promise<void>;
}

export interface SessionRecord {
  /** 1-based, in order of arrival. */
  readonly index: number;
  readonly session: ServerHttp2Session;
  streams: number;
  openStreams: number;
  /** Most streams open at the same time on this session. */
  maxOpenStreams: number;
  closed: boolean;
  /** GOAWAY frames this fake sent on the session: code and last-stream-id. */
  readonly goawaysSent: { code: number; lastStreamID: number }[];
  /** Sends GOAWAY (default NO_ERROR, last-stream-id = highest stream seen so far). The session stays usable. */
  goaway(code?: number, lastStreamID?: number): void;
  destroy(): void;
}

export interface RespondOptions {
  /**
   * Whether the response will end with trailers (default true). Node needs to know when the headers go out:
   * with trailers, the stream ends with a HEADERS frame; without, the last DATA frame carries END_STREAM.
   */
  trailers?: boolean;
}

/** What a script does with one stream. Every method acts at once; the promises resolve when the bytes are queued. */
export interface StreamControl {
  readonly record: StreamRecord;
  readonly stream: ServerHttp2Stream;
  readonly session: SessionRecord;
  /** Response headers: `:status 200`, `content-type: application/grpc`, plus `headers`. */
  respond(headers?: OutgoingHttpHeaders, options?: RespondOptions): void;
  /** One gRPC message; a string is encoded as a helloworld HelloReply. Responds first if needed. */
  writeMessage(payload: Uint8Array | string, options?: { compressed?: boolean }): Promise<void>;
  /** Ends the response with trailers (default `grpc-status: 0`). Responds first if needed. */
  sendTrailers(trailers?: OutgoingHttpHeaders): void;
  /** One HEADERS frame with END_STREAM: `:status 200`, gRPC content type, grpc-status, grpc-message as given. */
  trailersOnly(status: number, message?: string, extra?: OutgoingHttpHeaders): void;
  /** RST_STREAM with `code`. */
  reset(code: number): void;
  /** END_STREAM on the last DATA frame and no trailers (responds with `{trailers: false}` first if needed). */
  endWithoutTrailers(): void;
  /** A non-gRPC answer: `:status`, content type and an optional body, then END_STREAM (no trailers). */
  respondHttp(status: number, contentType?: string, body?: string): void;
  /** GOAWAY on this stream's session; last-stream-id defaults to this stream's id. */
  goaway(code?: number, lastStreamID?: number): void;
  /** Destroys this stream's session (the TCP connection drops, no GOAWAY). */
  destroySession(): void;
  /** Resolves when the request half-closes or the stream closes, whichever comes first. */
  requestEnded(): Promise<void>;
  /** Resolves when the stream closes. */
  closed(): Promise<void>;
}

export type StreamHandler = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, ctl: StreamControl) => void | Promise<void>;

export interface FakeUpstream {
  readonly port: number;
  readonly scheme: 'grpc' | 'grpcs';
  /** `127.0.0.1:<port>`, the form APISIX's node maps take. */
  readonly address: string;
  /** The gateway's pool key for this node: `grpc://127.0.0.1:<port>`. */
  readonly nodeKey: string;
  readonly streams: readonly StreamRecord[];
  readonly sessions: readonly SessionRecord[];
  /** Errors a script threw (after the stream was reset with INTERNAL_ERROR). */
  readonly scriptErrors: readonly unknown[];
  /** Replaces the script for streams that arrive from now on. The default answers UNIMPLEMENTED trailers-only. */
  onStream(handler: StreamHandler): void;
  /** Streams currently open. */
  openStreams(): StreamRecord[];
  /** Resolves once `count` streams have arrived (in total), within `limitMs`. */
  waitForStreams(count: number, limitMs?: number): Promise<StreamRecord[]>;
  /** Resolves once no stream is open, within `limitMs`; the failure names the streams still open. */
  waitForAllClosed(limitMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startFakeUpstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const tls = options.tls === true;
  const settings = options.settings ?? {};
  let server: Http2Server | Http2SecureServer;
  if (tls) {
    const pem = await makeCert({ sans: options.sans ?? ['localhost', '127.0.0.1'] });
    server = http2.createSecureServer({ cert: pem.cert, key: pem.key, ALPNProtocols: ['h2'], allowHTTP1: false, settings });
  } else {
    server = http2.createServer({ settings });
  }

  const streams: StreamRecord[] = [];
  const sessions: SessionRecord[] = [];
  const sessionOf = new Map<Http2Session, SessionRecord>();
  const sockets = new Set<Socket>();
  const scriptErrors: unknown[] = [];
  let closing = false;
  let handler: StreamHandler = (_stream, _headers, ctl) => ctl.trailersOnly(12, 'fake upstream: no script for this stream');

  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  server.on('session', (session: ServerHttp2Session) => {
    const record = recordSession(session, sessions.length + 1);
    sessions.push(record);
    sessionOf.set(session, record);
  });
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    const session = stream.session === undefined ? undefined : sessionOf.get(stream.session);
    if (session === undefined) {
      stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    const { record, ctl } = recordStream(stream, headers, session);
    streams.push(record);
    const script = handler;
    Promise.resolve()
      .then(() => script(stream, headers, ctl))
      .catch((err: unknown) => {
        scriptErrors.push(err);
        if (!stream.destroyed && !stream.closed) {
          record.endedByScript = true;
          stream.close(constants.NGHTTP2_INTERNAL_ERROR);
        }
      });
  });
  if (tls) server.on('tlsClientError', () => undefined);
  server.on('sessionError', () => undefined);

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      const bound = server.address();
      if (bound !== null && typeof bound === 'object') resolve(bound.port);
      else reject(new Error('fake upstream: no port'));
    });
  });
  const scheme = tls ? 'grpcs' : 'grpc';

  let closed: Promise<void> | undefined;
  const fake: FakeUpstream = {
    port,
    scheme,
    address: `127.0.0.1:${port}`,
    nodeKey: `${scheme}://127.0.0.1:${port}`,
    streams,
    sessions,
    scriptErrors,
    onStream(next) {
      handler = next;
    },
    openStreams: () => streams.filter((s) => !s.closed),
    async waitForStreams(count, limitMs = DEFAULT_LIMIT_MS) {
      await waitUntil(() => streams.length >= count, limitMs, () => `fake upstream saw ${streams.length} of ${count} streams`);
      return streams.slice(0, count);
    },
    async waitForAllClosed(limitMs = DEFAULT_LIMIT_MS) {
      await waitUntil(
        () => streams.every((s) => s.closed),
        limitMs,
        () => `upstream streams still open: ${fake.openStreams().map((s) => `session ${s.session} stream ${s.id}`).join(', ')}`,
      );
    },
    close() {
      closed ??= (async () => {
        closing = true;
        for (const s of streams) if (!s.closed) s.endedByScript = true;
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const record of sessions) record.session.destroy();
        for (const socket of sockets) socket.destroy();
        await stopped;
      })();
      return closed;
    },
  };
  return fake;

  function recordSession(session: ServerHttp2Session, index: number): SessionRecord {
    const record: SessionRecord = {
      index,
      session,
      streams: 0,
      openStreams: 0,
      maxOpenStreams: 0,
      closed: false,
      goawaysSent: [],
      goaway(code = constants.NGHTTP2_NO_ERROR, lastStreamID) {
        const last = lastStreamID ?? Math.max(0, ...streams.filter((s) => s.session === index).map((s) => s.id));
        record.goawaysSent.push({ code, lastStreamID: last });
        session.goaway(code, last);
      },
      destroy() {
        for (const s of streams) if (s.session === index && !s.closed) s.endedByScript = true;
        session.destroy();
      },
    };
    session.on('error', () => undefined);
    session.on('close', () => {
      record.closed = true;
    });
    if (closing) session.destroy();
    return record;
  }

  function recordStream(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    session: SessionRecord,
  ): { record: StreamRecord; ctl: StreamControl } {
    let markClosed = (): void => undefined;
    const record: StreamRecord = {
      session: session.index,
      id: stream.id ?? 0,
      headers,
      bytesReceived: 0,
      messages: [],
      endStreamReceived: false,
      closed: false,
      rstCode: undefined,
      resetByPeer: false,
      aborted: false,
      endedByScript: false,
      closedPromise: new Promise<void>((resolve) => (markClosed = resolve)),
    };
    session.streams += 1;
    session.openStreams += 1;
    session.maxOpenStreams = Math.max(session.maxOpenStreams, session.openStreams);

    let pending: Buffer = Buffer.alloc(0);
    stream.on('data', (chunk: Buffer) => {
      record.bytesReceived += chunk.length;
      pending = Buffer.concat([pending, chunk]);
      const parsed = parseGrpcFrames(pending);
      record.messages.push(...parsed.messages);
      pending = parsed.rest;
    });
    stream.on('end', () => {
      record.endStreamReceived = true;
    });
    stream.on('aborted', () => {
      record.aborted = true;
    });
    stream.on('error', () => undefined); // the close code carries the information
    stream.on('close', () => {
      record.closed = true;
      record.rstCode = stream.rstCode;
      // A non-zero code the script did not send came from the peer: nghttp2 reports our own resets the same way,
      // hence endedByScript. A peer's RST_STREAM(NO_ERROR) before we finished surfaces as 'aborted'.
      record.resetByPeer = !record.endedByScript && (stream.rstCode !== constants.NGHTTP2_NO_ERROR || record.aborted);
      session.openStreams -= 1;
      markClosed();
    });

    let responded = false;
    let trailersPending: OutgoingHttpHeaders | undefined;
    const respond = (extra: OutgoingHttpHeaders = {}, opts: RespondOptions = {}): void => {
      const waitForTrailers = opts.trailers ?? true;
      responded = true;
      if (waitForTrailers) {
        stream.once('wantTrailers', () => stream.sendTrailers(trailersPending ?? { 'grpc-status': '0' }));
      }
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...extra }, { waitForTrailers });
    };
    const ctl: StreamControl = {
      record,
      stream,
      session,
      respond,
      writeMessage(payload, opts = {}) {
        if (!responded) respond();
        const bytes = typeof payload === 'string' ? helloMessage(payload) : payload;
        return new Promise<void>((resolve, reject) => {
          stream.write(grpcFrame(bytes, opts.compressed ?? false), (err?: Error | null) => (err ? reject(err) : resolve()));
        });
      },
      sendTrailers(trailers = { 'grpc-status': '0' }) {
        if (!responded) respond();
        trailersPending = trailers;
        stream.end();
      },
      trailersOnly(status, message, extra = {}) {
        responded = true;
        stream.respond(
          {
            ':status': 200,
            'content-type': 'application/grpc',
            'grpc-status': String(status),
            ...(message === undefined ? {} : { 'grpc-message': message }),
            ...extra,
          },
          { endStream: true },
        );
      },
      reset(code) {
        record.endedByScript = true;
        stream.close(code);
      },
      endWithoutTrailers() {
        if (!responded) respond({}, { trailers: false });
        else if (stream.listenerCount('wantTrailers') > 0) {
          throw new Error('fake upstream: respond(headers, { trailers: false }) before endWithoutTrailers()');
        }
        stream.end();
      },
      respondHttp(status, contentType = 'text/plain; charset=utf-8', body = '') {
        responded = true;
        stream.respond({ ':status': status, 'content-type': contentType }, { endStream: body === '' });
        if (body !== '') stream.end(body);
      },
      goaway(code, lastStreamID) {
        session.goaway(code, lastStreamID ?? record.id);
      },
      destroySession() {
        session.destroy();
      },
      requestEnded: () =>
        new Promise<void>((resolve) => {
          if (record.endStreamReceived || record.closed) return resolve();
          stream.once('end', () => resolve());
          stream.once('close', () => resolve());
        }),
      closed: () => record.closedPromise,
    };
    return { record, ctl };
  }
}

/** A gRPC length-prefixed message. */
export function grpcFrame(payload: Uint8Array, compressed = false): Buffer {
  const out = Buffer.alloc(GRPC_PREFIX_BYTES + payload.length);
  out.writeUInt8(compressed ? 1 : 0, 0);
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, GRPC_PREFIX_BYTES);
  return out;
}

/** Splits complete gRPC messages off the front of `buffer`; `rest` is an incomplete tail. */
export function parseGrpcFrames(buffer: Buffer): { messages: Buffer[]; rest: Buffer } {
  const messages: Buffer[] = [];
  let offset = 0;
  while (buffer.length - offset >= GRPC_PREFIX_BYTES) {
    const length = buffer.readUInt32BE(offset + 1);
    if (buffer.length - offset - GRPC_PREFIX_BYTES < length) break;
    messages.push(buffer.subarray(offset + GRPC_PREFIX_BYTES, offset + GRPC_PREFIX_BYTES + length));
    offset += GRPC_PREFIX_BYTES + length;
  }
  return { messages, rest: buffer.subarray(offset) };
}

/**
 * helloworld's HelloRequest/HelloReply (`string name|message = 1`) in protobuf wire format: tag 0x0a (field 1,
 * length-delimited), varint length, UTF-8 bytes. Enough for grpc-js clients to decode what the fake writes.
 */
export function helloMessage(text: string): Buffer {
  const utf8 = Buffer.from(text, 'utf8');
  const length: number[] = [];
  let n = utf8.length;
  do {
    length.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n >>>= 7;
  } while (n > 0);
  return Buffer.concat([Buffer.from([0x0a, ...length]), utf8]);
}

/** The string field 1 of a HelloRequest/HelloReply; '' when absent (proto3 leaves empty strings off the wire). */
export function decodeHelloMessage(bytes: Buffer): string {
  if (bytes.length === 0 || bytes[0] !== 0x0a) return '';
  let length = 0;
  let shift = 0;
  let offset = 1;
  for (;;) {
    const byte = bytes[offset++];
    if (byte === undefined) return '';
    length |= (byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) break;
    shift += 7;
  }
  return bytes.subarray(offset, offset + length).toString('utf8');
}

/** `promise`, or a rejection naming `what` after `limitMs`. The timer never outlives the wait. */
export function within<T>(promise: Promise<T>, limitMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no result within ${limitMs} ms: ${what}`)), limitMs);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/** Polls `predicate` every 5 ms; rejects with `describe()` after `limitMs`. */
export async function waitUntil(predicate: () => boolean, limitMs: number, describe: () => string): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`no result within ${limitMs} ms: ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
