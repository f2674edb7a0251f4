/**
 * The frame layer of the gateway's own HTTP/2 engine (data-plane/http2/frame.ts) against RFC 9113 §4 and §6: frames
 * cut out of a byte stream however it is split, oversized frames refused before they are buffered, and each
 * type's size, stream and padding rules answered with the right error code and scope.
 */
import assert from 'node:assert/strict';
import { constants } from 'node:http2';
import { describe, test } from 'node:test';
import {
  ErrorCode,
  FRAME_HEADER_BYTES,
  FrameFlag,
  FrameReader,
  FrameType,
  checkFrame,
  encodeFrame,
  encodeGoaway,
  encodePing,
  encodeRstStream,
  encodeSettings,
  encodeWindowUpdate,
  framePayloadBody,
  readSettings,
} from '../../data-plane/http2/frame.ts';

interface Seen {
  type: number;
  flags: number;
  streamId: number;
  payload: string;
}

function collect(): { reader: FrameReader; seen: Seen[] } {
  const seen: Seen[] = [];
  const reader = new FrameReader((type, flags, streamId, payload) => seen.push({ type, flags, streamId, payload: payload.toString('hex') }));
  return { reader, seen };
}

const SEQUENCE = Buffer.concat([
  encodeSettings([[0x3, 100], [0x4, 65_535]]),
  encodeSettings([], true),
  encodeFrame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, Buffer.from('8286', 'hex')),
  encodeFrame(FrameType.DATA, FrameFlag.END_STREAM, 1, Buffer.from('hello')),
  encodeWindowUpdate(0, 1_000_000),
  encodeRstStream(3, ErrorCode.CANCEL),
  encodePing(Buffer.from('0102030405060708', 'hex')),
  encodeGoaway(7, ErrorCode.ENHANCE_YOUR_CALM, Buffer.from('calm')),
]);

describe('frame reader', () => {
  test('reads every frame of a sequence written by the encoders', () => {
    const { reader, seen } = collect();
    assert.equal(reader.push(SEQUENCE), undefined);
    assert.deepEqual(
      seen.map((f) => [f.type, f.flags, f.streamId]),
      [
        [FrameType.SETTINGS, 0, 0],
        [FrameType.SETTINGS, FrameFlag.ACK, 0],
        [FrameType.HEADERS, FrameFlag.END_HEADERS, 1],
        [FrameType.DATA, FrameFlag.END_STREAM, 1],
        [FrameType.WINDOW_UPDATE, 0, 0],
        [FrameType.RST_STREAM, 0, 3],
        [FrameType.PING, 0, 0],
        [FrameType.GOAWAY, 0, 0],
      ],
    );
    assert.equal(seen[3]?.payload, Buffer.from('hello').toString('hex'));
    assert.equal(seen[7]?.payload, '00000007' + '0000000b' + Buffer.from('calm').toString('hex'));
    assert.equal(reader.buffered, 0);
  });

  test('yields the same frames however the bytes are split, down to one byte per read', () => {
    const { reader: whole, seen: expected } = collect();
    whole.push(SEQUENCE);
    for (let cut = 1; cut < SEQUENCE.length; cut++) {
      const { reader, seen } = collect();
      reader.push(SEQUENCE.subarray(0, cut));
      reader.push(SEQUENCE.subarray(cut));
      assert.deepEqual(seen, expected, `split at byte ${cut}`);
    }
    const { reader, seen } = collect();
    for (let i = 0; i < SEQUENCE.length; i++) reader.push(SEQUENCE.subarray(i, i + 1));
    assert.deepEqual(seen, expected, 'one byte at a time');
  });

  test('keeps its own copy of a partial frame, so the caller may reuse its read buffer', () => {
    const { reader, seen } = collect();
    const frame = encodeFrame(FrameType.DATA, 0, 1, Buffer.from('abcdef'));
    const scratch = Buffer.from(frame.subarray(0, 12));
    reader.push(scratch);
    scratch.fill(0);
    reader.push(frame.subarray(12));
    assert.equal(seen[0]?.payload, Buffer.from('abcdef').toString('hex'));
  });

  test('refuses a frame above SETTINGS_MAX_FRAME_SIZE with FRAME_SIZE_ERROR before buffering its payload', () => {
    const { reader, seen } = collect();
    const header = Buffer.alloc(FRAME_HEADER_BYTES);
    header.writeUIntBE(16_385, 0, 3);
    header[3] = FrameType.DATA;
    header.writeUInt32BE(1, 5);
    const error = reader.push(header);
    assert.equal(error?.code, ErrorCode.FRAME_SIZE_ERROR);
    assert.equal(error.connection, true);
    assert.equal(reader.buffered, 0);
    assert.equal(reader.push(encodePing(Buffer.alloc(8))), undefined);
    assert.equal(seen.length, 0, 'no frame is delivered after the error');
  });

  test('accepts frames up to a raised SETTINGS_MAX_FRAME_SIZE', () => {
    const { reader, seen } = collect();
    reader.maxFrameSize = 65_536;
    assert.equal(reader.push(encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(65_536))), undefined);
    assert.equal(seen.length, 1);
  });

  test('ignores the reserved bit of the stream identifier', () => {
    const { reader, seen } = collect();
    const frame = encodeRstStream(5, ErrorCode.CANCEL);
    frame[5] = (frame[5] ?? 0) | 0x80;
    reader.push(frame);
    assert.equal(seen[0]?.streamId, 5);
  });
});

describe('frame checks (RFC 9113 §6)', () => {
  const check = (type: number, flags: number, streamId: number, payload: Buffer | string) =>
    checkFrame(type, flags, streamId, typeof payload === 'string' ? Buffer.from(payload, 'hex') : payload);

  test('stream frames on stream 0 and connection frames on a stream are connection PROTOCOL_ERRORs', () => {
    for (const type of [FrameType.DATA, FrameType.HEADERS, FrameType.RST_STREAM, FrameType.CONTINUATION]) {
      const payload = type === FrameType.RST_STREAM ? '00000008' : '';
      assert.deepEqual(pick(check(type, 0, 0, payload)), [ErrorCode.PROTOCOL_ERROR, true], `type ${type}`);
    }
    for (const type of [FrameType.SETTINGS, FrameType.GOAWAY]) {
      const payload = type === FrameType.GOAWAY ? '0000000000000000' : '';
      assert.deepEqual(pick(check(type, 0, 1, payload)), [ErrorCode.PROTOCOL_ERROR, true], `type ${type}`);
    }
    assert.deepEqual(pick(check(FrameType.PING, 0, 3, '0000000000000000')), [ErrorCode.PROTOCOL_ERROR, true]);
  });

  test('fixed-size frames of the wrong size are FRAME_SIZE_ERRORs, a stream error only for PRIORITY', () => {
    assert.deepEqual(pick(check(FrameType.PING, 0, 0, '00')), [ErrorCode.FRAME_SIZE_ERROR, true]);
    assert.deepEqual(pick(check(FrameType.RST_STREAM, 0, 1, '000000')), [ErrorCode.FRAME_SIZE_ERROR, true]);
    assert.deepEqual(pick(check(FrameType.WINDOW_UPDATE, 0, 1, '0000000001')), [ErrorCode.FRAME_SIZE_ERROR, true]);
    assert.deepEqual(pick(check(FrameType.PRIORITY, 0, 1, '00000000')), [ErrorCode.FRAME_SIZE_ERROR, false]);
    assert.equal(check(FrameType.PRIORITY, 0, 1, '0000000010'), undefined);
  });

  test('SETTINGS must be a multiple of 6 bytes, and an ACK empty', () => {
    assert.deepEqual(pick(check(FrameType.SETTINGS, 0, 0, '00030000006400')), [ErrorCode.FRAME_SIZE_ERROR, true]);
    assert.deepEqual(pick(check(FrameType.SETTINGS, FrameFlag.ACK, 0, '000300000064')), [ErrorCode.FRAME_SIZE_ERROR, true]);
    assert.equal(check(FrameType.SETTINGS, 0, 0, '000300000064'), undefined);
    const seen: [number, number][] = [];
    readSettings(Buffer.from('000300000064000400010000', 'hex'), (id, value) => seen.push([id, value]));
    assert.deepEqual(seen, [[3, 100], [4, 65_536]]);
  });

  test('a GOAWAY shorter than 8 bytes is a FRAME_SIZE_ERROR', () => {
    assert.deepEqual(pick(check(FrameType.GOAWAY, 0, 0, '00000000')), [ErrorCode.FRAME_SIZE_ERROR, true]);
  });

  test('a WINDOW_UPDATE of 0 is a stream error on a stream and a connection error on the connection', () => {
    assert.deepEqual(pick(check(FrameType.WINDOW_UPDATE, 0, 1, '00000000')), [ErrorCode.PROTOCOL_ERROR, false]);
    assert.deepEqual(pick(check(FrameType.WINDOW_UPDATE, 0, 0, '80000000')), [ErrorCode.PROTOCOL_ERROR, true]);
  });

  test('padding that reaches past the payload is a PROTOCOL_ERROR, and the body comes without padding or priority', () => {
    assert.deepEqual(pick(check(FrameType.DATA, FrameFlag.PADDED, 1, '05616263')), [ErrorCode.PROTOCOL_ERROR, true]);
    assert.deepEqual(pick(check(FrameType.DATA, FrameFlag.PADDED, 1, '')), [ErrorCode.PROTOCOL_ERROR, true]);
    assert.deepEqual(pick(check(FrameType.HEADERS, FrameFlag.PADDED | FrameFlag.PRIORITY, 1, '01000000000f')), [ErrorCode.PROTOCOL_ERROR, true]);
    assert.deepEqual(pick(check(FrameType.HEADERS, FrameFlag.PRIORITY, 1, '00000000')), [ErrorCode.FRAME_SIZE_ERROR, true]);
    const data = Buffer.from('02616263' + '0000', 'hex');
    assert.equal(check(FrameType.DATA, FrameFlag.PADDED, 1, data), undefined);
    assert.equal(framePayloadBody(FrameType.DATA, FrameFlag.PADDED, data).toString(), 'abc');
    const headers = Buffer.from('01' + '000000030f' + '8286' + '00', 'hex');
    assert.equal(check(FrameType.HEADERS, FrameFlag.PADDED | FrameFlag.PRIORITY, 1, headers), undefined);
    assert.equal(framePayloadBody(FrameType.HEADERS, FrameFlag.PADDED | FrameFlag.PRIORITY, headers).toString('hex'), '8286');
    const plain = Buffer.from('8286', 'hex');
    assert.equal(framePayloadBody(FrameType.HEADERS, FrameFlag.END_HEADERS, plain), plain, 'no copy when there is nothing to strip');
  });

  test('frames of unknown types pass (RFC 9113 §4.1: they are ignored)', () => {
    assert.equal(check(0xfa, 0xff, 0, 'ffff'), undefined);
  });
});

function pick(error: ReturnType<typeof checkFrame>): [number, boolean] | undefined {
  return error === undefined ? undefined : [error.code, error.connection];
}

// The node:http2 side of the data plane takes its RST_STREAM/GOAWAY codes and the END_STREAM flag from this module
// (only the engine adapter imports node:http2 values, eslint.config.js): they must be nghttp2's numbers.
test('ErrorCode and FrameFlag.END_STREAM are the numbers node:http2 uses', () => {
  for (const [name, code] of Object.entries(ErrorCode)) assert.equal(code, constants[`NGHTTP2_${name}` as keyof typeof constants], name);
  assert.equal(FrameFlag.END_STREAM, constants.NGHTTP2_FLAG_END_STREAM);
});
