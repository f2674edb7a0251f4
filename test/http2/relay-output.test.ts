/**
 * The engine's output and input paths of the relay, frame by frame against a ServerConnection over the fuzzer's
 * FakeSocket:
 * - small DATA of one stream written in the same turn leaves as one DATA frame (frame boundaries mean nothing in
 *   HTTP/2; a server stream of small messages then costs one frame per turn, not per message), never merged across
 *   streams, past another frame, past SETTINGS_MAX_FRAME_SIZE or after END_STREAM;
 * - a frame that straddles reads, cut at any byte, reaches the handler whole and unchanged;
 * - the output slabs shared by connections: a slab that one socket held and released in the middle of a turn is
 *   not reused before the turn's end, when every other connection's run in it went out.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { setImmediate as turn } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { FrameFlag, FrameType, type Http2Stream } from '../../data-plane/http2/connection.ts';
import { CLIENT_PREFACE, FrameReader, encodeFrame, encodeSettings } from '../../data-plane/http2/frame.ts';
import { HpackEncoder } from '../../data-plane/http2/hpack-encoder.ts';
import { ServerConnection } from '../../data-plane/http2/server-connection.ts';
import { FakeSocket, type ReaderSpeed } from './fuzz-harness.ts';

interface Out {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

const REQUEST = [':method', 'POST', ':scheme', 'http', ':path', '/a.B/C', 'content-type', 'application/grpc'];

/** A connection whose handler keeps the streams; returns what the client received, frame by frame. */
interface Delivery {
  id: number;
  data: string;
  end: boolean;
}

function serve(speed: ReaderSpeed = 'fast'): { socket: FakeSocket; frames: Out[]; streams: Http2Stream[]; conn: ServerConnection; deliveries: Delivery[] } {
  const deliveries: Delivery[] = [];
  const frames: Out[] = [];
  const reader = new FrameReader((type, flags, id, payload) => frames.push({ type, flags, id, payload: Buffer.from(payload) }), 1 << 24);
  const socket = new FakeSocket(speed, (chunk) => reader.push(chunk));
  const streams: Http2Stream[] = [];
  const conn = new ServerConnection(
    socket as unknown as Socket,
    {
      settings: { headerTableSize: 4096, enablePush: false, maxConcurrentStreams: 100, initialWindowSize: 65_535, maxFrameSize: 16_384, maxHeaderListSize: 32_768 },
      connectionWindow: 1 << 20,
    },
    { keepaliveRequests: 0, prematureResetTotalStreamCount: 0, prematureResetMinStreamLifetimeMs: 0 },
    {
      onRequest(stream) {
        stream.handler = {
          onData(s, data, end) {
            deliveries.push({ id: s.id, data: data.toString('latin1'), end });
            s.consume(data.length);
          },
          onHeaders(s, fields, end) {
            deliveries.push({ id: s.id, data: `headers ${fields.join(' ')}`, end });
          },
          onReset(s, code) {
            deliveries.push({ id: s.id, data: `reset ${code}`, end: true });
          },
          onSent() {},
        };
        streams.push(stream);
      },
      onConnectionClosed() {},
    },
    'HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-length: 0\r\n\r\n',
  );
  return { socket, frames, streams, conn, deliveries };
}

async function open(socket: FakeSocket, ids: number[], settings: [number, number][] = []): Promise<void> {
  const hpack = new HpackEncoder();
  socket.emit('data', Buffer.concat([CLIENT_PREFACE, encodeSettings(settings)]));
  for (const id of ids) socket.emit('data', encodeFrame(FrameType.HEADERS, FrameFlag.END_HEADERS | FrameFlag.END_STREAM, id, hpack.encode(REQUEST)));
  await turn();
}

const data = (frames: Out[]): Out[] => frames.filter((f) => f.type === FrameType.DATA);
const bytes = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff));

describe('relay output: small DATA of a stream merged per turn', () => {
  test('three writes of one stream in a turn leave as one frame, END_STREAM on it, bytes in order', async () => {
    const { socket, frames, streams } = serve();
    await open(socket, [1]);
    const [stream] = streams;
    assert.ok(stream !== undefined);
    stream.sendHeaders([':status', '200', 'content-type', 'application/grpc'], false);
    const parts = [bytes(69, 1), bytes(69, 2), bytes(100, 3)];
    stream.sendData(parts[0] as Buffer, false);
    stream.sendData(parts[1] as Buffer, false);
    stream.sendData(parts[2] as Buffer, true);
    await turn();
    const sent = data(frames);
    assert.equal(sent.length, 1, `expected one DATA frame, got ${sent.length}`);
    assert.equal(sent[0]?.flags, FrameFlag.END_STREAM);
    assert.deepEqual(sent[0].payload, Buffer.concat(parts));
  });

  test('never across streams or past another frame: A, B, A, trailers of B, A is 4 DATA frames in order', async () => {
    const { socket, frames, streams } = serve();
    await open(socket, [1, 3]);
    const [a, b] = streams;
    assert.ok(a !== undefined && b !== undefined);
    a.sendHeaders([':status', '200'], false);
    b.sendHeaders([':status', '200'], false);
    await turn();
    frames.length = 0;
    a.sendData(bytes(10, 1), false);
    b.sendData(bytes(10, 2), false);
    a.sendData(bytes(10, 3), false);
    b.sendHeaders(['grpc-status', '0'], true);
    a.sendData(bytes(10, 4), false);
    await turn();
    assert.deepEqual(
      frames.map((f) => [f.type, f.id, f.payload.length]),
      [
        [FrameType.DATA, 1, 10],
        [FrameType.DATA, 3, 10],
        [FrameType.DATA, 1, 10],
        [FrameType.HEADERS, 3, frames[3]?.payload.length],
        [FrameType.DATA, 1, 10],
      ],
    );
  });

  test('a merged frame stays within the peer SETTINGS_MAX_FRAME_SIZE', async () => {
    const { socket, frames, streams } = serve();
    await open(socket, [1]);
    const [stream] = streams;
    assert.ok(stream !== undefined);
    stream.sendHeaders([':status', '200'], false);
    // 20 × 2,000 bytes = 40,000: at most 16,384 per frame, so at least 3 frames, none above the limit.
    const parts = Array.from({ length: 20 }, (_, i) => bytes(2_000, i));
    for (const part of parts) stream.sendData(part, false);
    await turn();
    const sent = data(frames);
    assert.ok(sent.length >= 3 && sent.length < 20, `${sent.length} frames`);
    for (const f of sent) assert.ok(f.payload.length <= 16_384, `frame of ${f.payload.length}`);
    assert.deepEqual(Buffer.concat(sent.map((f) => f.payload)), Buffer.concat(parts));
  });
});

describe('frame reader: frames that straddle reads', () => {
  test('a stream of frames cut at every possible point arrives whole and unchanged', () => {
    const input = [
      encodeFrame(FrameType.DATA, 0, 1, bytes(40_000, 5)),
      encodeFrame(FrameType.PING, 0, 0, bytes(8, 6)),
      encodeFrame(FrameType.DATA, FrameFlag.END_STREAM, 1, bytes(3, 7)),
      encodeFrame(FrameType.DATA, 0, 3, Buffer.alloc(0)),
    ];
    const all = Buffer.concat(input);
    const expected = input.map((f) => f.toString('hex'));
    for (const step of [1, 2, 7, 8, 9, 10, 4_096, 16_393, 39_999, 40_009, 40_010]) {
      const seen: string[] = [];
      const reader = new FrameReader((type, flags, id, payload) => {
        const header = Buffer.alloc(9);
        header.writeUIntBE(payload.length, 0, 3);
        header[3] = type;
        header[4] = flags;
        header.writeUInt32BE(id, 5);
        seen.push(Buffer.concat([header, payload]).toString('hex'));
      }, 1 << 20);
      for (let at = 0; at < all.length; at += step) assert.equal(reader.push(all.subarray(at, Math.min(all.length, at + step))), undefined);
      assert.deepEqual(seen, expected, `reads of ${step} bytes`);
      assert.equal(reader.buffered, 0);
    }
  });

  test('a frame above the limit is refused from its header, whatever the cut', () => {
    const big = encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(20_000));
    for (const step of [1, 5, 9, 100]) {
      const reader = new FrameReader(() => assert.fail('no frame expected'), 16_384);
      let error: unknown;
      for (let at = 0; at < big.length && error === undefined; at += step) error = reader.push(big.subarray(at, at + step));
      assert.ok(error !== undefined, `reads of ${step}: FRAME_SIZE_ERROR expected`);
      assert.ok(reader.buffered < 16, `reads of ${step}: ${reader.buffered} bytes buffered`);
    }
  });
});

describe('output slabs shared by connections', () => {
  test('a slab released by one socket mid-turn is not reused while another connection has an unflushed run in it', async () => {
    const big = [[0x4, 2 ** 31 - 1]] as [number, number][];
    const held = serve('slow'); // its socket queues what it is given until the test reads it
    const other = serve();
    const filler = serve();
    for (const side of [held, other, filler]) {
      await open(side.socket, [1], big);
      side.socket.emit('data', encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, u32(2 ** 31 - 1 - 65_535)));
    }
    await turn();
    const [heldStream] = held.streams;
    const [otherStream] = other.streams;
    const [fillerStream] = filler.streams;
    assert.ok(heldStream !== undefined && otherStream !== undefined && fillerStream !== undefined);
    for (const stream of [heldStream, otherStream, fillerStream]) stream.sendHeaders([':status', '200'], false);
    await turn();

    // One turn: the other connection's run first, then enough DATA on the held socket to be written mid-turn and
    // queued (its slabs held), past the end of the slab they share.
    const mine = Buffer.alloc(300, 0x62);
    otherStream.sendData(mine, false);
    heldStream.sendData(Buffer.alloc(600 * 1024, 0x61), false);
    // The held socket's reader catches up: its writes complete and release their slabs (callbacks on nextTick).
    held.socket.read(Number.MAX_SAFE_INTEGER);
    await new Promise((resolve) => process.nextTick(resolve));
    // More output in the same turn, to a socket that takes it all, takes slabs: never the one the other
    // connection's run is still in.
    fillerStream.sendData(Buffer.alloc(1024 * 1024, 0x63), false);
    await turn();
    const got = data(other.frames);
    assert.equal(got.length, 1);
    assert.deepEqual(got[0]?.payload, mine, 'the other connection wrote bytes of a reused slab');
    // The held socket's reader reads the rest.
    for (let i = 0; i < 100 && data(held.frames).reduce((n, f) => n + f.payload.length, 0) < 600 * 1024; i++) {
      held.socket.read(Number.MAX_SAFE_INTEGER);
      await turn();
    }
    const sent = Buffer.concat(data(held.frames).map((f) => f.payload));
    assert.equal(sent.length, 600 * 1024);
    assert.ok(sent.every((b) => b === 0x61), 'the held connection wrote other bytes');
    const filled = Buffer.concat(data(filler.frames).map((f) => f.payload));
    assert.equal(filled.length, 1024 * 1024);
    assert.ok(filled.every((b) => b === 0x63), 'the filler connection wrote other bytes');
  });
});

function u32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value);
  return out;
}

describe('relay input: DATA of a stream in consecutive frames of one read', () => {
  test('reaches the handler as one delivery, END_STREAM on the last; another stream, HEADERS or RST_STREAM between split it, in order', async () => {
    const { socket, deliveries } = serve();
    const hpack = new HpackEncoder();
    socket.emit('data', Buffer.concat([CLIENT_PREFACE, encodeSettings([])]));
    for (const id of [1, 3, 5]) socket.emit('data', encodeFrame(FrameType.HEADERS, FrameFlag.END_HEADERS, id, hpack.encode(REQUEST)));
    await turn();
    const d = (id: number, text: string, end = false): Buffer => encodeFrame(FrameType.DATA, end ? FrameFlag.END_STREAM : 0, id, Buffer.from(text, 'latin1'));
    // One read.
    socket.emit(
      'data',
      Buffer.concat([
        d(1, 'aa'), d(1, 'bb'), d(3, 'cc'), d(1, 'dd'), d(1, 'ee', true),
        d(3, 'ff'), encodeFrame(FrameType.HEADERS, FrameFlag.END_HEADERS | FrameFlag.END_STREAM, 3, hpack.encode(['grpc-status', '0'])),
        d(5, 'gg'), d(5, 'hh'), encodeFrame(FrameType.RST_STREAM, 0, 5, u32(8)),
      ]),
    );
    await turn();
    assert.deepEqual(deliveries, [
      { id: 1, data: 'aabb', end: false },
      { id: 3, data: 'cc', end: false },
      { id: 1, data: 'ddee', end: true },
      { id: 3, data: 'ff', end: false },
      { id: 3, data: 'headers grpc-status 0', end: true },
      { id: 5, data: 'gghh', end: false },
      { id: 5, data: 'reset 8', end: true },
    ]);
  });

  test('a read that ends in the middle of a run delivers what it joined before the read returns', async () => {
    const { socket, deliveries } = serve();
    const hpack = new HpackEncoder();
    socket.emit('data', Buffer.concat([CLIENT_PREFACE, encodeSettings([])]));
    socket.emit('data', encodeFrame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, hpack.encode(REQUEST)));
    await turn();
    socket.emit('data', Buffer.concat([encodeFrame(FrameType.DATA, 0, 1, Buffer.from('xy')), encodeFrame(FrameType.DATA, 0, 1, Buffer.from('z'))]));
    assert.deepEqual(deliveries, [{ id: 1, data: 'xyz', end: false }], 'delivered synchronously with the read');
  });
});
