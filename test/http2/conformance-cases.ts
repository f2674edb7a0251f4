/**
 * The conformance cases: one per requirement of RFC 9113 §3–§8 and RFC 7541, in the spirit of h2spec's list (the
 * requirements, not its code). Each names the h2-peer.py case that sends the frames and says what the RFC
 * requires back; the outcome rules (connection error, stream error, ignored) are conformance-checks.ts's.
 */
import assert from 'node:assert/strict';
import type { PeerReport } from './conformance-gateway.ts';
import { MAX_CONCURRENT_STREAMS } from './conformance-gateway.ts';
import {
  ACK,
  between,
  callOk,
  connectionError,
  dataBytes,
  describeFrames,
  goaway,
  ignored,
  noHpackTrouble,
  probeOk,
  serverSettings,
  streamError,
  streamOrConnectionError,
} from './conformance-checks.ts';

export const SECTIONS = ['§3', '§4', '§5', '§6', '§7', '§8', 'RFC 7541'] as const;
export type Section = (typeof SECTIONS)[number];

export interface ConformanceCase {
  /** The h2-peer.py case. */
  readonly name: string;
  readonly section: Section;
  /** The requirement, with its section, as the test title. */
  readonly requirement: string;
  readonly check: (report: PeerReport) => void;
}

const PROTOCOL_ERROR = ['PROTOCOL_ERROR'];
const FRAME_SIZE_ERROR = ['FRAME_SIZE_ERROR'];
const FLOW_CONTROL_ERROR = ['FLOW_CONTROL_ERROR'];
const COMPRESSION_ERROR = ['COMPRESSION_ERROR'];
const STREAM_CLOSED = ['STREAM_CLOSED'];

const connection = (codes: readonly string[]) => (r: PeerReport) => connectionError(r, codes);
const onStream = (stream: number, codes: readonly string[]) => (r: PeerReport) => streamError(r, stream, codes);
const call = (stream: number) => (r: PeerReport) => {
  callOk(r, stream);
  ignored(r);
};

const cases: ConformanceCase[] = [
  // ---- §3 Starting HTTP/2 ---------------------------------------------------------------------------------------
  {
    name: 'preface-valid',
    section: '§3',
    requirement: '§3.4: the server preface is a SETTINGS frame, the first the server sends, and it acknowledges ours',
    check: (r) => {
      const first = r.frames[0];
      assert.ok(first !== undefined && first.type === 'SETTINGS' && (first.flags & ACK) === 0, describeFrames(r));
      assert.ok(r.frames.some((f) => f.type === 'SETTINGS' && (f.flags & ACK) !== 0), `no SETTINGS ACK; ${describeFrames(r)}`);
      ignored(r);
    },
  },
  {
    name: 'preface-invalid',
    section: '§3',
    requirement: '§3.4: an invalid connection preface is a connection error PROTOCOL_ERROR (GOAWAY may be omitted)',
    check: (r) => {
      assert.equal(r.closed, true, describeFrames(r));
      const frame = goaway(r);
      if (frame !== undefined) assert.equal(frame.error, 'PROTOCOL_ERROR', describeFrames(r));
      assert.equal(r.frames.find((f) => f.type === 'HEADERS'), undefined, describeFrames(r));
    },
  },
  {
    name: 'preface-first-frame-not-settings',
    section: '§3',
    requirement: '§3.4: a client preface not followed by SETTINGS is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  {
    name: 'preface-in-pieces',
    section: '§3',
    requirement: '§3.4: the preface delivered one octet at a time is accepted',
    check: (r) => ignored(r),
  },

  // ---- §4 HTTP Frames -------------------------------------------------------------------------------------------
  {
    name: 'frame-unknown-type-ignored',
    section: '§4',
    requirement: '§4.1: frames of an unknown type are ignored (on stream 0 and on an idle stream)',
    check: (r) => ignored(r),
  },
  {
    name: 'frame-unknown-flags-ignored',
    section: '§4',
    requirement: '§4.1: undefined flags are ignored (PING still answered, HEADERS and DATA still a request)',
    check: (r) => {
      const ack = r.frames.find((f) => f.type === 'PING' && f.opaque === Buffer.from('flagged!').toString('hex'));
      assert.ok(ack !== undefined && ack.flags === ACK, `PING with undefined flags not acknowledged; ${describeFrames(r)}`);
      call(1)(r);
    },
  },
  {
    name: 'frame-reserved-bit-ignored',
    section: '§4',
    requirement: '§4.1: the reserved bit of the stream identifier is ignored',
    check: call(1),
  },
  {
    name: 'frame-data-max-size-accepted',
    section: '§4',
    requirement: '§4.2: a DATA frame of 2^14 octets is accepted',
    check: call(1),
  },
  {
    name: 'frame-response-respects-max-frame-size',
    section: '§4',
    requirement: '§4.2: the server sends no frame above our SETTINGS_MAX_FRAME_SIZE (a 20 KB reply is split)',
    check: (r) => {
      const big = r.frames.filter((f) => f.length > 16_384);
      assert.deepEqual(big.map((f) => `${f.type}:${f.length}`), [], describeFrames(r));
      assert.ok(r.frames.filter((f) => f.type === 'DATA' && f.stream === 1).length >= 2, describeFrames(r));
      assert.ok(dataBytes(r.frames, 1) > 20_000, describeFrames(r));
      call(1)(r);
    },
  },
  {
    name: 'frame-data-too-large',
    section: '§4',
    requirement: '§4.2: DATA above SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR (stream or connection)',
    check: (r) => streamOrConnectionError(r, 1, FRAME_SIZE_ERROR),
  },
  {
    name: 'frame-headers-too-large',
    section: '§4',
    requirement: '§4.2: HEADERS above SETTINGS_MAX_FRAME_SIZE is a connection error FRAME_SIZE_ERROR',
    check: connection(FRAME_SIZE_ERROR),
  },
  {
    name: 'frame-settings-too-large',
    section: '§4',
    requirement: '§4.2: SETTINGS above SETTINGS_MAX_FRAME_SIZE is a connection error FRAME_SIZE_ERROR',
    check: connection(FRAME_SIZE_ERROR),
  },
  {
    name: 'headers-priority-too-short',
    section: '§4',
    requirement: '§4.2: HEADERS too short for its priority fields is a connection error FRAME_SIZE_ERROR',
    check: connection(FRAME_SIZE_ERROR),
  },
  {
    name: 'frame-invalid-header-block',
    section: '§4',
    requirement: '§4.3: a header block that cannot be decompressed is a connection error COMPRESSION_ERROR',
    check: connection(COMPRESSION_ERROR),
  },
  {
    name: 'frame-priority-inside-header-block',
    section: '§4',
    requirement: '§4.3: a PRIORITY frame inside a header block is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  {
    name: 'frame-headers-other-stream-inside-header-block',
    section: '§4',
    requirement: '§4.3: HEADERS of another stream inside a header block is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },

  // ---- §5 Streams and Multiplexing ------------------------------------------------------------------------------
  {
    name: 'stream-idle-data',
    section: '§5',
    requirement: '§5.1 idle: DATA is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  {
    name: 'stream-idle-rst-stream',
    section: '§5',
    requirement: '§5.1 idle: RST_STREAM is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  {
    name: 'stream-idle-window-update',
    section: '§5',
    requirement: '§5.1 idle: WINDOW_UPDATE is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  {
    name: 'stream-idle-continuation',
    section: '§5',
    requirement: '§5.1 idle: CONTINUATION is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  {
    name: 'stream-half-closed-remote-data',
    section: '§5',
    requirement: '§5.1 half-closed (remote): DATA is a stream error STREAM_CLOSED',
    check: onStream(1, STREAM_CLOSED),
  },
  {
    name: 'stream-half-closed-remote-headers',
    section: '§5',
    requirement: '§5.1 half-closed (remote): HEADERS is a stream error STREAM_CLOSED',
    check: onStream(1, STREAM_CLOSED),
  },
  {
    name: 'stream-closed-by-peer-reset-data',
    section: '§5',
    requirement: '§5.1 closed (we reset it): DATA is STREAM_CLOSED, on the stream or the connection',
    check: (r) => streamOrConnectionError(r, 1, STREAM_CLOSED),
  },
  {
    name: 'stream-closed-by-peer-reset-headers',
    section: '§5',
    requirement: '§5.1 closed (we reset it): HEADERS is STREAM_CLOSED, on the stream or the connection',
    check: (r) => streamOrConnectionError(r, 1, STREAM_CLOSED),
  },
  {
    name: 'stream-closed-data',
    section: '§5',
    requirement: '§5.1 closed (both ends ended): DATA is STREAM_CLOSED, on the stream or the connection',
    check: (r) => streamOrConnectionError(r, 1, STREAM_CLOSED),
  },
  {
    name: 'stream-closed-headers',
    section: '§5',
    requirement: '§5.1, §5.1.1 closed (both ends ended): HEADERS is STREAM_CLOSED or a connection error PROTOCOL_ERROR',
    check: (r) => streamOrConnectionError(r, 1, STREAM_CLOSED, ['STREAM_CLOSED', 'PROTOCOL_ERROR']),
  },
  {
    name: 'stream-id-even',
    section: '§5',
    requirement: '§5.1.1: an even stream identifier from a client is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  {
    name: 'stream-id-decreasing',
    section: '§5',
    requirement: '§5.1.1: a new stream identifier lower than one already used is a connection error PROTOCOL_ERROR',
    check: (r) => {
      connectionError(r, PROTOCOL_ERROR);
      assert.equal(goaway(r)?.last_stream, 5, `GOAWAY last-stream-id; ${describeFrames(r)}`);
    },
  },
  {
    name: 'stream-many-sequential-calls',
    section: '§5',
    requirement: '§5.1.1: streams opened in increasing order, twenty calls on one connection, all succeed',
    check: (r) => {
      for (let id = 1; id <= 39; id += 2) callOk(r, id);
      ignored(r);
    },
  },
  {
    name: 'stream-concurrency-refused',
    section: '§5',
    requirement: '§5.1.2: a stream above SETTINGS_MAX_CONCURRENT_STREAMS is refused (REFUSED_STREAM), the others live on',
    check: (r) => {
      assert.equal(serverSettings(r)['3'], MAX_CONCURRENT_STREAMS, describeFrames(r));
      const over = 1 + 2 * MAX_CONCURRENT_STREAMS;
      const beforeRelease = r.frames.slice(0, r.marks['released'] as number).filter((f) => f.type === 'RST_STREAM');
      assert.deepEqual(beforeRelease.map((f) => `${f.stream}:${String(f.error)}`), [`${over}:REFUSED_STREAM`], describeFrames(r));
      assert.equal(goaway(r), undefined, describeFrames(r));
      probeOk(r);
    },
  },
  {
    name: 'stream-headers-self-dependency',
    section: '§5',
    requirement: '§5.3.1: HEADERS depending on its own stream is a stream error PROTOCOL_ERROR',
    check: onStream(1, PROTOCOL_ERROR),
  },
  {
    name: 'stream-priority-self-dependency',
    section: '§5',
    requirement: '§5.3.1: PRIORITY depending on its own stream is a stream error PROTOCOL_ERROR',
    check: onStream(1, PROTOCOL_ERROR),
  },
  {
    name: 'stream-priority-on-idle-ignored',
    section: '§5',
    requirement: '§5.3.2: PRIORITY on idle streams is accepted and ignored; the stream opens later as usual',
    check: call(3),
  },
  {
    name: 'stream-reset-by-peer-then-continue',
    section: '§5',
    requirement: '§5.4.2: a stream the client resets ends alone; the connection goes on',
    check: (r) => ignored(r),
  },
  {
    name: 'stream-connection-error-closes',
    section: '§5',
    requirement: '§5.4.1: after a connection error the server sends GOAWAY and closes the TCP connection',
    check: (r) => {
      connectionError(r, FRAME_SIZE_ERROR);
      assert.equal(goaway(r)?.last_stream, 0, describeFrames(r));
    },
  },
  {
    name: 'stream-unknown-frame-inside-header-block',
    section: '§5',
    requirement: '§5.5: an extension frame inside a header block is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },

  // ---- §6 Frame Definitions -------------------------------------------------------------------------------------
  { name: 'data-stream-zero', section: '§6', requirement: '§6.1: DATA on stream 0 is a connection error PROTOCOL_ERROR', check: connection(PROTOCOL_ERROR) },
  {
    name: 'data-invalid-pad-length',
    section: '§6',
    requirement: '§6.1: DATA padding not shorter than the payload is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  { name: 'data-padded-accepted', section: '§6', requirement: '§6.1: padded DATA is accepted, padding removed', check: call(1) },
  { name: 'headers-stream-zero', section: '§6', requirement: '§6.2: HEADERS on stream 0 is a connection error PROTOCOL_ERROR', check: connection(PROTOCOL_ERROR) },
  {
    name: 'headers-invalid-pad-length',
    section: '§6',
    requirement: '§6.2: HEADERS padding not shorter than the payload is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  {
    name: 'headers-padded-with-priority-accepted',
    section: '§6',
    requirement: '§6.2: HEADERS with padding and priority fields is accepted',
    check: call(1),
  },
  { name: 'priority-stream-zero', section: '§6', requirement: '§6.3: PRIORITY on stream 0 is a connection error PROTOCOL_ERROR', check: connection(PROTOCOL_ERROR) },
  {
    name: 'priority-bad-length',
    section: '§6',
    requirement: '§6.3: PRIORITY of a length other than 5 is a stream error FRAME_SIZE_ERROR',
    check: onStream(1, FRAME_SIZE_ERROR),
  },
  { name: 'priority-on-open-stream-ignored', section: '§6', requirement: '§6.3: PRIORITY on an open stream changes nothing', check: call(1) },
  { name: 'rst-stream-zero', section: '§6', requirement: '§6.4: RST_STREAM on stream 0 is a connection error PROTOCOL_ERROR', check: connection(PROTOCOL_ERROR) },
  {
    name: 'rst-stream-bad-length',
    section: '§6',
    requirement: '§6.4: RST_STREAM of a length other than 4 is a connection error FRAME_SIZE_ERROR',
    check: connection(FRAME_SIZE_ERROR),
  },
  {
    name: 'settings-ack-with-payload',
    section: '§6',
    requirement: '§6.5: SETTINGS with ACK and a payload is a connection error FRAME_SIZE_ERROR',
    check: connection(FRAME_SIZE_ERROR),
  },
  { name: 'settings-on-stream', section: '§6', requirement: '§6.5: SETTINGS on a stream is a connection error PROTOCOL_ERROR', check: connection(PROTOCOL_ERROR) },
  {
    name: 'settings-bad-length',
    section: '§6',
    requirement: '§6.5: SETTINGS whose length is not a multiple of 6 is a connection error FRAME_SIZE_ERROR',
    check: connection(FRAME_SIZE_ERROR),
  },
  {
    name: 'settings-acknowledged',
    section: '§6',
    requirement: '§6.5.3: every SETTINGS is acknowledged with an empty SETTINGS ACK',
    check: (r) => {
      const acks = between(r, 'sent').filter((f) => f.type === 'SETTINGS' && (f.flags & ACK) !== 0);
      assert.equal(acks.length, 1, describeFrames(r));
      assert.equal(acks[0]?.length, 0, describeFrames(r));
      ignored(r);
    },
  },
  {
    name: 'settings-enable-push-invalid',
    section: '§6',
    requirement: '§6.5.2: SETTINGS_ENABLE_PUSH above 1 is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  { name: 'settings-enable-push-one-accepted', section: '§6', requirement: '§6.5.2: a client may send SETTINGS_ENABLE_PUSH 1', check: (r) => ignored(r) },
  {
    name: 'settings-initial-window-too-large',
    section: '§6',
    requirement: '§6.5.2: SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1 is a connection error FLOW_CONTROL_ERROR',
    check: connection(FLOW_CONTROL_ERROR),
  },
  {
    name: 'settings-max-frame-size-too-small',
    section: '§6',
    requirement: '§6.5.2: SETTINGS_MAX_FRAME_SIZE below 2^14 is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  {
    name: 'settings-max-frame-size-too-large',
    section: '§6',
    requirement: '§6.5.2: SETTINGS_MAX_FRAME_SIZE above 2^24-1 is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  { name: 'settings-unknown-ignored', section: '§6', requirement: '§6.5.2: unknown settings are ignored', check: (r) => ignored(r) },
  {
    name: 'settings-values-in-order',
    section: '§6',
    requirement: '§6.5.3: settings apply in order (INITIAL_WINDOW_SIZE 100 then 1: one octet of DATA a window)',
    check: (r) => {
      const stream = 1;
      const first = between(r, 'request', 'open window').filter((f) => f.type === 'DATA' && f.stream === stream);
      assert.deepEqual(first.map((f) => f.data_length), [1], describeFrames(r));
      callOk(r, stream);
      ignored(r);
    },
  },
  { name: 'ping-ack-echoes-payload', section: '§6', requirement: '§6.7: PING is answered by a PING ACK with the same payload', check: (r) => {
    const acks = between(r, 'ping').filter((f) => f.type === 'PING' && f.opaque === '01020304fefdfcfb');
    assert.equal(acks.length, 1, describeFrames(r));
    assert.equal(acks[0]?.flags, ACK, describeFrames(r));
    ignored(r);
  } },
  {
    name: 'ping-ack-not-answered',
    section: '§6',
    requirement: '§6.7: a PING ACK is not answered',
    check: (r) => {
      assert.equal(r.frames.find((f) => f.type === 'PING' && f.opaque === Buffer.from('ackack!!').toString('hex')), undefined, describeFrames(r));
      ignored(r);
    },
  },
  { name: 'ping-on-stream', section: '§6', requirement: '§6.7: PING on a stream is a connection error PROTOCOL_ERROR', check: connection(PROTOCOL_ERROR) },
  { name: 'ping-bad-length', section: '§6', requirement: '§6.7: PING of a length other than 8 is a connection error FRAME_SIZE_ERROR', check: connection(FRAME_SIZE_ERROR) },
  { name: 'goaway-on-stream', section: '§6', requirement: '§6.8: GOAWAY on a stream is a connection error PROTOCOL_ERROR', check: connection(PROTOCOL_ERROR) },
  {
    name: 'goaway-bad-length',
    section: '§6',
    requirement: '§6.8, §4.2: GOAWAY shorter than 8 octets is a connection error FRAME_SIZE_ERROR',
    check: connection(FRAME_SIZE_ERROR),
  },
  {
    name: 'goaway-in-flight-completes',
    section: '§6',
    requirement: '§6.8: after the client\'s GOAWAY the call in flight still completes',
    check: (r) => {
      callOk(r, 1);
      assert.equal(goaway(r), undefined, describeFrames(r));
    },
  },
  {
    name: 'window-update-zero-connection',
    section: '§6',
    requirement: '§6.9: WINDOW_UPDATE of 0 on the connection is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  {
    name: 'window-update-zero-stream',
    section: '§6',
    requirement: '§6.9: WINDOW_UPDATE of 0 on a stream is a stream error PROTOCOL_ERROR',
    check: onStream(1, PROTOCOL_ERROR),
  },
  {
    name: 'window-update-bad-length',
    section: '§6',
    requirement: '§6.9: WINDOW_UPDATE of a length other than 4 is a connection error FRAME_SIZE_ERROR',
    check: connection(FRAME_SIZE_ERROR),
  },
  { name: 'window-update-reserved-bit-ignored', section: '§6', requirement: '§6.9: the reserved bit of the increment is ignored', check: (r) => ignored(r) },
  {
    name: 'window-update-overflow-connection',
    section: '§6',
    requirement: '§6.9.1: a connection window above 2^31-1 is a connection error FLOW_CONTROL_ERROR',
    check: connection(FLOW_CONTROL_ERROR),
  },
  {
    name: 'window-update-overflow-stream',
    section: '§6',
    requirement: '§6.9.1: a stream window above 2^31-1 is a stream error FLOW_CONTROL_ERROR',
    check: onStream(1, FLOW_CONTROL_ERROR),
  },
  {
    name: 'window-update-overflow-stream-stepwise',
    section: '§6',
    requirement: '§6.9.1: two WINDOW_UPDATEs taking a stream window above 2^31-1 are a stream error FLOW_CONTROL_ERROR',
    check: onStream(1, FLOW_CONTROL_ERROR),
  },
  {
    name: 'flow-data-beyond-stream-window',
    section: '§6',
    requirement: '§6.9.1: DATA beyond the stream window is a FLOW_CONTROL_ERROR',
    check: (r) => streamOrConnectionError(r, 1, FLOW_CONTROL_ERROR),
  },
  {
    name: 'flow-window-respected',
    section: '§6',
    requirement: '§6.9.1, §6.9.2: the server sends exactly what the window allows (0, +7, then +10 by INITIAL_WINDOW_SIZE)',
    check: (r) => {
      const stream = 1;
      assert.equal(dataBytes(r.frames.slice(0, r.marks['one'] as number), stream), 0, describeFrames(r));
      assert.equal(dataBytes(between(r, 'one', 'settings up'), stream), 7, describeFrames(r));
      assert.equal(dataBytes(between(r, 'settings up', 'rest'), stream), 10, describeFrames(r));
      callOk(r, stream);
      ignored(r);
    },
  },
  {
    name: 'flow-negative-window',
    section: '§6',
    requirement: '§6.9.2: a window made negative by SETTINGS sends nothing until WINDOW_UPDATE lifts it above 0',
    check: (r) => {
      const stream = 1;
      assert.equal(dataBytes(r.frames.slice(0, r.marks['lowered'] as number), stream), 3, describeFrames(r));
      assert.equal(dataBytes(between(r, 'lowered', 'plus one'), stream), 0, describeFrames(r));
      assert.equal(dataBytes(between(r, 'plus one', 'rest'), stream), 1, describeFrames(r));
      callOk(r, stream);
      ignored(r);
    },
  },
  {
    name: 'header-list-too-large',
    section: '§6',
    requirement: '§6.5.2, §8.2.3: a header list above SETTINGS_MAX_HEADER_LIST_SIZE is refused for its stream; HPACK stays in step',
    check: (r) => {
      assert.ok(serverSettings(r)['6'] !== undefined, `no SETTINGS_MAX_HEADER_LIST_SIZE announced; ${describeFrames(r)}`);
      const refused =
        r.frames.some((f) => f.type === 'RST_STREAM' && f.stream === 1) ||
        r.frames.some((f) => f.type === 'HEADERS' && f.stream === 1 && f.headers?.some(([n, v]) => n === ':status' && v === '431'));
      assert.ok(refused, `the oversized request was not refused; ${describeFrames(r)}`);
      assert.equal(goaway(r), undefined, describeFrames(r));
      probeOk(r); // the probe references the table entry the oversized block added
    },
  },
  { name: 'continuation-many-frames', section: '§6', requirement: '§6.10: a header block in HEADERS and many CONTINUATION frames is accepted', check: call(1) },
  {
    name: 'continuation-split-at-every-byte',
    section: '§6',
    requirement: '§6.10: one header block split at every octet (and into one-octet frames) decodes the same every time',
    check: (r) => {
      const streams = r.marks['streams'] as number[];
      assert.equal(streams.length, r.marks['block_length'] as number, describeFrames(r));
      for (const stream of streams) callOk(r, stream);
      ignored(r);
    },
  },
  {
    name: 'continuation-followed-by-data',
    section: '§6',
    requirement: '§6.10: a frame other than CONTINUATION inside a header block is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  { name: 'continuation-stream-zero', section: '§6', requirement: '§6.10: CONTINUATION on stream 0 is a connection error PROTOCOL_ERROR', check: connection(PROTOCOL_ERROR) },
  {
    name: 'continuation-other-stream',
    section: '§6',
    requirement: '§6.10: CONTINUATION on another stream than its HEADERS is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  {
    name: 'continuation-after-end-headers',
    section: '§6',
    requirement: '§6.10: CONTINUATION after HEADERS with END_HEADERS is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  {
    name: 'continuation-after-continuation-end-headers',
    section: '§6',
    requirement: '§6.10: CONTINUATION after a CONTINUATION with END_HEADERS is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },
  {
    name: 'continuation-after-data',
    section: '§6',
    requirement: '§6.10: CONTINUATION after DATA is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },

  // ---- §7 Error Codes -------------------------------------------------------------------------------------------
  {
    name: 'error-code-unknown-rst-stream',
    section: '§7',
    requirement: '§7: an unknown error code in RST_STREAM triggers nothing special',
    check: (r) => ignored(r),
  },
  {
    name: 'error-code-unknown-goaway',
    section: '§7',
    requirement: '§7: an unknown error code in GOAWAY triggers nothing special (PING still answered)',
    check: (r) => {
      assert.equal(r.error, null, describeFrames(r));
      assert.equal(goaway(r), undefined, describeFrames(r));
      assert.ok(r.frames.some((f) => f.type === 'PING' && (f.flags & ACK) !== 0), describeFrames(r));
      noHpackTrouble(r);
    },
  },

  // ---- §8 Expressing HTTP Semantics -----------------------------------------------------------------------------
  ...malformed('http-uppercase-header-name', '§8.2.1: an uppercase field name makes the request malformed'),
  ...malformed('http-header-name-with-space', '§8.2.1: a field name with a space makes the request malformed'),
  ...malformed('http-header-value-with-newline', '§8.2.1: a field value with LF makes the request malformed'),
  ...malformed('http-header-value-with-nul', '§8.2.1: a field value with NUL makes the request malformed'),
  ...malformed('http-header-value-leading-space', '§8.2.1: a field value with leading whitespace makes the request malformed'),
  ...malformed('http-connection-header', '§8.2.2: a connection header makes the request malformed'),
  ...malformed('http-keep-alive-header', '§8.2.2: a keep-alive header makes the request malformed'),
  ...malformed('http-proxy-connection-header', '§8.2.2: a proxy-connection header makes the request malformed'),
  ...malformed('http-transfer-encoding-header', '§8.2.2: a transfer-encoding header makes the request malformed'),
  ...malformed('http-upgrade-header', '§8.2.2: an upgrade header makes the request malformed'),
  ...malformed('http-te-not-trailers', '§8.2.2: te other than "trailers" makes the request malformed'),
  { name: 'http-te-trailers-accepted', section: '§8', requirement: '§8.2.2: te: trailers is accepted', check: call(1) },
  ...malformed('http-unknown-pseudo-header', '§8.3: an unknown pseudo-header makes the request malformed'),
  ...malformed('http-response-pseudo-header-in-request', '§8.3: a response pseudo-header (:status) in a request makes it malformed'),
  ...malformed('http-pseudo-header-after-regular', '§8.3: a pseudo-header after a regular field makes the request malformed'),
  ...malformed('http-missing-method', '§8.3.1: a request without :method is malformed'),
  ...malformed('http-missing-scheme', '§8.3.1: a request without :scheme is malformed'),
  ...malformed('http-missing-path', '§8.3.1: a request without :path is malformed'),
  ...malformed('http-empty-path', '§8.3.1: a request with an empty :path is malformed'),
  ...malformed('http-duplicate-method', '§8.3: a duplicated :method makes the request malformed'),
  ...malformed('http-duplicate-scheme', '§8.3: a duplicated :scheme makes the request malformed'),
  ...malformed('http-duplicate-path', '§8.3: a duplicated :path makes the request malformed'),
  ...malformed('http-duplicate-authority', '§8.3: a duplicated :authority makes the request malformed'),
  ...malformed('http-content-length-mismatch', '§8.1.1: content-length above the DATA received makes the request malformed'),
  ...malformed('http-content-length-mismatch-multiple-data', '§8.1.1: content-length unequal to the sum of several DATA frames is malformed'),
  ...malformed('http-content-length-exceeded', '§8.1.1: DATA beyond content-length makes the request malformed'),
  { name: 'http-content-length-matching', section: '§8', requirement: '§8.1.1: a content-length matching the DATA is accepted', check: call(1) },
  { name: 'http-trailers-accepted', section: '§8', requirement: '§8.1: request trailers ending the stream are accepted', check: call(1) },
  ...malformed('http-trailers-with-pseudo-header', '§8.1: trailers with a pseudo-header make the request malformed'),
  ...malformed('http-second-headers-without-end-stream', '§8.1: a second header block without END_STREAM makes the request malformed'),
  {
    name: 'http-push-promise-from-client',
    section: '§8',
    requirement: '§8.4: PUSH_PROMISE from a client is a connection error PROTOCOL_ERROR',
    check: connection(PROTOCOL_ERROR),
  },

  // ---- RFC 7541 HPACK -------------------------------------------------------------------------------------------
  ...hpackError('hpack-indexed-zero', '§6.1: an indexed field with index 0 is a decoding error'),
  ...hpackError('hpack-indexed-beyond-tables', '§2.3.3: an index beyond the static and dynamic tables is a decoding error'),
  ...hpackError('hpack-literal-name-index-beyond-tables', '§2.3.3: a literal whose name index is beyond the tables is a decoding error'),
  ...hpackError('hpack-size-update-above-setting', '§6.3: a table size update above SETTINGS_HEADER_TABLE_SIZE is a decoding error'),
  ...hpackError('hpack-size-update-after-field', '§4.2: a table size update after a field is a decoding error'),
  ...hpackError('hpack-huffman-padding-too-long', '§5.2: Huffman padding longer than 7 bits is a decoding error'),
  ...hpackError('hpack-huffman-padding-zeros', '§5.2: Huffman padding that is not the EOS prefix (zeros) is a decoding error'),
  ...hpackError('hpack-huffman-eos', '§5.2: a Huffman string containing EOS is a decoding error'),
  ...hpackError('hpack-integer-overflow', '§5.1: an integer beyond what the decoder accepts is a decoding error'),
  ...hpackError('hpack-truncated-string', '§5.2: a string longer than the block is a decoding error'),
  {
    name: 'hpack-size-updates-at-block-start-accepted',
    section: 'RFC 7541',
    requirement: '§4.2: two size updates (0, then 4096) at the start of a block are accepted',
    check: call(1),
  },
  {
    name: 'hpack-size-update-zero-evicts',
    section: 'RFC 7541',
    requirement: '§4.3: a size update to 0 evicts every entry: referencing one afterwards is a decoding error',
    check: (r) => {
      callOk(r, 1);
      connectionError(r, COMPRESSION_ERROR);
    },
  },
  {
    name: 'hpack-entry-larger-than-table-empties-it',
    section: 'RFC 7541',
    requirement: '§4.4: an entry larger than the table empties it (no error); the evicted entry is gone',
    check: (r) => {
      callOk(r, 1);
      connectionError(r, COMPRESSION_ERROR);
    },
  },
  {
    name: 'hpack-dynamic-table-eviction',
    section: 'RFC 7541',
    requirement: '§4.3: entries evicted across sixteen requests that reference the dynamic table: every call succeeds',
    check: (r) => {
      const streams = r.marks['streams'] as number[];
      assert.equal(streams.length, 16, describeFrames(r));
      for (const stream of streams) callOk(r, stream);
      ignored(r);
    },
  },
  { name: 'hpack-never-indexed-accepted', section: 'RFC 7541', requirement: '§6.2.3: a never-indexed literal is accepted', check: call(1) },
  {
    name: 'settings-header-table-size-zero',
    section: 'RFC 7541',
    requirement: '§4.2 (RFC 9113 §6.5.2): with our SETTINGS_HEADER_TABLE_SIZE 0 the server signals a size update to 0 and indexes nothing',
    check: (r) => {
      const blocks = between(r, 'calls').filter((f) => f.type === 'HEADERS');
      assert.ok(blocks.length >= 6, describeFrames(r));
      assert.equal(blocks[0]?.block_first_byte, 0x20, `the first block after the setting must start with a size update to 0; ${describeFrames(r)}`);
      for (const stream of [1, 3, 5]) callOk(r, stream);
      ignored(r);
    },
  },
];

function malformed(name: string, requirement: string): ConformanceCase[] {
  return [{ name, section: '§8', requirement: `${requirement}: a stream error PROTOCOL_ERROR`, check: onStream(1, PROTOCOL_ERROR) }];
}

function hpackError(name: string, requirement: string): ConformanceCase[] {
  return [{ name, section: 'RFC 7541', requirement: `${requirement}: a connection error COMPRESSION_ERROR`, check: connection(COMPRESSION_ERROR) }];
}

export const CONFORMANCE_CASES: readonly ConformanceCase[] = cases;
