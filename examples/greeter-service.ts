/**
 * The Greeter's four methods (api7/grpc_server_example's behaviour) and what they record about each call, so tests
 * can see which upstream node served a call and what reached it through the gateway.
 *
 * Every call first records itself, then honours two request headers that let gateway tests provoke upstream
 * behaviour without a second server:
 *   x-greeter-delay-ms: N   wait N ms before answering (deadline tests); the wait ends early if the call is cancelled
 *   x-greeter-status: C     answer with gRPC status C (1..16) as a trailers-only response (status passthrough tests)
 * then sends initial metadata `x-served-by: <id>` (also put in the trailers of a failure) and answers.
 */
import {
  Metadata,
  status as GrpcStatus,
  type sendUnaryData,
  type ServerDuplexStream,
  type ServerErrorResponse,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { setTimeout as sleep } from 'node:timers/promises';
import { flattenMetadata } from './metadata-text.ts';
import type { GreeterMethod, HelloReply, HelloRequest } from './greeter-proto.ts';

export const SERVED_BY_HEADER = 'x-served-by';
export const DELAY_HEADER = 'x-greeter-delay-ms';
export const STATUS_HEADER = 'x-greeter-status';

/** api7/grpc_server_example's SayHelloServerStream sends five replies. */
export const SERVER_STREAM_REPLIES = 5;
/** The bidirectional stream's last reply, after the client half-closes. */
export const STREAM_ENDED_MESSAGE = 'stream ended';
/** Keeps a typo in a test from parking a call for hours. */
const MAX_DELAY_MS = 60_000;

export interface ReceivedCall {
  method: GreeterMethod;
  /** `:path`, e.g. /helloworld.Greeter/SayHello. */
  path: string;
  /** `:authority` as the server saw it (grpc-js falls back to `host`). */
  authority: string;
  /** Request metadata, pseudo-headers excluded; repeated keys joined with ", ", binary values in base64. */
  metadata: Record<string, string>;
  /** Remote address:port of the connection the call came on (the gateway, when proxied). */
  peer: string;
}

/** Counters per method and the last call: bounded, so a long-running example server does not grow. */
export interface CallRecorder {
  readonly counts: Record<GreeterMethod, number>;
  last: ReceivedCall | undefined;
}

export function createRecorder(): CallRecorder {
  return {
    counts: { SayHello: 0, SayHelloServerStream: 0, SayHelloClientStream: 0, SayHelloBidirectionalStream: 0 },
    last: undefined,
  };
}

interface SurfaceCall {
  readonly metadata: Metadata;
  cancelled: boolean;
  getPath(): string;
  getHost(): string;
  getPeer(): string;
  once(event: 'cancelled', listener: () => void): unknown;
  removeListener(event: 'cancelled', listener: () => void): unknown;
}

type Outcome = { kind: 'proceed' } | { kind: 'fail'; error: ServerErrorResponse } | { kind: 'cancelled' };

/** `id` is read per call: the server learns its default id (its address) only once it listens. */
export function createGreeterHandlers(id: () => string, recorder: CallRecorder): UntypedServiceImplementation {
  const servedBy = (): Metadata => {
    const metadata = new Metadata();
    metadata.set(SERVED_BY_HEADER, id());
    return metadata;
  };

  const begin = async (call: SurfaceCall, method: GreeterMethod): Promise<Outcome> => {
    recorder.counts[method] += 1;
    recorder.last = {
      method,
      path: call.getPath(),
      authority: call.getHost(),
      metadata: flattenMetadata(call.metadata),
      peer: call.getPeer(),
    };
    const delay = Math.min(integerHeader(call.metadata, DELAY_HEADER) ?? 0, MAX_DELAY_MS);
    if (delay > 0 && !(await waitUnlessCancelled(call, delay))) return { kind: 'cancelled' };
    if (call.cancelled) return { kind: 'cancelled' };
    const code = askedStatus(call.metadata);
    if (code !== undefined) {
      const details = `greeter ${id()} was asked to fail with status ${code}`;
      return { kind: 'fail', error: Object.assign(new Error(details), { code, details, metadata: servedBy() }) };
    }
    return { kind: 'proceed' };
  };

  const sayHello = (call: ServerUnaryCall<HelloRequest, HelloReply>, callback: sendUnaryData<HelloReply>): void => {
    void begin(call, 'SayHello').then((outcome) => {
      if (outcome.kind === 'cancelled') return;
      if (outcome.kind === 'fail') return callback(outcome.error);
      call.sendMetadata(servedBy());
      callback(null, { message: `Hello ${call.request.name ?? ''}` });
    });
  };

  const sayHelloServerStream = (call: ServerWritableStream<HelloRequest, HelloReply>): void => {
    void begin(call, 'SayHelloServerStream').then((outcome) => {
      if (outcome.kind === 'cancelled') return;
      if (outcome.kind === 'fail') return void call.emit('error', outcome.error);
      call.sendMetadata(servedBy());
      for (let i = 0; i < SERVER_STREAM_REPLIES; i += 1) call.write({ message: `Hello ${call.request.name ?? ''}` });
      call.end();
    });
  };

  // Requests that arrive while `begin` waits stay buffered in the paused readable until a 'data' listener is added.
  const sayHelloClientStream = (
    call: ServerReadableStream<HelloRequest, HelloReply>,
    callback: sendUnaryData<HelloReply>,
  ): void => {
    void begin(call, 'SayHelloClientStream').then((outcome) => {
      if (outcome.kind === 'cancelled') return;
      if (outcome.kind === 'fail') return callback(outcome.error);
      call.sendMetadata(servedBy());
      const parts: string[] = [];
      call.on('data', (request: HelloRequest) => parts.push(`Hello ${request.name ?? ''}!`));
      call.on('end', () => callback(null, { message: parts.join('') }));
    });
  };

  const sayHelloBidirectionalStream = (call: ServerDuplexStream<HelloRequest, HelloReply>): void => {
    void begin(call, 'SayHelloBidirectionalStream').then((outcome) => {
      if (outcome.kind === 'cancelled') return;
      if (outcome.kind === 'fail') return void call.emit('error', outcome.error);
      call.sendMetadata(servedBy());
      call.on('data', (request: HelloRequest) => call.write({ message: `Hello ${request.name ?? ''}` }));
      call.on('end', () => {
        call.write({ message: STREAM_ENDED_MESSAGE });
        call.end();
      });
    });
  };

  return {
    SayHello: sayHello,
    SayHelloServerStream: sayHelloServerStream,
    SayHelloClientStream: sayHelloClientStream,
    SayHelloBidirectionalStream: sayHelloBidirectionalStream,
  };
}

/** Resolves true after `ms`, or false as soon as the call is cancelled (client gone, deadline, RST_STREAM). */
async function waitUnlessCancelled(call: SurfaceCall, ms: number): Promise<boolean> {
  const abort = new AbortController();
  const onCancelled = (): void => abort.abort();
  call.once('cancelled', onCancelled);
  try {
    await sleep(ms, undefined, { signal: abort.signal });
    return true;
  } catch {
    return false;
  } finally {
    call.removeListener('cancelled', onCancelled);
  }
}

/** gRPC's error statuses (all but OK) by number. */
const ERROR_STATUSES = new Map<number, GrpcStatus>(
  Object.values(GrpcStatus)
    .filter((status) => typeof status === 'number')
    .filter((status) => status !== GrpcStatus.OK)
    .map((status) => [status, status]),
);

/** The error status the client asked for in STATUS_HEADER, if it names one. */
function askedStatus(metadata: Metadata): GrpcStatus | undefined {
  const code = integerHeader(metadata, STATUS_HEADER);
  return code === undefined ? undefined : ERROR_STATUSES.get(code);
}

function integerHeader(metadata: Metadata, key: string): number | undefined {
  const value = metadata.get(key)[0];
  if (typeof value !== 'string' || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value.trim());
}
