/**
 * Stream states of the gateway's own HTTP/2 engine (data-plane/http2/stream-state.ts) against RFC 9113 §5.1: the
 * transitions of a gRPC call on both legs, and the stream errors a peer's frame is in each state.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode, FrameFlag, FrameType } from '../../data-plane/http2/frame.ts';
import { StreamState, afterReceive, afterSend, type StreamStateValue } from '../../data-plane/http2/stream-state.ts';

const { DATA, HEADERS, PRIORITY, RST_STREAM, WINDOW_UPDATE } = FrameType;
const END = FrameFlag.END_STREAM;

function received(state: StreamStateValue, type: number, flags = 0): StreamStateValue {
  const next = afterReceive(state, type, flags);
  assert.ok(next >= 0, `frame ${type} in state ${state} was an error ${-next}`);
  return next as StreamStateValue;
}

describe('stream states (RFC 9113 §5.1)', () => {
  test('a server stream of a gRPC call: open, half-closed by the client, closed by our trailers', () => {
    let s: StreamStateValue = StreamState.IDLE;
    s = received(s, HEADERS);
    assert.equal(s, StreamState.OPEN);
    s = received(s, DATA);
    s = received(s, DATA, END);
    assert.equal(s, StreamState.HALF_CLOSED_REMOTE);
    s = afterSend(s, HEADERS, 0);
    s = afterSend(s, DATA, 0);
    assert.equal(s, StreamState.HALF_CLOSED_REMOTE);
    s = afterSend(s, HEADERS, END);
    assert.equal(s, StreamState.CLOSED);
  });

  test('a client stream to an upstream: our request ends first, the upstream\'s trailers close it', () => {
    let s: StreamStateValue = afterSend(StreamState.IDLE, HEADERS, 0);
    assert.equal(s, StreamState.OPEN);
    s = afterSend(s, DATA, END);
    assert.equal(s, StreamState.HALF_CLOSED_LOCAL);
    s = received(s, HEADERS);
    s = received(s, DATA);
    s = received(s, HEADERS, END);
    assert.equal(s, StreamState.CLOSED);
  });

  test('a request that is one HEADERS frame with END_STREAM is half-closed at once, and a trailers-only answer closes it', () => {
    const s = received(StreamState.IDLE, HEADERS, END);
    assert.equal(s, StreamState.HALF_CLOSED_REMOTE);
    assert.equal(afterSend(s, HEADERS, END), StreamState.CLOSED);
  });

  test('RST_STREAM closes a stream in any state but idle, sent or received', () => {
    for (const state of [StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL, StreamState.HALF_CLOSED_REMOTE]) {
      assert.equal(afterReceive(state, RST_STREAM, 0), StreamState.CLOSED);
      assert.equal(afterSend(state, RST_STREAM, 0), StreamState.CLOSED);
    }
    assert.equal(afterReceive(StreamState.IDLE, RST_STREAM, 0), -ErrorCode.PROTOCOL_ERROR);
  });

  test('DATA on an idle stream is a PROTOCOL_ERROR', () => {
    assert.equal(afterReceive(StreamState.IDLE, DATA, 0), -ErrorCode.PROTOCOL_ERROR);
    assert.equal(afterReceive(StreamState.IDLE, WINDOW_UPDATE, 0), -ErrorCode.PROTOCOL_ERROR);
  });

  test('DATA or HEADERS after the peer ended its side is STREAM_CLOSED; WINDOW_UPDATE and PRIORITY are not', () => {
    assert.equal(afterReceive(StreamState.HALF_CLOSED_REMOTE, DATA, 0), -ErrorCode.STREAM_CLOSED);
    assert.equal(afterReceive(StreamState.HALF_CLOSED_REMOTE, HEADERS, END), -ErrorCode.STREAM_CLOSED);
    assert.equal(afterReceive(StreamState.HALF_CLOSED_REMOTE, WINDOW_UPDATE, 0), StreamState.HALF_CLOSED_REMOTE);
    assert.equal(afterReceive(StreamState.HALF_CLOSED_REMOTE, PRIORITY, 0), StreamState.HALF_CLOSED_REMOTE);
    assert.equal(afterReceive(StreamState.CLOSED, DATA, 0), -ErrorCode.STREAM_CLOSED);
    assert.equal(afterReceive(StreamState.CLOSED, WINDOW_UPDATE, 0), StreamState.CLOSED);
    assert.equal(afterReceive(StreamState.CLOSED, RST_STREAM, 0), StreamState.CLOSED);
  });
});
