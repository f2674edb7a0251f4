/**
 * grpc.testing.TestService for the conformance suite: loads test/conformance/test.proto once, and turns the plain
 * objects proto-loader produces into the typed shapes below (and back). Both the interop servers and the clients
 * use these, so the field numbers only have to agree with themselves (they are grpc's anyway).
 *
 * Decoded messages come out of protobufjs as plain objects with zero-valued fields left out (proto3), `bytes` as
 * Buffers and enums by name; the readers here check each field's type instead of casting.
 */
import { loadSync, type MethodDefinition, type ServiceDefinition } from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

export const TEST_PROTO = fileURLToPath(new URL('../conformance/test.proto', import.meta.url));
export const TEST_SERVICE = 'grpc.testing.TestService';
export const UNIMPLEMENTED_SERVICE = 'grpc.testing.UnimplementedService';

export const TEST_METHODS = [
  'EmptyCall',
  'UnaryCall',
  'StreamingOutputCall',
  'StreamingInputCall',
  'FullDuplexCall',
  'HalfDuplexCall',
  'UnimplementedCall',
] as const;
export type TestMethod = (typeof TEST_METHODS)[number];

/** Sent by the interop client with every call so that a server's record can be matched to the test's call. */
export const CALL_ID_HEADER = 'x-interop-call-id';
/** The interop spec's echo headers (custom_metadata). */
export const ECHO_INITIAL_HEADER = 'x-grpc-test-echo-initial';
export const ECHO_TRAILING_HEADER = 'x-grpc-test-echo-trailing-bin';
/**
 * Not in the interop spec: asks the server never to end this call itself (no answer to the half-close, no status
 * after the responses), so that only a cancellation can end it. See interop-server.ts for why the cancel cases
 * need it.
 */
export const HOLD_OPEN_HEADER = 'x-interop-hold-open';

export interface Payload {
  type?: 'COMPRESSABLE' | undefined;
  body?: Buffer | undefined;
}
export interface BoolValue {
  value: boolean;
}
export interface EchoStatus {
  code: number;
  message: string;
}
export interface SimpleRequest {
  response_size?: number | undefined;
  payload?: Payload | undefined;
  response_compressed?: BoolValue | undefined;
  response_status?: EchoStatus | undefined;
  expect_compressed?: BoolValue | undefined;
  fill_server_id?: boolean | undefined;
}
export interface SimpleResponse {
  payload?: Payload | undefined;
  server_id?: string | undefined;
}
export interface StreamingInputCallRequest {
  payload?: Payload | undefined;
  expect_compressed?: BoolValue | undefined;
}
export interface StreamingInputCallResponse {
  aggregated_payload_size?: number | undefined;
}
export interface ResponseParameters {
  size?: number | undefined;
  interval_us?: number | undefined;
  compressed?: BoolValue | undefined;
}
export interface StreamingOutputCallRequest {
  response_parameters?: ResponseParameters[] | undefined;
  payload?: Payload | undefined;
  response_status?: EchoStatus | undefined;
}
export interface StreamingOutputCallResponse {
  payload?: Payload | undefined;
}

let services: { test: ServiceDefinition; unimplemented: ServiceDefinition } | undefined;

function load(): { test: ServiceDefinition; unimplemented: ServiceDefinition } {
  if (services !== undefined) return services;
  const definition = loadSync(TEST_PROTO, { keepCase: true, longs: Number, enums: String, defaults: false });
  const pick = (name: string): ServiceDefinition => {
    const found = definition[name];
    // Messages and enums carry a `format`; services are plain maps of method definitions.
    if (found === undefined || 'format' in found) throw new Error(`test.proto has no service ${name}`);
    return found;
  };
  services = { test: pick(TEST_SERVICE), unimplemented: pick(UNIMPLEMENTED_SERVICE) };
  return services;
}

export function testService(): ServiceDefinition {
  return load().test;
}

export function testMethod(method: TestMethod): MethodDefinition<object, object> {
  const found = load().test[method];
  if (found === undefined) throw new Error(`test.proto has no TestService.${method}`);
  return found;
}

export function unimplementedServiceMethod(): MethodDefinition<object, object> {
  const found = load().unimplemented.UnimplementedCall;
  if (found === undefined) throw new Error('test.proto has no UnimplementedService.UnimplementedCall');
  return found;
}

/** A payload of `size` zero bytes: the interop spec's COMPRESSABLE body. */
export function zeroPayload(size: number): Payload {
  return { type: 'COMPRESSABLE', body: Buffer.alloc(size) };
}

// ---- readers: decoded plain object → typed message --------------------------------------------------------------

function field(message: unknown, name: string): unknown {
  if (typeof message !== 'object' || message === null) return undefined;
  return Object.getOwnPropertyDescriptor(message, name)?.value as unknown;
}

function numberField(message: unknown, name: string): number | undefined {
  const value = field(message, name);
  return typeof value === 'number' ? value : undefined;
}

function readPayload(value: unknown): Payload | undefined {
  if (value === undefined) return undefined;
  const body = field(value, 'body');
  return { type: 'COMPRESSABLE', body: Buffer.isBuffer(body) ? body : Buffer.alloc(0) };
}

function readBoolValue(value: unknown): BoolValue | undefined {
  if (value === undefined) return undefined;
  return { value: field(value, 'value') === true };
}

function readEchoStatus(value: unknown): EchoStatus | undefined {
  if (value === undefined) return undefined;
  const message = field(value, 'message');
  return { code: numberField(value, 'code') ?? 0, message: typeof message === 'string' ? message : '' };
}

export function readSimpleRequest(message: unknown): SimpleRequest {
  return {
    response_size: numberField(message, 'response_size'),
    payload: readPayload(field(message, 'payload')),
    response_compressed: readBoolValue(field(message, 'response_compressed')),
    response_status: readEchoStatus(field(message, 'response_status')),
    expect_compressed: readBoolValue(field(message, 'expect_compressed')),
    fill_server_id: field(message, 'fill_server_id') === true,
  };
}

export function readSimpleResponse(message: unknown): SimpleResponse {
  const serverId = field(message, 'server_id');
  return {
    payload: readPayload(field(message, 'payload')),
    server_id: typeof serverId === 'string' ? serverId : undefined,
  };
}

export function readStreamingInputCallRequest(message: unknown): StreamingInputCallRequest {
  return {
    payload: readPayload(field(message, 'payload')),
    expect_compressed: readBoolValue(field(message, 'expect_compressed')),
  };
}

export function readStreamingInputCallResponse(message: unknown): StreamingInputCallResponse {
  return { aggregated_payload_size: numberField(message, 'aggregated_payload_size') };
}

export function readStreamingOutputCallRequest(message: unknown): StreamingOutputCallRequest {
  const list = field(message, 'response_parameters');
  const parameters = Array.isArray(list)
    ? list.map((p: unknown): ResponseParameters => ({
        size: numberField(p, 'size'),
        interval_us: numberField(p, 'interval_us'),
        compressed: readBoolValue(field(p, 'compressed')),
      }))
    : undefined;
  return {
    response_parameters: parameters,
    payload: readPayload(field(message, 'payload')),
    response_status: readEchoStatus(field(message, 'response_status')),
  };
}

export function readStreamingOutputCallResponse(message: unknown): StreamingOutputCallResponse {
  return { payload: readPayload(field(message, 'payload')) };
}

/** Body size of a decoded message's payload; 0 when absent (proto3 leaves an empty body off the wire). */
export function payloadSize(message: { payload?: Payload | undefined }): number {
  return message.payload?.body?.length ?? 0;
}
