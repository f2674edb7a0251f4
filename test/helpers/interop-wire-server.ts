/**
 * A TestService for the compression cases, written on node:http2 at the level of gRPC's length-prefixed messages
 * (PROTOCOL-HTTP2.md), because @grpc/grpc-js 1.14's server cannot play that part: it never compresses a response
 * (the compressed-flag byte it writes is always 0) and it hides `grpc-encoding` and each message's flag from
 * handlers. This server sees and records the bytes themselves, which is what the cases need to prove that the
 * gateway passed compressed messages through untouched:
 *
 * - request headers as received (`grpc-encoding: gzip`, `grpc-accept-encoding`), and every request message's
 *   flag byte and exact bytes;
 * - the exact bytes of every response it wrote, with the response headers.
 *
 * It implements UnaryCall, StreamingInputCall and StreamingOutputCall as the interop spec's compression cases use
 * them: `expect_compressed` is checked against the message's flag (a mismatch is INVALID_ARGUMENT, the probe of
 * client_compressed_unary / client_compressed_streaming), `response_compressed` and ResponseParameters.compressed
 * gzip the response message (flag 1) when the client accepts gzip.
 *
 * FullDuplexCall is a sleeping server (timeout_on_sleeping_server): it never answers, and records the RST_STREAM
 * code its stream was closed with. Unlike grpc-js it does not act on `grpc-timeout`, so a reset seen here came
 * from the peer, the gateway. Any other method answers UNIMPLEMENTED.
 */
import http2, {
  type Http2SecureServer,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import { gunzipSync, gzipSync } from 'node:zlib';
import { makeCert } from './certs.ts';
import {
  CALL_ID_HEADER,
  payloadSize,
  readSimpleRequest,
  readStreamingInputCallRequest,
  readStreamingOutputCallRequest,
  testMethod,
  zeroPayload,
  type BoolValue,
  type Payload,
} from './interop-proto.ts';

/** gRPC status codes used here (the gateway's shared/grpc-status.ts is not a test helper's to import). */
const Status = { OK: 0, INVALID_ARGUMENT: 3, UNIMPLEMENTED: 12, INTERNAL: 13 } as const;

/** PROTOCOL-HTTP2.md: Compressed-Flag (1 byte) + Message-Length (4 bytes, big-endian). */
export const FRAME_HEADER_BYTES = 5;
const SERVICE_PREFIX = '/grpc.testing.TestService/';

export interface WireMessage {
  /** The compressed-flag byte was 1. */
  compressed: boolean;
  /** The whole length-prefixed message as it was on the wire (flag, length, bytes). */
  frame: Buffer;
}

export interface WireCall {
  readonly path: string;
  readonly callId: string | undefined;
  readonly requestHeaders: IncomingHttpHeaders;
  /** Every request body byte received, in order. */
  requestBody: Buffer;
  requestMessages: WireMessage[];
  responseHeaders: OutgoingHttpHeaders | undefined;
  /** Every response body byte written, in order. */
  responseBody: Buffer;
  responseMessages: WireMessage[];
  status: number | undefined;
  statusMessage: string | undefined;
  /** The stream's RST_STREAM code once closed (0: closed cleanly), undefined while open. */
  closedWith: number | undefined;
}

export interface WireServer {
  readonly id: string;
  readonly port: number;
  readonly address: string;
  readonly tls: boolean;
  calls(): readonly WireCall[];
  callsWithId(callId: string): WireCall[];
  close(): Promise<void>;
}

export async function startWireServer(options: { id: string; tls?: boolean }): Promise<WireServer> {
  const pem = options.tls === true ? await makeCert({ sans: ['localhost', '127.0.0.1'] }) : undefined;
  const server: Http2Server | Http2SecureServer =
    pem === undefined
      ? http2.createServer()
      : http2.createSecureServer({ cert: pem.cert, key: pem.key, ALPNProtocols: ['h2'] });
  const observed: WireCall[] = [];
  const sessions = new Set<Http2Session>();
  server.on('session', (session: Http2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    session.on('error', () => undefined);
  });
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    stream.on('error', () => undefined);
    serve(stream, headers, observed);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const bound = server.address();
  const port = bound !== null && typeof bound === 'object' ? bound.port : 0;
  let closing: Promise<void> | undefined;
  return {
    id: options.id,
    port,
    address: `127.0.0.1:${port}`,
    tls: pem !== undefined,
    calls: () => observed,
    callsWithId: (callId) => observed.filter((c) => c.callId === callId),
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const session of sessions) session.destroy();
      });
      return closing;
    },
  };
}

function serve(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, observed: WireCall[]): void {
  const path = headers[':path'] ?? '';
  const callId = headers[CALL_ID_HEADER];
  const call: WireCall = {
    path,
    callId: typeof callId === 'string' ? callId : undefined,
    requestHeaders: { ...headers },
    requestBody: Buffer.alloc(0),
    requestMessages: [],
    responseHeaders: undefined,
    responseBody: Buffer.alloc(0),
    responseMessages: [],
    status: undefined,
    statusMessage: undefined,
    closedWith: undefined,
  };
  observed.push(call);
  stream.once('close', () => (call.closedWith = stream.rstCode));
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  if (path === `${SERVICE_PREFIX}FullDuplexCall`) return; // sleeping: no answer, ever
  stream.on('end', () => {
    call.requestBody = Buffer.concat(chunks);
    call.requestMessages = splitMessages(call.requestBody);
    const responder = new Responder(stream, call, acceptsGzip(headers));
    try {
      handle(path.startsWith(SERVICE_PREFIX) ? path.slice(SERVICE_PREFIX.length) : '', call, headers, responder);
    } catch (err) {
      responder.fail(Status.INTERNAL, `wire server: ${(err as Error).message}`);
    }
  });
}

function handle(method: string, call: WireCall, headers: IncomingHttpHeaders, responder: Responder): void {
  const encoding = headers['grpc-encoding'] ?? 'identity';
  if (encoding !== 'identity' && encoding !== 'gzip') {
    responder.fail(Status.UNIMPLEMENTED, `unsupported grpc-encoding ${String(encoding)}`);
    return;
  }
  // Decodes one request message, enforcing the spec's expect_compressed; undefined when the call was failed.
  const decode = <T extends { payload?: Payload | undefined; expect_compressed?: BoolValue | undefined }>(
    message: WireMessage,
    read: (bytes: Buffer) => T,
  ): T | undefined => {
    if (message.compressed && encoding !== 'gzip') {
      responder.fail(Status.INTERNAL, 'compressed message without grpc-encoding');
      return undefined;
    }
    const body = message.frame.subarray(FRAME_HEADER_BYTES);
    const request = read(message.compressed ? gunzipSync(body) : body);
    const expect = request.expect_compressed;
    if (expect !== undefined && expect.value !== message.compressed) {
      const message = expect.value ? 'Expected compressed request' : 'Expected uncompressed request';
      responder.fail(Status.INVALID_ARGUMENT, message);
      return undefined;
    }
    return request;
  };

  switch (method) {
    case 'UnaryCall': {
      const { requestDeserialize, responseSerialize } = testMethod('UnaryCall');
      const first = call.requestMessages[0];
      if (first === undefined) return responder.fail(Status.INTERNAL, 'no request message');
      const request = decode(first, (bytes) => readSimpleRequest(requestDeserialize(bytes)));
      if (request === undefined) return;
      const compress = request.response_compressed?.value === true;
      responder.start(compress);
      responder.message(responseSerialize({ payload: zeroPayload(request.response_size ?? 0) }), compress);
      return responder.ok();
    }
    case 'StreamingInputCall': {
      const { requestDeserialize, responseSerialize } = testMethod('StreamingInputCall');
      let total = 0;
      for (const message of call.requestMessages) {
        const request = decode(message, (bytes) => readStreamingInputCallRequest(requestDeserialize(bytes)));
        if (request === undefined) return;
        total += payloadSize(request);
      }
      responder.start(false);
      responder.message(responseSerialize({ aggregated_payload_size: total }), false);
      return responder.ok();
    }
    case 'StreamingOutputCall': {
      const { requestDeserialize, responseSerialize } = testMethod('StreamingOutputCall');
      const first = call.requestMessages[0];
      if (first === undefined) return responder.fail(Status.INTERNAL, 'no request message');
      const request = decode(first, (bytes) => readStreamingOutputCallRequest(requestDeserialize(bytes)));
      if (request === undefined) return;
      const parameters = request.response_parameters ?? [];
      responder.start(parameters.some((p) => p.compressed?.value === true));
      for (const p of parameters) {
        responder.message(responseSerialize({ payload: zeroPayload(p.size ?? 0) }), p.compressed?.value === true);
      }
      return responder.ok();
    }
    default:
      responder.fail(Status.UNIMPLEMENTED, `wire server does not implement ${call.path}`);
  }
}

/** Writes the response and records exactly what was written. */
class Responder {
  #gzip = false;

  private readonly stream: ServerHttp2Stream;
  private readonly call: WireCall;
  private readonly clientAcceptsGzip: boolean;

  constructor(stream: ServerHttp2Stream, call: WireCall, clientAcceptsGzip: boolean) {
    this.stream = stream;
    this.call = call;
    this.clientAcceptsGzip = clientAcceptsGzip;
  }

  /** Response headers; `grpc-encoding: gzip` when some message will be compressed and the client accepts gzip. */
  start(compressSome: boolean): void {
    this.#gzip = compressSome && this.clientAcceptsGzip;
    const headers: OutgoingHttpHeaders = {
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-accept-encoding': 'gzip,identity',
      ...(this.#gzip ? { 'grpc-encoding': 'gzip' } : {}),
    };
    this.call.responseHeaders = headers;
    this.stream.respond(headers, { waitForTrailers: true });
  }

  message(bytes: Buffer, compress: boolean): void {
    const compressed = compress && this.#gzip;
    const frame = frameMessage(compressed ? gzipSync(bytes) : bytes, compressed);
    this.call.responseMessages.push({ compressed, frame });
    this.call.responseBody = Buffer.concat([this.call.responseBody, frame]);
    this.stream.write(frame);
  }

  ok(): void {
    this.call.status = Status.OK;
    this.stream.once('wantTrailers', () => this.stream.sendTrailers({ 'grpc-status': String(Status.OK) }));
    this.stream.end();
  }

  /** A trailers-only response (PROTOCOL-HTTP2.md): one HEADERS frame with END_STREAM. */
  fail(code: number, message: string): void {
    this.call.status = code;
    this.call.statusMessage = message;
    const headers: OutgoingHttpHeaders = {
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-status': String(code),
      'grpc-message': encodeURIComponent(message),
    };
    this.call.responseHeaders = headers;
    this.stream.respond(headers, { endStream: true });
  }
}

function acceptsGzip(headers: IncomingHttpHeaders): boolean {
  const accepted = headers['grpc-accept-encoding'];
  const list = Array.isArray(accepted) ? accepted.join(',') : (accepted ?? '');
  return list.split(',').some((e) => e.trim() === 'gzip');
}

/** A length-prefixed message: the flag byte, the length, the (already compressed, if flagged) bytes. */
export function frameMessage(bytes: Buffer, compressed: boolean): Buffer {
  const frame = Buffer.alloc(FRAME_HEADER_BYTES + bytes.length);
  frame.writeUInt8(compressed ? 1 : 0, 0);
  frame.writeUInt32BE(bytes.length, 1);
  bytes.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

/** Splits a request body into its length-prefixed messages; a truncated tail is kept as a short frame. */
export function splitMessages(body: Buffer): WireMessage[] {
  const messages: WireMessage[] = [];
  let offset = 0;
  while (offset + FRAME_HEADER_BYTES <= body.length) {
    const length = body.readUInt32BE(offset + 1);
    const end = Math.min(body.length, offset + FRAME_HEADER_BYTES + length);
    messages.push({ compressed: body.readUInt8(offset) === 1, frame: body.subarray(offset, end) });
    offset = end;
  }
  return messages;
}
