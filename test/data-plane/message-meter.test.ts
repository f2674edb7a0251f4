import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MessageMeter } from '../../data-plane/proxy/message-meter.ts';

function frame(size: number): Buffer {
  const out = Buffer.alloc(5 + size, 0x61);
  out[0] = 0;
  out.writeUInt32BE(size, 1);
  return out;
}

describe('gRPC message meter', () => {
  test('messages within the limit pass, the first one over it is reported with its size', () => {
    const meter = new MessageMeter(10);
    assert.equal(meter.feed(Buffer.concat([frame(10), frame(0), frame(3)])), -1);
    assert.equal(meter.feed(frame(11)), 11);
  });

  test('headers and bodies split across chunks at every byte are still read right', () => {
    const stream = Buffer.concat([frame(4), frame(9), frame(2), frame(20)]);
    for (let cut = 1; cut < stream.length; cut++) {
      const meter = new MessageMeter(9);
      const first = meter.feed(stream.subarray(0, cut));
      const result = first >= 0 ? first : meter.feed(stream.subarray(cut));
      assert.equal(result, 20, `cut at ${cut}`);
    }
  });

  test('a zero limit allows only empty messages', () => {
    const meter = new MessageMeter(0);
    assert.equal(meter.feed(frame(0)), -1);
    assert.equal(meter.feed(frame(1)), 1);
  });
});
