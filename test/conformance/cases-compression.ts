/**
 * The interop spec's compression cases (client_compressed_unary, server_compressed_unary,
 * client_compressed_streaming, server_compressed_streaming) and a byte-for-byte check, against the byte-level
 * TestService of interop-wire-server.ts, which sees each message's compressed flag and can compress responses
 * (grpc-js 1.14's server can do neither). The gateway never decodes messages: `grpc-encoding`,
 * `grpc-accept-encoding`, the flag byte and the gzip bytes must all arrive as they were sent, in both directions.
 *
 * grpc-js clients compress requests with `grpc.default_compression_algorithm` (gzip) and skip one message with
 * WriteFlags.NoCompress; they decompress gzip responses.
 */
import assert from 'node:assert/strict';
import { gunzipSync, gzipSync } from 'node:zlib';
import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  callMetadata,
  newCallId,
  streamingInputCall,
  streamingOutputCall,
  unaryCall,
} from '../helpers/interop-client.ts';
import { rawUnaryCall } from '../helpers/interop-raw-client.ts';
import {
  CALL_ID_HEADER,
  payloadSize,
  readSimpleResponse,
  testMethod,
  zeroPayload,
  type SimpleRequest,
} from '../helpers/interop-proto.ts';
import { frameMessage, FRAME_HEADER_BYTES } from '../helpers/interop-wire-server.ts';
import { CLIENT_STREAM_SIZES, DUPLEX_RESPONSE, LARGE_REQUEST, LARGE_RESPONSE } from './cases-interop.ts';
import { assertOk, assertStatus, assertZeros } from './checks.ts';
import { authorityOf, type ConformanceCase } from './context.ts';

/** The compressed streaming cases' second messages (the spec's sizes). */
const SECOND_INPUT = 45_904;
const SECOND_OUTPUT = 92_653;
/** The byte-for-byte case's message size. */
const RAW_PAYLOAD = 1_000;

/** The request bytes grpc-js sends for `request` on a gzip channel: zlib.gzip with defaults, as gzipSync. */
function gzipFrame(request: SimpleRequest): Buffer {
  return frameMessage(gzipSync(testMethod('UnaryCall').requestSerialize(request)), true);
}

export const COMPRESSION_CASES: readonly ConformanceCase[] = [
  {
    name: 'client_compressed_unary',
    async run(ctx) {
      const base = { response_size: LARGE_RESPONSE, payload: zeroPayload(LARGE_REQUEST) };
      // The probe: expect_compressed on an uncompressed message is refused, so the check below means something.
      const probeRequest = { ...base, expect_compressed: { value: true } };
      const probe = await unaryCall(ctx.client('wire'), probeRequest, callMetadata(newCallId()));
      assertStatus(probe, GrpcStatus.INVALID_ARGUMENT);

      const id = newCallId();
      const request: SimpleRequest = { ...base, expect_compressed: { value: true } };
      const compressed = await unaryCall(ctx.client('wire', { gzip: true }), request, callMetadata(id));
      assertOk(compressed);
      assertZeros(compressed.messages[0]?.payload, LARGE_RESPONSE);
      const seen = ctx.wire.callsWithId(id)[0];
      assert.equal(seen?.requestHeaders['grpc-encoding'], 'gzip', 'the upstream got grpc-encoding: gzip');
      assert.ok(seen.requestBody.equals(gzipFrame(request)), 'the compressed request reached the upstream byte for byte');

      const plainRequest = { ...base, expect_compressed: { value: false } };
      const plain = await unaryCall(ctx.client('wire'), plainRequest, callMetadata(newCallId()));
      assertOk(plain);

      // A grpc-js upstream decompresses what the gateway passed through.
      const toGrpcJs = newCallId();
      assertOk(await unaryCall(ctx.client('interop', { gzip: true }), base, callMetadata(toGrpcJs)));
      assert.deepEqual(ctx.upstream.callsWithId(toGrpcJs)[0]?.requestSizes, [LARGE_REQUEST]);
    },
  },
  {
    name: 'server_compressed_unary',
    async run(ctx) {
      for (const compress of [true, false]) {
        const id = newCallId();
        const request: SimpleRequest = {
          response_size: LARGE_RESPONSE,
          payload: zeroPayload(LARGE_REQUEST),
          response_compressed: { value: compress },
        };
        const outcome = await unaryCall(ctx.client('wire'), request, callMetadata(id));
        assertOk(outcome);
        assertZeros(outcome.messages[0]?.payload, LARGE_RESPONSE);
        const seen = ctx.wire.callsWithId(id)[0];
        assert.deepEqual(seen?.responseMessages.map((m) => m.compressed), [compress]);
        assert.equal(seen.responseHeaders?.['grpc-encoding'], compress ? 'gzip' : undefined);
      }
    },
  },
  {
    name: 'client_compressed_streaming',
    async run(ctx) {
      const first = CLIENT_STREAM_SIZES[0];
      const probe = streamingInputCall(ctx.client('wire'), callMetadata(newCallId()));
      probe.write({ payload: zeroPayload(first), expect_compressed: { value: true } });
      probe.call.end();
      assertStatus(await probe.outcome, GrpcStatus.INVALID_ARGUMENT);

      const id = newCallId();
      const input = streamingInputCall(ctx.client('wire', { gzip: true }), callMetadata(id));
      input.write({ payload: zeroPayload(first), expect_compressed: { value: true } });
      input.write({ payload: zeroPayload(SECOND_INPUT), expect_compressed: { value: false } }, true);
      input.call.end();
      const outcome = await input.outcome;
      assertOk(outcome);
      assert.equal(outcome.messages[0]?.aggregated_payload_size, first + SECOND_INPUT);
      const seen = ctx.wire.callsWithId(id)[0];
      assert.equal(seen?.requestHeaders['grpc-encoding'], 'gzip');
      assert.deepEqual(seen.requestMessages.map((m) => m.compressed), [true, false], 'per-message flags kept');
    },
  },
  {
    name: 'server_compressed_streaming',
    async run(ctx) {
      const id = newCallId();
      const request = {
        response_parameters: [
          { size: DUPLEX_RESPONSE, compressed: { value: true } },
          { size: SECOND_OUTPUT, compressed: { value: false } },
        ],
      };
      const outcome = await streamingOutputCall(ctx.client('wire'), request, callMetadata(id));
      assertOk(outcome);
      assert.deepEqual(outcome.messages.map(payloadSize), [DUPLEX_RESPONSE, SECOND_OUTPUT]);
      const seen = ctx.wire.callsWithId(id)[0];
      assert.equal(seen?.responseHeaders?.['grpc-encoding'], 'gzip');
      assert.deepEqual(seen.responseMessages.map((m) => m.compressed), [true, false]);
    },
  },
  {
    name: 'gzip_bytes_pass_through',
    async run(ctx) {
      // A raw HTTP/2 client, since grpc-js hides the bytes: what it sends must reach the upstream unchanged, and
      // what the upstream writes must reach it unchanged, compressed flag and gzip stream included.
      const id = newCallId();
      const body = gzipFrame({
        response_size: RAW_PAYLOAD,
        payload: zeroPayload(RAW_PAYLOAD),
        response_compressed: { value: true },
        expect_compressed: { value: true },
      });
      const target = {
        address: ctx.address,
        authority: authorityOf('wire', ctx.combination.upstream),
        ...(ctx.tls === undefined ? {} : { tls: ctx.tls }),
      };
      const headers = { 'grpc-encoding': 'gzip', 'grpc-accept-encoding': 'gzip', [CALL_ID_HEADER]: id };
      const response = await rawUnaryCall(target, '/grpc.testing.TestService/UnaryCall', headers, body);
      assert.equal(response.trailers?.['grpc-status'], '0', JSON.stringify(response.trailers ?? response.headers));
      assert.equal(response.headers['grpc-encoding'], 'gzip');
      const seen = ctx.wire.callsWithId(id)[0];
      assert.equal(seen?.requestHeaders['grpc-encoding'], 'gzip');
      assert.ok(seen.requestBody.equals(body), 'the request bytes changed on the way to the upstream');
      assert.ok(response.body.equals(seen.responseBody), 'the response bytes changed on the way to the client');
      assert.equal(response.body.readUInt8(0), 1, 'the response message is flagged compressed');
      const bytes = gunzipSync(response.body.subarray(FRAME_HEADER_BYTES));
      assertZeros(readSimpleResponse(testMethod('UnaryCall').responseDeserialize(bytes)).payload, RAW_PAYLOAD);
    },
  },
];
