/**
 * Stream states of the gateway's own HTTP/2 engine (RFC 9113 §5.1), as a pure transition function over a small
 * number, so a stream object carries one field and no closures. Reserved states do not occur: the gateway never
 * pushes and refuses PUSH_PROMISE (it sets SETTINGS_ENABLE_PUSH 0 towards upstreams; clients may not push).
 *
 *                 send/recv HEADERS
 *        idle ─────────────────────────▶ open
 *                                         │  send END_STREAM → half-closed (local)
 *                                         │  recv END_STREAM → half-closed (remote)
 *        half-closed (local)  ── recv END_STREAM ──▶ closed
 *        half-closed (remote) ── send END_STREAM ──▶ closed
 *        any state ── send/recv RST_STREAM ──▶ closed
 *
 * What a peer may not do in a state is answered with the error §5.1 names: on a half-closed (remote) or closed
 * stream, frames other than WINDOW_UPDATE, PRIORITY and RST_STREAM are STREAM_CLOSED; on an idle stream, anything
 * but the opening HEADERS (or PRIORITY) is PROTOCOL_ERROR.
 */
import { ErrorCode, FrameFlag, FrameType } from './frame.ts';

export const StreamState = {
  IDLE: 0,
  OPEN: 1,
  HALF_CLOSED_LOCAL: 2,
  HALF_CLOSED_REMOTE: 3,
  CLOSED: 4,
} as const;
export type StreamStateValue = (typeof StreamState)[keyof typeof StreamState];

/** The new state, or the error code (negated, so one number says both) that receiving this frame is. */
export type Transition = number;

/** The state after we send a frame of `type` with `flags` (sending is our own code's doing: never an error). */
export function afterSend(state: StreamStateValue, type: number, flags: number): StreamStateValue {
  if (type === FrameType.RST_STREAM) return StreamState.CLOSED;
  const ends = (flags & FrameFlag.END_STREAM) !== 0 && (type === FrameType.DATA || type === FrameType.HEADERS);
  switch (state) {
    case StreamState.IDLE:
      if (type !== FrameType.HEADERS) return state;
      return ends ? StreamState.HALF_CLOSED_LOCAL : StreamState.OPEN;
    case StreamState.OPEN:
      return ends ? StreamState.HALF_CLOSED_LOCAL : state;
    case StreamState.HALF_CLOSED_REMOTE:
      return ends ? StreamState.CLOSED : state;
    default:
      return state;
  }
}

/**
 * The state after we receive a frame of `type` with `flags` on a stream in `state`, or `-code` when the frame is
 * a stream error there (RFC 9113 §5.1). `STREAM_CLOSED` and `PROTOCOL_ERROR` are the two the section names; whether
 * a frame on a closed stream is a connection error (a stream the peer never opened, §5.1.1) is the connection's
 * check, since it needs the highest stream id seen.
 */
export function afterReceive(state: StreamStateValue, type: number, flags: number): Transition {
  if (type === FrameType.PRIORITY) return state; // §5.1: allowed in every state
  if (type === FrameType.RST_STREAM) return state === StreamState.IDLE ? -ErrorCode.PROTOCOL_ERROR : StreamState.CLOSED;
  const ends = (flags & FrameFlag.END_STREAM) !== 0 && (type === FrameType.DATA || type === FrameType.HEADERS);
  switch (state) {
    case StreamState.IDLE:
      if (type !== FrameType.HEADERS) return -ErrorCode.PROTOCOL_ERROR;
      return ends ? StreamState.HALF_CLOSED_REMOTE : StreamState.OPEN;
    case StreamState.OPEN:
      return ends ? StreamState.HALF_CLOSED_REMOTE : state;
    case StreamState.HALF_CLOSED_LOCAL:
      return ends ? StreamState.CLOSED : state;
    case StreamState.HALF_CLOSED_REMOTE:
      // §5.1: WINDOW_UPDATE may still arrive (it governs what we send); anything else is STREAM_CLOSED.
      return type === FrameType.WINDOW_UPDATE ? state : -ErrorCode.STREAM_CLOSED;
    default:
      // Closed: a WINDOW_UPDATE or RST_STREAM the peer sent before it saw our end is ignored (§5.1 "closed"); other
      // frames are STREAM_CLOSED.
      return type === FrameType.WINDOW_UPDATE ? state : -ErrorCode.STREAM_CLOSED;
  }
}
