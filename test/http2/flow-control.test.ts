/**
 * Flow-control windows of the gateway's own HTTP/2 engine (data-plane/http2/flow-control.ts) against RFC 9113 §6.9:
 * sending only within the peer's window, its overflow and SETTINGS changes, receiving only what we allowed, and
 * credit given back in few WINDOW_UPDATEs once bytes are consumed, never before.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode } from '../../data-plane/http2/frame.ts';
import { ReceiveWindow, SendWindow } from '../../data-plane/http2/flow-control.ts';

describe('send window (RFC 9113 §6.9.1, §6.9.2)', () => {
  test('allows at most the window, and nothing once it is spent', () => {
    const window = new SendWindow(65_535);
    assert.equal(window.allowance(100_000), 65_535);
    window.spend(65_535);
    assert.equal(window.allowance(1), 0);
    assert.equal(window.grow(10), undefined);
    assert.equal(window.allowance(100), 10);
  });

  test('a WINDOW_UPDATE that takes the window past 2^31 - 1 is a FLOW_CONTROL_ERROR and changes nothing', () => {
    const window = new SendWindow(0x7fffffff - 5);
    assert.equal(window.grow(5), undefined);
    assert.equal(window.grow(1)?.code, ErrorCode.FLOW_CONTROL_ERROR);
    assert.equal(window.size, 0x7fffffff);
  });

  test('a lower SETTINGS_INITIAL_WINDOW_SIZE can make a stream window negative, and sending waits until it is positive', () => {
    const window = new SendWindow(65_535);
    window.spend(60_000);
    assert.equal(window.resize(65_535, 16_384), undefined);
    assert.equal(window.size, 5_535 - 49_151);
    assert.equal(window.allowance(1), 0);
    window.grow(49_151);
    assert.equal(window.allowance(10_000), 5_535);
    assert.equal(new SendWindow(0x7fffffff - 10).resize(65_535, 65_546)?.code, ErrorCode.FLOW_CONTROL_ERROR);
  });
});

describe('receive window', () => {
  test('DATA beyond what we allowed is a FLOW_CONTROL_ERROR', () => {
    const window = new ReceiveWindow(1000);
    assert.equal(window.receive(600), undefined);
    assert.equal(window.receive(401)?.code, ErrorCode.FLOW_CONTROL_ERROR);
    assert.equal(window.receive(400), undefined);
    assert.equal(window.remaining, 0);
  });

  test('gives credit back only for consumed bytes, in one WINDOW_UPDATE once half the window is owed', () => {
    const window = new ReceiveWindow(1000);
    window.receive(1000);
    assert.equal(window.remaining, 0, 'an unread stream stops its sender: nothing comes back until it is consumed');
    assert.equal(window.consume(100), 100, 'with the window exhausted, consumed bytes are credited at once');
    assert.equal(window.consume(200), 0, 'with room left, credit waits until half the window is owed');
    assert.equal(window.consume(300), 500);
    assert.equal(window.remaining, 600);
    assert.equal(window.consume(400), 0, '400 owed is still less than half');
    assert.equal(window.receive(600), undefined);
    assert.equal(window.consume(600), 1000, 'everything owed, in one update');
    assert.equal(window.remaining, 1000, 'never more than the target');
  });

  test('a reader that keeps up keeps the sender going with a WINDOW_UPDATE per half window', () => {
    const window = new ReceiveWindow(65_536);
    let updates = 0;
    for (let i = 0; i < 1024; i++) {
      assert.equal(window.receive(1024), undefined, `frame ${i} fits the window`);
      if (window.consume(1024) > 0) updates++;
    }
    assert.equal(updates, 32, '1 MiB through a 64 KiB window in 32 WINDOW_UPDATEs');
  });
});
