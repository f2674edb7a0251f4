/**
 * The interop client side: real @grpc/grpc-js channels to the gateway (h2c, or TLS through examples/client-tls.ts
 * so that SNI and verification behave as grpcurl's do), and one promise helper per TestService call shape that
 * reports the decoded responses, when each arrived (performance.now(), the clock the interop servers record
 * with), the response headers and the final status with its trailers.
 *
 * Each channel gets its own subchannel pool (`grpc.use_local_subchannel_pool`), so one client is one HTTP/2
 * connection to the gateway, and cases that say "on one connection" mean it.
 */
import {
  Client,
  compressionAlgorithms,
  credentials,
  Metadata,
  status as GrpcStatus,
  type CallOptions,
  type ChannelOptions,
  type ClientDuplexStream,
  type ClientReadableStream,
  type ClientWritableStream,
  type StatusObject,
} from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { clientTlsCredentials, type ClientTlsOptions } from '../../examples/client-tls.ts';
import {
  CALL_ID_HEADER,
  readSimpleResponse,
  readStreamingInputCallResponse,
  readStreamingOutputCallResponse,
  testMethod,
  unimplementedServiceMethod,
  type SimpleRequest,
  type SimpleResponse,
  type StreamingInputCallRequest,
  type StreamingInputCallResponse,
  type StreamingOutputCallRequest,
  type StreamingOutputCallResponse,
} from './interop-proto.ts';

/** grpc-js WriteFlags.NoCompress: this message goes uncompressed even on a compressing channel. */
export const WRITE_NO_COMPRESS = 2;

export interface InteropClientOptions {
  /** TLS to the gateway's TLS listener; h2c when absent. */
  tls?: ClientTlsOptions;
  /** `:authority` of every call: selects the gateway route by `hosts`. */
  authority: string;
  /** Compress every request message with gzip (grpc.default_compression_algorithm). */
  gzip?: boolean;
  channelOptions?: ChannelOptions;
}

const GZIP_ALGORITHM = compressionAlgorithms.gzip;

export function interopClient(address: string, options: InteropClientOptions): Client {
  return new Client(address, options.tls === undefined ? credentials.createInsecure() : clientTlsCredentials(options.tls), {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.default_authority': options.authority,
    ...(options.gzip === true ? { 'grpc.default_compression_algorithm': GZIP_ALGORITHM } : {}),
    ...options.channelOptions,
  });
}

export function newCallId(): string {
  return randomUUID();
}

/** Metadata carrying the call id, plus any extra entries. */
export function callMetadata(callId: string, extra: Record<string, string | Buffer> = {}): Metadata {
  const metadata = new Metadata();
  metadata.set(CALL_ID_HEADER, callId);
  for (const [key, value] of Object.entries(extra)) metadata.set(key, value);
  return metadata;
}

export interface Outcome<T> {
  /** Responses in arrival order. */
  messages: T[];
  /** performance.now() of each response's arrival. */
  receivedAt: number[];
  /** Response headers; undefined for a trailers-only response. */
  headers: Metadata | undefined;
  /** Final status; its metadata are the trailers. */
  status: StatusObject;
}

interface CallEvents {
  on(event: 'metadata', listener: (metadata: Metadata) => void): unknown;
  once(event: 'status', listener: (status: StatusObject) => void): unknown;
}

/** Resolves with the status and the headers seen before it. */
function settle(call: CallEvents): { status: Promise<StatusObject>; headers: () => Metadata | undefined } {
  let headers: Metadata | undefined;
  call.on('metadata', (received) => (headers = received));
  return { status: new Promise((resolve) => call.once('status', resolve)), headers: () => headers };
}

export async function unaryCall(
  client: Client,
  request: SimpleRequest,
  metadata: Metadata,
  options: CallOptions = {},
): Promise<Outcome<SimpleResponse>> {
  const { path, requestSerialize, responseDeserialize } = testMethod('UnaryCall');
  const messages: SimpleResponse[] = [];
  const receivedAt: number[] = [];
  const onReply = (_e: unknown, reply?: object): void => {
    if (reply === undefined) return;
    receivedAt.push(performance.now());
    messages.push(readSimpleResponse(reply));
  };
  const call = client.makeUnaryRequest(path, requestSerialize, responseDeserialize, request, metadata, options, onReply);
  const { status, headers } = settle(call);
  const final = await status;
  return { messages, receivedAt, headers: headers(), status: final };
}

/** An Empty → Empty call: TestService/EmptyCall or /UnimplementedCall, or UnimplementedService/UnimplementedCall. */
export async function emptyCall(
  client: Client,
  method: 'EmptyCall' | 'UnimplementedCall' | 'UnimplementedService',
  metadata: Metadata,
): Promise<Outcome<object>> {
  const definition = method === 'UnimplementedService' ? unimplementedServiceMethod() : testMethod(method);
  const messages: object[] = [];
  const receivedAt: number[] = [];
  const call = client.makeUnaryRequest(
    definition.path,
    definition.requestSerialize,
    definition.responseDeserialize,
    {},
    metadata,
    {},
    (_e, reply) => {
      if (reply === undefined) return;
      receivedAt.push(performance.now());
      messages.push(reply);
    },
  );
  const { status, headers } = settle(call);
  const final = await status;
  return { messages, receivedAt, headers: headers(), status: final };
}

export function streamingOutputCall(
  client: Client,
  request: StreamingOutputCallRequest,
  metadata: Metadata,
  options: CallOptions = {},
): Promise<Outcome<StreamingOutputCallResponse>> {
  const { path, requestSerialize, responseDeserialize } = testMethod('StreamingOutputCall');
  const call = client.makeServerStreamRequest(path, requestSerialize, responseDeserialize, request, metadata, options);
  return collect(call, readStreamingOutputCallResponse);
}

export interface InputStream {
  call: ClientWritableStream<object>;
  outcome: Promise<Outcome<StreamingInputCallResponse>>;
  /** Writes a request; `noCompress` sends it uncompressed on a compressing channel. */
  write(request: StreamingInputCallRequest, noCompress?: boolean): void;
}

export function streamingInputCall(client: Client, metadata: Metadata, options: CallOptions = {}): InputStream {
  const { path, requestSerialize, responseDeserialize } = testMethod('StreamingInputCall');
  const messages: StreamingInputCallResponse[] = [];
  const receivedAt: number[] = [];
  const onReply = (_e: unknown, reply?: object): void => {
    if (reply === undefined) return;
    receivedAt.push(performance.now());
    messages.push(readStreamingInputCallResponse(reply));
  };
  const call = client.makeClientStreamRequest(path, requestSerialize, responseDeserialize, metadata, options, onReply);
  call.on('error', () => undefined); // the status carries the failure
  const { status, headers } = settle(call);
  return {
    call,
    outcome: status.then((final) => ({ messages, receivedAt, headers: headers(), status: final })),
    write(request, noCompress = false) {
      if (noCompress) call.write(request, WRITE_NO_COMPRESS);
      else call.write(request);
    },
  };
}

/** An open FullDuplexCall with a reader that hands out responses one at a time, in order. */
export interface DuplexStream {
  call: ClientDuplexStream<object, object>;
  write(request: StreamingOutputCallRequest): void;
  /** The next response; rejects if the call ends before one arrives. */
  next(): Promise<StreamingOutputCallResponse>;
  /** Resolves once the call has ended and every response has been read off the stream. */
  outcome: Promise<Outcome<StreamingOutputCallResponse>>;
}

export function fullDuplexCall(client: Client, metadata: Metadata, options: CallOptions = {}): DuplexStream {
  const { path, requestSerialize, responseDeserialize } = testMethod('FullDuplexCall');
  const call = client.makeBidiStreamRequest(path, requestSerialize, responseDeserialize, metadata, options);
  const messages: StreamingOutputCallResponse[] = [];
  const receivedAt: number[] = [];
  let read = 0;
  let ended = false;
  let waiter: { resolve: (m: StreamingOutputCallResponse) => void; reject: (e: Error) => void } | undefined;
  const deliver = (): void => {
    if (waiter === undefined) return;
    const message = messages[read];
    if (message !== undefined) {
      read += 1;
      const { resolve } = waiter;
      waiter = undefined;
      resolve(message);
    } else if (ended) {
      const { reject } = waiter;
      waiter = undefined;
      reject(new Error(`the call ended after ${messages.length} responses`));
    }
  };
  call.on('data', (reply: object) => {
    receivedAt.push(performance.now());
    messages.push(readStreamingOutputCallResponse(reply));
    deliver();
  });
  const drained = streamDrained(call).then(() => {
    ended = true;
    deliver();
  });
  const { status, headers } = settle(call);
  return {
    call,
    write: (request) => void call.write(request),
    next: () =>
      new Promise((resolve, reject) => {
        waiter = { resolve, reject };
        deliver();
      }),
    outcome: Promise.all([status, drained]).then(([final]) => ({ messages, receivedAt, headers: headers(), status: final })),
  };
}

/** Reads a response stream to its end: buffered messages may still be delivered after 'status'. */
function collect<T>(stream: ClientReadableStream<object>, read: (reply: object) => T): Promise<Outcome<T>> {
  const messages: T[] = [];
  const receivedAt: number[] = [];
  stream.on('data', (reply: object) => {
    receivedAt.push(performance.now());
    messages.push(read(reply));
  });
  const { status, headers } = settle(stream);
  return Promise.all([status, streamDrained(stream)]).then(([final]) => ({
    messages,
    receivedAt,
    headers: headers(),
    status: final,
  }));
}

function streamDrained(stream: ClientReadableStream<object>): Promise<void> {
  return new Promise((resolve) => {
    // A failed stream emits 'error' too; the status carries the same information.
    stream.on('error', () => resolve());
    stream.once('end', () => resolve());
    stream.once('close', () => resolve());
  });
}

/** `NAME: details` of a status, for assertion messages. */
export function statusText(status: StatusObject): string {
  const name = Object.entries(GrpcStatus).find(([, code]) => code === status.code)?.[0] ?? String(status.code);
  return `${name}: ${status.details}`;
}
