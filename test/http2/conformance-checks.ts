/**
 * Assertions over what h2-peer.py reports for one case, phrased as RFC 9113 §5.4 phrases outcomes:
 *
 * - a connection error is a GOAWAY carrying the code, then the connection closes (§5.4.1: the GOAWAY is a SHOULD,
 *   which this suite holds the engine to, except where the RFC says it MAY be omitted);
 * - a stream error is a RST_STREAM on that stream with the code, the connection stays up (no GOAWAY), and an
 *   ordinary gRPC call made afterwards on the same connection (the peer's "probe") succeeds;
 * - a frame that must be ignored changes nothing: no GOAWAY, no RST_STREAM, and the probe succeeds.
 */
import assert from 'node:assert/strict';
import type { PeerFrame, PeerReport } from './conformance-gateway.ts';

export const END_STREAM = 0x1;
export const ACK = 0x1;

export function describeFrames(report: PeerReport): string {
  const frames = report.frames
    .filter((f) => f.type !== 'WINDOW_UPDATE')
    .map((f) => `${String(f.phase[0])}:${f.type}${f.stream > 0 ? `/${f.stream}` : ''}${f.error !== undefined ? `(${String(f.error)})` : ''}${f.label !== undefined ? `[${f.label}]` : ''}`);
  const shown = frames.length > 40 ? [...frames.slice(0, 20), '…', ...frames.slice(-20)] : frames;
  return `frames: ${shown.join(' ')}; closed=${String(report.closed)}; probe=${JSON.stringify(report.probe)}; error=${String(report.error)}`;
}

function noDriverError(report: PeerReport): void {
  assert.equal(report.error, null, `the peer failed: ${describeFrames(report)}`);
}

export function goaway(report: PeerReport): PeerFrame | undefined {
  return report.frames.find((f) => f.type === 'GOAWAY');
}

/** §5.4.1: GOAWAY with one of `codes`, then the connection closes. */
export function connectionError(report: PeerReport, codes: readonly string[]): void {
  noDriverError(report);
  const frame = goaway(report);
  assert.ok(frame !== undefined, `expected GOAWAY(${codes.join('|')}), got none; ${describeFrames(report)}`);
  assert.ok(codes.includes(String(frame.error)), `expected GOAWAY(${codes.join('|')}), got GOAWAY(${String(frame.error)}); ${describeFrames(report)}`);
  assert.equal(report.closed, true, `the connection stayed open after GOAWAY(${String(frame.error)}); ${describeFrames(report)}`);
  const after = report.frames.slice(report.frames.indexOf(frame) + 1).filter((f) => f.type !== 'TIMEOUT');
  assert.deepEqual(after.map((f) => f.type), [], `frames after the GOAWAY; ${describeFrames(report)}`);
}

/** §5.4.2 with the connection kept: RST_STREAM(code) on `stream`, no GOAWAY, the probe call succeeds. */
export function streamError(report: PeerReport, stream: number, codes: readonly string[]): void {
  noDriverError(report);
  const frame = goaway(report);
  assert.equal(frame, undefined, `expected RST_STREAM(${codes.join('|')}) on stream ${stream}, got a connection error; ${describeFrames(report)}`);
  const rst = report.frames.find((f) => f.type === 'RST_STREAM' && f.stream === stream);
  assert.ok(rst !== undefined, `expected RST_STREAM(${codes.join('|')}) on stream ${stream}, got none; ${describeFrames(report)}`);
  assert.ok(codes.includes(String(rst.error)), `expected RST_STREAM(${codes.join('|')}), got RST_STREAM(${String(rst.error)}); ${describeFrames(report)}`);
  probeOk(report);
}

/** Where the RFC allows either (e.g. §4.2 for DATA, §5.1 "closed"): whichever came must carry one of the codes. */
export function streamOrConnectionError(report: PeerReport, stream: number, streamCodes: readonly string[], connectionCodes = streamCodes): void {
  if (goaway(report) !== undefined) connectionError(report, connectionCodes);
  else streamError(report, stream, streamCodes);
}

/** Nothing happened to the connection or its streams; the probe call succeeds. */
export function ignored(report: PeerReport, options: { allowRst?: readonly number[] } = {}): void {
  noDriverError(report);
  assert.equal(goaway(report), undefined, `unexpected GOAWAY; ${describeFrames(report)}`);
  const resets = report.frames.filter((f) => f.type === 'RST_STREAM' && !(options.allowRst ?? []).includes(f.stream));
  assert.deepEqual(resets.map((f) => `${f.stream}:${String(f.error)}`), [], `unexpected RST_STREAM; ${describeFrames(report)}`);
  probeOk(report);
}

/** The ordinary gRPC call after the case succeeded on the same connection. */
export function probeOk(report: PeerReport): void {
  const probe = report.probe;
  assert.ok(probe !== null, `no probe call was made (connection ended?); ${describeFrames(report)}`);
  assert.equal(probe.goaway, false, `GOAWAY before/while probing; ${describeFrames(report)}`);
  assert.equal(probe.rst, null, `the probe call was reset; ${describeFrames(report)}`);
  assert.equal(probe.status, 200, `probe :status; ${describeFrames(report)}`);
  assert.equal(probe.grpc_status, 0, `probe grpc-status; ${describeFrames(report)}`);
  noHpackTrouble(report);
}

/** The gateway's header blocks all decoded with python-hpack (its encoder is checked on every case). */
export function noHpackTrouble(report: PeerReport): void {
  const bad = report.frames.filter((f) => f.hpack_error !== undefined || f.malformed !== undefined);
  assert.deepEqual(bad.map((f) => f.hpack_error ?? f.malformed), [], `the gateway sent frames we could not decode; ${describeFrames(report)}`);
}

function header(frame: PeerFrame, name: string): string | undefined {
  return frame.headers?.find(([n]) => n === name)?.[1];
}

/** One call on `stream` completed: response HEADERS :status 200, trailers grpc-status 0 with END_STREAM, no reset. */
export function callOk(report: PeerReport, stream: number): void {
  noDriverError(report);
  const frames = report.frames.filter((f) => f.stream === stream);
  assert.equal(frames.find((f) => f.type === 'RST_STREAM'), undefined, `stream ${stream} was reset; ${describeFrames(report)}`);
  const blocks = frames.filter((f) => f.type === 'HEADERS');
  const first = blocks[0];
  const last = blocks[blocks.length - 1];
  assert.ok(first !== undefined && last !== undefined, `no response HEADERS on stream ${stream}; ${describeFrames(report)}`);
  assert.equal(header(first, ':status'), '200', `stream ${stream} :status; ${describeFrames(report)}`);
  assert.equal(header(last, 'grpc-status'), '0', `stream ${stream} grpc-status; ${describeFrames(report)}`);
  assert.ok((last.flags & END_STREAM) !== 0, `stream ${stream} trailers without END_STREAM; ${describeFrames(report)}`);
  noHpackTrouble(report);
}

/** Frames between two marks the case set (indexes into the frame list), `to` absent: to the end. */
export function between(report: PeerReport, from: string, to?: string): PeerFrame[] {
  const start = report.marks[from];
  assert.equal(typeof start, 'number', `mark ${from} missing; ${describeFrames(report)}`);
  const end = to === undefined ? report.frames.length : report.marks[to];
  assert.equal(typeof end, 'number', `mark ${String(to)} missing; ${describeFrames(report)}`);
  return report.frames.slice(start as number, end as number);
}

export function dataBytes(frames: readonly PeerFrame[], stream: number): number {
  return frames.filter((f) => f.type === 'DATA' && f.stream === stream).reduce((sum, f) => sum + (f.data_length ?? 0), 0);
}

/** The gateway's first SETTINGS (its connection preface). */
export function serverSettings(report: PeerReport): Record<string, number> {
  const frame = report.frames.find((f) => f.type === 'SETTINGS' && (f.flags & ACK) === 0);
  assert.ok(frame?.settings !== undefined, `no SETTINGS from the gateway; ${describeFrames(report)}`);
  return frame.settings;
}
