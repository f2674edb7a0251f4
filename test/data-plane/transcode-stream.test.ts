/**
 * transcode/transcode-stream.ts driven directly (no sockets). Flow control of a transcoded server stream: the
 * upstream is credited for a message's bytes only once its JSON line left for the client (or while no line waits):
 * a client that reads nothing holds the upstream to about one message, however the upstream cuts its messages into
 * DATA (here each message's last byte comes alone, which credited all but one byte per message before the fix).
 * Request bodies kept per connection are bounded (128 HTTP/2 streams that never end their bodies), and a
 * grpc-status that is not digits is no success.
 */
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { describe, test } from 'node:test';
import type { StreamHandler } from '../../data-plane/http2/connection.ts';
import type { Downstream } from '../../data-plane/proxy/downstream.ts';
import { ProtoRegistry } from '../../data-plane/transcode/proto-registry.ts';
import { compileTranscode } from '../../data-plane/transcode/transcode-target.ts';
import { TranscodeStream } from '../../data-plane/transcode/transcode-stream.ts';

const PROTO = `syntax = "proto3";
package t;
message Req { string q = 1; }
message Chunk { bytes data = 1; }
service S { rpc Stream(Req) returns (stream Chunk); rpc Get(Req) returns (Chunk); }
`;
const MESSAGES = 10;
const DATA_BYTES = 1000;

/** A client side that never reports bytes sent until told; records what it was given. */
class SilentClient implements Downstream {
  handler: StreamHandler<Downstream> | undefined;
  readonly openedAt = Date.now();
  readonly removed = false;
  readonly conn = { socket: new Socket() };
  readonly data: Buffer[] = [];
  readonly headers: string[][] = [];
  sendHeaders(fields: string[]): void {
    this.headers.push([...fields]);
  }
  sendData(data: Buffer): void {
    this.data.push(Buffer.from(data));
  }
  consume(): void {}
  reset(): void {}
}

/** What the Call would be: counts the upstream credit it is given. */
class CreditCounter implements StreamHandler<Downstream> {
  credited = 0;
  onHeaders(): void {}
  onData(): void {}
  onReset(): void {}
  onSent(_stream: Downstream, bytes: number): void {
    this.credited += bytes;
  }
  refused: string | undefined;
  onMalformed(_stream: Downstream, err: Error): void {
    this.refused = err.message;
  }
}

function streamOn(client: SilentClient, method: 'Stream' | 'Get'): { stream: TranscodeStream; call: CreditCounter } {
  const registry = new ProtoRegistry(new Map([['p', { id: 'p', value: { content: PROTO }, modRevision: '1' }]]));
  const target = compileTranscode({ proto_id: 'p', service: 't.S', method }, registry.get('p'), registry.error('p'));
  const stream = new TranscodeStream(client, target, { query: '', contentType: 'application/json', origin: undefined, cors: undefined, pathFields: [] }, undefined, undefined);
  const call = new CreditCounter();
  stream.handler = call;
  return { stream, call };
}

function message(): Buffer {
  // Chunk { data = DATA_BYTES zero bytes }: tag 0x0a, a 2-byte varint length, the bytes; in a gRPC frame.
  const body = Buffer.concat([Buffer.from([0x0a, (DATA_BYTES & 0x7f) | 0x80, DATA_BYTES >> 7]), Buffer.alloc(DATA_BYTES)]);
  const frame = Buffer.alloc(5);
  frame.writeUInt32BE(body.length, 1);
  return Buffer.concat([frame, body]);
}

describe('transcode stream', () => {
  test("the upstream is credited for a message only once its line left, or while no line waits for the client", () => {
    const client = new SilentClient();
    const { stream, call } = streamOn(client, 'Stream');
    stream.sendHeaders([':status', '200', 'content-type', 'application/grpc'], false);
    const one = message();
    for (let i = 0; i < MESSAGES; i++) {
      stream.sendData(one.subarray(0, one.length - 1), false);
      stream.sendData(one.subarray(one.length - 1), false);
    }
    assert.equal(client.data.length, MESSAGES, 'a line per message, written as each completed');
    // The first message's bytes before its last were credited (no line waited then); nothing after.
    assert.equal(call.credited, one.length - 1, `credited ${String(call.credited)} bytes with ${String(MESSAGES)} lines unsent`);
    const lines = client.data.reduce((sum, line) => sum + line.length, 0);
    stream.onSent(client, lines);
    assert.equal(call.credited, MESSAGES * one.length, 'every byte credited once every line left');
  });

  test('request bodies kept for one connection are bounded: past 32 MiB across its streams, 413', () => {
    const client = new SilentClient(); // one connection: every stream shares its socket
    const streams = Array.from({ length: 12 }, () => streamOn(client, 'Get'));
    const piece = Buffer.alloc(1024 * 1024, 0x20); // JSON whitespace, never ended
    let refusedAt = -1;
    for (const [i, { stream, call }] of streams.entries()) {
      for (let m = 0; m < 3 && call.refused === undefined; m++) stream.onData(client, piece, false);
      if (call.refused !== undefined && refusedAt < 0) refusedAt = i;
    }
    assert.equal(refusedAt, 10, 'the 11th stream crosses 32 MiB (10 × 3 MiB kept before it)');
    assert.match(streams[10]?.call.refused ?? '', /exceeds/);
    // A stream that ends releases what it kept: another connection-wide MiB fits again.
    streams[0]?.stream.onReset(client, 8, 0);
    const { stream, call } = streamOn(client, 'Get');
    stream.onData(client, piece, false);
    assert.equal(call.refused, undefined);
  });

  test("a grpc-status that is not digits is not OK: the unary answer is an error, not the reply", () => {
    const client = new SilentClient();
    const sent = client.headers;
    const { stream } = streamOn(client, 'Get');
    stream.sendHeaders([':status', '200', 'content-type', 'application/grpc'], false);
    stream.sendData(message(), false);
    stream.sendHeaders(['grpc-status', ''], true);
    assert.equal(sent[0]?.[1], '500', 'UNKNOWN maps to 500');
  });
});
