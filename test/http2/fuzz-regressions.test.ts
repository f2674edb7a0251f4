/**
 * Bugs the HTTP/2 fuzzer (fuzz.test.ts) found in the engine's listener leg, each replayed as the smallest frame
 * sequence that shows it, against a ServerConnection over the fuzzer's FakeSocket:
 *
 * 1. A client whose first bytes are not HTTP/2 (an HTTP/1 request) got its 505, but the connection never told the
 *    listener it closed (`closed` was set before teardown(), which then did nothing): native-listeners.ts kept every
 *    such connection in its set for the life of the process.
 * 2. RST_STREAM on an idle stream (RFC 9113 §6.4 forbids it; the peer must answer with a connection error): a
 *    PRIORITY that depends on itself, a PRIORITY of the wrong size, or a WINDOW_UPDATE of 0, each on a stream the
 *    client had not opened yet, were answered as stream errors; the stream could then be opened and served after
 *    we had "reset" it. Now a connection error (§5.1: the stream is idle).
 * 3. A new stream's HEADERS refused for depending on itself did not count as opening the stream, so a second
 *    HEADERS with the same id was served as a new request after its RST_STREAM.
 * 4. DATA after our GOAWAY with an error code: connectionError()'s flush resumed streams blocked on the socket,
 *    and when that finished the last stream of a connection already shutting down (keepalive_requests reached),
 *    finishShutdown() flushed again from inside, writing the DATA after the GOAWAY and tearing down as NO_ERROR.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { setImmediate as turn } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { ErrorCode, FrameFlag, FrameType, type Http2Stream } from '../../data-plane/http2/connection.ts';
import { CLIENT_PREFACE, FrameReader, encodeFrame, encodeSettings, encodeWindowUpdate } from '../../data-plane/http2/frame.ts';
import { HpackEncoder } from '../../data-plane/http2/hpack-encoder.ts';
import { ServerConnection } from '../../data-plane/http2/server-connection.ts';
import { FakeSocket, type ReaderSpeed } from './fuzz-harness.ts';

interface Out {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

function serve(options: { keepaliveRequests?: number; respond?: (stream: Http2Stream) => void; speed?: ReaderSpeed } = {}): { conn: ServerConnection; socket: FakeSocket; frames: Out[]; raw: Buffer[]; requests: number[]; closedCalls: () => number } {
  const frames: Out[] = [];
  const raw: Buffer[] = [];
  const reader = new FrameReader((type, flags, id, payload) => frames.push({ type, flags, id, payload: Buffer.from(payload) }), 1 << 24);
  const socket = new FakeSocket(options.speed ?? 'fast', (chunk) => {
    raw.push(Buffer.from(chunk));
    reader.push(chunk);
  });
  const requests: number[] = [];
  let closed = 0;
  const conn = new ServerConnection(
    socket as unknown as Socket,
    {
      settings: { headerTableSize: 4096, enablePush: false, maxConcurrentStreams: 100, initialWindowSize: 65_535, maxFrameSize: 16_384, maxHeaderListSize: 32_768 },
      connectionWindow: 1 << 20,
    },
    { keepaliveRequests: options.keepaliveRequests ?? 0, prematureResetTotalStreamCount: 0, prematureResetMinStreamLifetimeMs: 0 },
    {
      onRequest(stream) {
        requests.push(stream.id);
        if (options.respond !== undefined) options.respond(stream);
        else stream.sendHeaders([':status', '200', 'grpc-status', '0'], true);
      },
      onConnectionClosed() {
        closed++;
      },
    },
    'HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-length: 0\r\n\r\n',
  );
  return { conn, socket, frames, raw, requests, closedCalls: () => closed };
}

const encoder = (): HpackEncoder => new HpackEncoder();
const REQUEST = [':method', 'POST', ':scheme', 'http', ':path', '/a.B/C', 'content-type', 'application/grpc'];

function start(socket: FakeSocket): void {
  socket.emit('data', Buffer.concat([CLIENT_PREFACE, encodeSettings([])]));
}

function priority(id: number, dependency: number, length = 5): Buffer {
  const payload = Buffer.alloc(length);
  if (length >= 4) payload.writeUInt32BE(dependency, 0);
  return encodeFrame(FrameType.PRIORITY, 0, id, payload);
}

const goaways = (frames: Out[]): number[] => frames.filter((f) => f.type === FrameType.GOAWAY).map((f) => f.payload.readUInt32BE(4));
const rsts = (frames: Out[]): Out[] => frames.filter((f) => f.type === FrameType.RST_STREAM);

describe('fuzzer regressions: the listener leg', () => {
  test('an HTTP/1 client gets its 505 and the listener hears the connection closed, once', async () => {
    const { conn, socket, raw, closedCalls } = serve();
    socket.emit('data', Buffer.from('POST /x HTTP/1.1\r\nhost: a\r\n\r\n'));
    await turn();
    assert.equal(conn.closed, true);
    assert.equal(closedCalls(), 1, 'onConnectionClosed after the 505');
    assert.match(Buffer.concat(raw).toString('latin1'), /^HTTP\/1\.1 505 /);
    socket.destroy();
    await turn();
    assert.equal(closedCalls(), 1);
  });

  for (const [what, frame, code] of [
    ['a PRIORITY depending on itself', priority(1, 1), ErrorCode.PROTOCOL_ERROR],
    ['a PRIORITY of 4 bytes', priority(3, 0, 4), ErrorCode.FRAME_SIZE_ERROR],
    ['a WINDOW_UPDATE of 0', encodeWindowUpdate(5, 0), ErrorCode.PROTOCOL_ERROR],
  ] as const) {
    test(`${what} on an idle stream is a connection error, never RST_STREAM on the idle stream`, async () => {
      const { conn, socket, frames, requests } = serve();
      start(socket);
      socket.emit('data', frame);
      socket.emit('data', encodeFrame(FrameType.HEADERS, FrameFlag.END_HEADERS | FrameFlag.END_STREAM, 1, encoder().encode(REQUEST)));
      await turn();
      assert.deepEqual(rsts(frames), [], 'no RST_STREAM');
      assert.deepEqual(goaways(frames), [code]);
      assert.equal(conn.closed, true);
      assert.deepEqual(requests, []);
    });
  }

  test('the same faults on an open stream stay stream errors: RST_STREAM, and the connection goes on', async () => {
    const { conn, socket, frames, requests } = serve();
    start(socket);
    const hpack = encoder();
    socket.emit('data', encodeFrame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, hpack.encode(REQUEST)));
    await turn(); // handed over; the response ended the stream on our side
    // Stream 3 is open (in the same read, not handed over yet) when its PRIORITY comes.
    socket.emit('data', Buffer.concat([encodeFrame(FrameType.HEADERS, FrameFlag.END_HEADERS, 3, hpack.encode(REQUEST)), priority(3, 3)]));
    await turn();
    assert.deepEqual(
      rsts(frames).map((f) => [f.id, f.payload.readUInt32BE(0)]),
      [
        [1, ErrorCode.NO_ERROR],
        [3, ErrorCode.PROTOCOL_ERROR],
      ],
    );
    assert.deepEqual(goaways(frames), []);
    assert.equal(conn.closed, false);
    assert.deepEqual(requests, [1]);
    socket.destroy();
    await turn();
    assert.equal(conn.streams.size, 0);
  });

  test('a new stream refused for depending on itself is used: a second HEADERS on its id is not served', async () => {
    const { conn, socket, frames, requests } = serve();
    start(socket);
    const hpack = encoder();
    const payload = Buffer.concat([Buffer.from([0, 0, 0, 1, 16]), hpack.encode(REQUEST)]); // depends on stream 1
    socket.emit('data', encodeFrame(FrameType.HEADERS, FrameFlag.END_HEADERS | FrameFlag.END_STREAM | FrameFlag.PRIORITY, 1, payload));
    socket.emit('data', encodeFrame(FrameType.HEADERS, FrameFlag.END_HEADERS | FrameFlag.END_STREAM, 1, hpack.encode(REQUEST)));
    await turn();
    assert.deepEqual(
      rsts(frames).map((f) => [f.id, f.payload.readUInt32BE(0)]),
      [[1, ErrorCode.PROTOCOL_ERROR]],
    );
    assert.deepEqual(requests, [], 'the refused stream is never served');
    assert.equal(conn.streams.size, 0);
    socket.destroy();
  });

  test('a connection error while DATA waits for the socket writes nothing after its GOAWAY', async () => {
    const body = Buffer.alloc(400 * 1024, 0x61); // above the 256 KiB of unread output that makes DATA wait
    const { conn, socket, frames } = serve({
      speed: 'slow', // the socket takes the first 256 KiB and does not write them: the rest waits
      keepaliveRequests: 1, // the first stream starts the graceful shutdown: the connection closes with it
      respond(stream) {
        stream.sendHeaders([':status', '200'], false);
        stream.sendData(body, false);
        stream.sendHeaders(['grpc-status', '0'], true);
      },
    });
    const hpack = encoder();
    socket.emit(
      'data',
      Buffer.concat([
        CLIENT_PREFACE,
        encodeSettings([[0x4, 1 << 20]]),
        encodeWindowUpdate(0, 1 << 20),
        encodeFrame(FrameType.HEADERS, FrameFlag.END_HEADERS | FrameFlag.END_STREAM, 1, hpack.encode(REQUEST)),
      ]),
    );
    // In the same turn, before the output went: a frame that is a connection error.
    socket.emit('data', encodeFrame(FrameType.PUSH_PROMISE, FrameFlag.END_HEADERS, 1, Buffer.alloc(4)));
    await turn();
    await turn();
    const fatal = frames.findIndex((f) => f.type === FrameType.GOAWAY && f.payload.readUInt32BE(4) !== ErrorCode.NO_ERROR);
    assert.ok(fatal >= 0, 'GOAWAY(PROTOCOL_ERROR) sent');
    assert.deepEqual(
      frames.slice(fatal + 1).map((f) => f.type),
      [],
      'no frame after the GOAWAY with an error code',
    );
    assert.equal(conn.closed, true);
    assert.equal(conn.streams.size, 0);
    socket.destroy();
  });
});
