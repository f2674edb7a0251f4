/**
 * SETTINGS of the gateway's own HTTP/2 engine (data-plane/http2/settings.ts) against RFC 9113 §6.5: values applied in
 * order, each out-of-range value the connection error the RFC names, unknown identifiers ignored, and what we
 * announce limited to what differs from the protocol's initial values.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode, encodeSettings } from '../../data-plane/http2/frame.ts';
import { SettingId, applySettings, initialSettings, settingsToSend } from '../../data-plane/http2/settings.ts';

/** The payload of a SETTINGS frame with these pairs (the frame minus its 9-byte header). */
const payloadOf = (pairs: [number, number][]): Buffer => encodeSettings(pairs).subarray(9);

describe('SETTINGS (RFC 9113 §6.5)', () => {
  test('applies every known value, in order, so the last of a repeated identifier wins', () => {
    const settings = initialSettings();
    const error = applySettings(
      settings,
      payloadOf([
        [SettingId.MAX_CONCURRENT_STREAMS, 10],
        [SettingId.INITIAL_WINDOW_SIZE, 1_048_576],
        [SettingId.MAX_FRAME_SIZE, 32_768],
        [SettingId.HEADER_TABLE_SIZE, 0],
        [SettingId.MAX_HEADER_LIST_SIZE, 16_384],
        [SettingId.ENABLE_PUSH, 0],
        [SettingId.MAX_CONCURRENT_STREAMS, 100],
      ]),
      false,
    );
    assert.equal(error, undefined);
    assert.deepEqual(settings, {
      headerTableSize: 0,
      enablePush: false,
      maxConcurrentStreams: 100,
      initialWindowSize: 1_048_576,
      maxFrameSize: 32_768,
      maxHeaderListSize: 16_384,
    });
  });

  test('ignores unknown identifiers', () => {
    const settings = initialSettings();
    assert.equal(applySettings(settings, payloadOf([[0x99, 7], [0x8, 1]]), false), undefined);
    assert.deepEqual(settings, initialSettings());
  });

  test('refuses values out of range with the connection error the RFC names', () => {
    const cases: [number, number, boolean, number][] = [
      [SettingId.ENABLE_PUSH, 2, false, ErrorCode.PROTOCOL_ERROR],
      [SettingId.ENABLE_PUSH, 1, true, ErrorCode.PROTOCOL_ERROR],
      [SettingId.INITIAL_WINDOW_SIZE, 0x80000000, false, ErrorCode.FLOW_CONTROL_ERROR],
      [SettingId.MAX_FRAME_SIZE, 16_383, false, ErrorCode.PROTOCOL_ERROR],
      [SettingId.MAX_FRAME_SIZE, 16_777_216, false, ErrorCode.PROTOCOL_ERROR],
    ];
    for (const [id, value, fromServer, code] of cases) {
      const error = applySettings(initialSettings(), payloadOf([[id, value]]), fromServer);
      assert.equal(error?.code, code, `setting ${id} = ${value}`);
      assert.equal(error.connection, true);
    }
  });

  test('accepts the edges of each range, and a client enabling push', () => {
    const settings = initialSettings();
    const edges: [number, number][] = [
      [SettingId.INITIAL_WINDOW_SIZE, 0x7fffffff],
      [SettingId.MAX_FRAME_SIZE, 16_777_215],
      [SettingId.ENABLE_PUSH, 1],
    ];
    assert.equal(applySettings(settings, payloadOf(edges), false), undefined);
    assert.equal(settings.initialWindowSize, 0x7fffffff);
    assert.equal(settings.maxFrameSize, 16_777_215);
  });

  test('announces only what differs from the initial values, and the limits that are finite', () => {
    assert.deepEqual(settingsToSend(initialSettings()), []);
    const ours = { ...initialSettings(), enablePush: false, maxConcurrentStreams: 128, initialWindowSize: 262_144, maxHeaderListSize: 32_768 };
    const sent = settingsToSend(ours);
    assert.deepEqual(sent, [
      [SettingId.ENABLE_PUSH, 0],
      [SettingId.MAX_CONCURRENT_STREAMS, 128],
      [SettingId.INITIAL_WINDOW_SIZE, 262_144],
      [SettingId.MAX_HEADER_LIST_SIZE, 32_768],
    ]);
    const echoed = initialSettings();
    assert.equal(applySettings(echoed, payloadOf(sent), false), undefined);
    assert.deepEqual(echoed, ours, 'what we announce reads back as what we hold');
  });
});
