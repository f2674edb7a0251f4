/**
 * The handlers of grpc.testing.TestService as the interop spec's server section describes them, for
 * interop-server.ts: payloads of the requested sizes, one response per ResponseParameters after its
 * `interval_us`, `response_status` as the call's status, `x-grpc-test-echo-initial` echoed in the initial metadata
 * and `x-grpc-test-echo-trailing-bin` in the trailers. UnimplementedCall has no handler, so grpc-js answers
 * UNIMPLEMENTED itself.
 *
 * Each call records itself in an ObservedCall as it goes (see interop-server.ts for what the fields prove), and a
 * call carrying `x-interop-hold-open` is never ended by the handler: it ignores the half-close and sends no status.
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
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CALL_ID_HEADER,
  ECHO_INITIAL_HEADER,
  ECHO_TRAILING_HEADER,
  HOLD_OPEN_HEADER,
  payloadSize,
  readSimpleRequest,
  readStreamingInputCallRequest,
  readStreamingOutputCallRequest,
  zeroPayload,
  type EchoStatus,
  type ResponseParameters,
  type StreamingOutputCallRequest,
  type TestMethod,
} from './interop-proto.ts';

/** OK as the plain number an EchoStatus (decoded from the request) carries. */
const OK: number = GrpcStatus.OK;

export interface ObservedCall {
  readonly method: TestMethod;
  readonly callId: string | undefined;
  /** Request metadata as the handler saw it (grpc-js strips grpc-timeout, grpc-encoding and te). */
  readonly metadata: Metadata;
  /** The call's deadline as grpc-js parsed it from grpc-timeout (Infinity without one). */
  readonly deadline: number;
  /** Body sizes of the request messages, in arrival order. */
  readonly requestSizes: number[];
  /** performance.now() of each response message handed to grpc-js, in order. */
  readonly sentAt: number[];
  halfClosed: boolean;
  /**
   * grpc-js emitted 'cancelled': RST_STREAM from the peer, the connection gone or its own deadline timer, but also
   * (grpc-js 1.14) after every call this server finished itself; see `cancelledFromOutside`.
   */
  cancelled: boolean;
  /** The status this server sent, if it sent one. */
  status: number | undefined;
}

interface SurfaceCall {
  readonly metadata: Metadata;
  getDeadline(): Date | number;
  once(event: 'cancelled', listener: () => void): unknown;
  removeListener(event: 'cancelled', listener: () => void): unknown;
}

/** `id` goes into SimpleResponse.server_id; every call is appended to `observed`. */
export function createInteropHandlers(id: string, observed: ObservedCall[]): UntypedServiceImplementation {
  const begin = (method: TestMethod, call: SurfaceCall): ObservedCall => {
    const callId = call.metadata.get(CALL_ID_HEADER)[0];
    const deadline = call.getDeadline();
    const record: ObservedCall = {
      method,
      callId: typeof callId === 'string' ? callId : undefined,
      metadata: call.metadata.clone(),
      deadline: typeof deadline === 'number' ? deadline : deadline.getTime(),
      requestSizes: [],
      sentAt: [],
      halfClosed: false,
      cancelled: false,
      status: undefined,
    };
    observed.push(record);
    call.once('cancelled', () => {
      record.cancelled = true;
    });
    return record;
  };

  const emptyCall = (call: ServerUnaryCall<object, object>, callback: sendUnaryData<object>): void => {
    const record = begin('EmptyCall', call);
    call.sendMetadata(echoInitial(call.metadata));
    record.status = GrpcStatus.OK;
    callback(null, {}, echoTrailing(call.metadata));
  };

  const unaryCall = (call: ServerUnaryCall<object, object>, callback: sendUnaryData<object>): void => {
    const record = begin('UnaryCall', call);
    const request = readSimpleRequest(call.request);
    record.requestSizes.push(payloadSize(request));
    call.sendMetadata(echoInitial(call.metadata));
    const failure = requestedFailure(request.response_status, call.metadata);
    if (failure !== undefined) {
      record.status = failure.code;
      callback(failure);
      return;
    }
    record.sentAt.push(performance.now());
    record.status = GrpcStatus.OK;
    callback(
      null,
      {
        payload: zeroPayload(request.response_size ?? 0),
        ...(request.fill_server_id === true ? { server_id: id } : {}),
      },
      echoTrailing(call.metadata),
    );
  };

  const streamingOutputCall = (call: ServerWritableStream<object, object>): void => {
    const record = begin('StreamingOutputCall', call);
    const request = readStreamingOutputCallRequest(call.request);
    record.requestSizes.push(payloadSize(request));
    call.sendMetadata(echoInitial(call.metadata));
    void respond(call, record, request).then((ended) => {
      if (ended) return;
      finish(call, record, request.response_status);
    });
  };

  // Requests that arrive before the 'data' listener stay buffered in the paused readable.
  const streamingInputCall = (call: ServerReadableStream<object, object>, callback: sendUnaryData<object>): void => {
    const record = begin('StreamingInputCall', call);
    call.sendMetadata(echoInitial(call.metadata));
    let total = 0;
    call.on('data', (message: object) => {
      const size = payloadSize(readStreamingInputCallRequest(message));
      record.requestSizes.push(size);
      total += size;
    });
    call.on('end', () => {
      record.halfClosed = true;
      if (holdsOpen(call.metadata)) return;
      record.status = GrpcStatus.OK;
      callback(null, { aggregated_payload_size: total }, echoTrailing(call.metadata));
    });
    call.on('error', () => undefined); // a cancelled call errors its readable; 'cancelled' has recorded it
  };

  const fullDuplexCall = (call: ServerDuplexStream<object, object>): void => {
    const record = begin('FullDuplexCall', call);
    call.sendMetadata(echoInitial(call.metadata));
    // Responses to successive requests go out in request order: each waits for the previous one's intervals.
    let chain = Promise.resolve(false);
    call.on('data', (message: object) => {
      const request = readStreamingOutputCallRequest(message);
      record.requestSizes.push(payloadSize(request));
      chain = chain.then(async (ended) => {
        if (ended) return true;
        if (await respond(call, record, request)) return true;
        if (request.response_status === undefined || request.response_status.code === OK) return false;
        finish(call, record, request.response_status);
        return true;
      });
    });
    call.on('end', () => {
      record.halfClosed = true;
      if (holdsOpen(call.metadata)) return;
      chain = chain.then((ended) => {
        if (!ended) finish(call, record, undefined);
        return true;
      });
    });
    call.on('error', () => undefined);
  };

  const halfDuplexCall = (call: ServerDuplexStream<object, object>): void => {
    const record = begin('HalfDuplexCall', call);
    call.sendMetadata(echoInitial(call.metadata));
    const requests: StreamingOutputCallRequest[] = [];
    call.on('data', (message: object) => {
      const request = readStreamingOutputCallRequest(message);
      record.requestSizes.push(payloadSize(request));
      requests.push(request);
    });
    call.on('end', () => {
      record.halfClosed = true;
      void (async () => {
        for (const request of requests) if (await respond(call, record, request)) return;
        finish(call, record, undefined);
      })();
    });
    call.on('error', () => undefined);
  };

  return {
    EmptyCall: emptyCall,
    UnaryCall: unaryCall,
    StreamingOutputCall: streamingOutputCall,
    StreamingInputCall: streamingInputCall,
    FullDuplexCall: fullDuplexCall,
    HalfDuplexCall: halfDuplexCall,
    // UnimplementedCall left out on purpose: grpc-js answers UNIMPLEMENTED for it.
  };
}

interface WritableCall extends SurfaceCall {
  write(message: object): boolean;
  end(metadata?: Metadata): unknown;
  emit(event: 'error', error: ServerErrorResponse): boolean;
  readonly cancelled: boolean;
}

/** Sends one response per ResponseParameters, each after its interval; true when the call was cancelled meanwhile. */
async function respond(call: WritableCall, record: ObservedCall, request: StreamingOutputCallRequest): Promise<boolean> {
  for (const parameters of request.response_parameters ?? []) {
    if (!(await waitInterval(call, parameters))) return true;
    if (call.cancelled) return true;
    record.sentAt.push(performance.now());
    call.write({ payload: zeroPayload(parameters.size ?? 0) });
  }
  return call.cancelled;
}

function finish(call: WritableCall, record: ObservedCall, status: EchoStatus | undefined): void {
  if (call.cancelled) return;
  const failure = requestedFailure(status, call.metadata);
  if (failure !== undefined) {
    record.status = failure.code;
    call.emit('error', failure);
    return;
  }
  record.status = GrpcStatus.OK;
  call.end(echoTrailing(call.metadata));
}

/** Resolves true after the interval, or false as soon as the call is cancelled. */
async function waitInterval(call: SurfaceCall, parameters: ResponseParameters): Promise<boolean> {
  const ms = (parameters.interval_us ?? 0) / 1000;
  if (ms <= 0) return true;
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

/** The spec's `response_status`: a non-OK code ends the call with it; trailers still carry the echo. */
function requestedFailure(status: EchoStatus | undefined, metadata: Metadata): ServerErrorResponse | undefined {
  if (status === undefined || status.code === OK) return undefined;
  return Object.assign(new Error(status.message), {
    code: status.code,
    details: status.message,
    metadata: echoTrailing(metadata),
  });
}

function holdsOpen(metadata: Metadata): boolean {
  return metadata.get(HOLD_OPEN_HEADER).length > 0;
}

function echoInitial(request: Metadata): Metadata {
  const out = new Metadata();
  for (const value of request.get(ECHO_INITIAL_HEADER)) out.add(ECHO_INITIAL_HEADER, value);
  return out;
}

function echoTrailing(request: Metadata): Metadata {
  const out = new Metadata();
  for (const value of request.get(ECHO_TRAILING_HEADER)) out.add(ECHO_TRAILING_HEADER, value);
  return out;
}
