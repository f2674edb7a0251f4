/**
 * Output slabs are reused from one event-loop turn to the next (connection.ts), so a slab position a connection
 * wrote to in one turn is written again in the next. Nothing of a turn's frames may be touched by the next one: a
 * DATA frame is extended only while it is the last frame of the connection's current run. Its own file, so that it
 * runs in a fresh process whose slab starts every turn at position 0.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { setImmediate as turn } from 'node:timers/promises';
import { test } from 'node:test';
import { FrameFlag, FrameType, type Http2Stream } from '../../data-plane/http2/connection.ts';
import { CLIENT_PREFACE, FrameReader, encodeFrame, encodeSettings } from '../../data-plane/http2/frame.ts';
import { HpackEncoder } from '../../data-plane/http2/hpack-encoder.ts';
import { ServerConnection } from '../../data-plane/http2/server-connection.ts';
import { FakeSocket } from './fuzz-harness.ts';

test('a DATA frame of the last turn is never extended by this turn’s DATA (its slab position now holds a PING ACK)', async () => {
  const frames: { type: number; flags: number; length: number; payload: Buffer }[] = [];
  const reader = new FrameReader((type, flags, _id, payload) => frames.push({ type, flags, length: payload.length, payload: Buffer.from(payload) }), 1 << 24);
  const socket = new FakeSocket('fast', (chunk) => assert.equal(reader.push(chunk), undefined));
  const streams: Http2Stream[] = [];
  new ServerConnection(
    socket as unknown as Socket,
    {
      settings: { headerTableSize: 4096, enablePush: false, maxConcurrentStreams: 100, initialWindowSize: 65_535, maxFrameSize: 16_384, maxHeaderListSize: 32_768 },
      connectionWindow: 1 << 20,
    },
    { keepaliveRequests: 0, prematureResetTotalStreamCount: 0, prematureResetMinStreamLifetimeMs: 0 },
    {
      onRequest(stream) {
        stream.handler = { onData() {}, onHeaders() {}, onReset() {}, onSent() {} };
        streams.push(stream);
      },
      onConnectionClosed() {},
    },
    'HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-length: 0\r\n\r\n',
  );
  const request = [':method', 'POST', ':scheme', 'http', ':path', '/a.B/C', 'content-type', 'application/grpc'];
  socket.emit('data', Buffer.concat([CLIENT_PREFACE, encodeSettings([]), encodeFrame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, new HpackEncoder().encode(request))]));
  await turn();
  const [stream] = streams;
  assert.ok(stream !== undefined);
  stream.sendHeaders([':status', '200'], false);
  await turn();
  // Turn 1: a DATA frame of 17 bytes, alone in its turn (the slab starts over after each turn).
  stream.sendData(Buffer.from('eight b.'), false);
  await turn();
  // Turn 2: a PING ACK of 17 bytes lands where that DATA frame was; then more DATA of the stream.
  socket.emit('data', encodeFrame(FrameType.PING, 0, 0, Buffer.from('pingpong')));
  stream.sendData(Buffer.from('more'), false);
  await turn();
  const pings = frames.filter((f) => f.type === FrameType.PING);
  assert.deepEqual(pings.map((f) => [f.flags, f.length, f.payload.toString()]), [[FrameFlag.ACK, 8, 'pingpong']]);
  const data = frames.filter((f) => f.type === FrameType.DATA).map((f) => f.payload.toString());
  assert.deepEqual(data, ['eight b.', 'more']);
});
