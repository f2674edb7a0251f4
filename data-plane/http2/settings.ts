/**
 * HTTP/2 SETTINGS (RFC 9113 §6.5) for the gateway's own engine: the parameters, their initial values, the range
 * checks that make a peer's SETTINGS frame a connection error, and applying a received frame to the peer's view.
 * The frame itself is read and written by frame.ts; acknowledging it and applying the window delta to open streams
 * (§6.9.2) is the connection's job.
 */
import { ErrorCode, type FrameError, MAX_FRAME_SIZE_LIMIT, DEFAULT_MAX_FRAME_SIZE, readSettings } from './frame.ts';

/** Setting identifiers (RFC 9113 §6.5.2). */
export const SettingId = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** The largest flow-control window (§6.9.1): 2^31 − 1. */
export const MAX_WINDOW_SIZE = 0x7fffffff;

export interface Http2Settings {
  headerTableSize: number;
  enablePush: boolean;
  /** Unlimited until the peer says otherwise (§6.5.2): Infinity. */
  maxConcurrentStreams: number;
  initialWindowSize: number;
  maxFrameSize: number;
  /** Advisory and unlimited by default (§6.5.2): Infinity. */
  maxHeaderListSize: number;
}

/** What either side may assume before the peer's first SETTINGS (§6.5.2). */
export function initialSettings(): Http2Settings {
  return {
    headerTableSize: 4096,
    enablePush: true,
    maxConcurrentStreams: Number.POSITIVE_INFINITY,
    initialWindowSize: 65_535,
    maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
    maxHeaderListSize: Number.POSITIVE_INFINITY,
  };
}

/**
 * Applies a checked SETTINGS payload (frame.ts checkFrame said yes) to `settings`, in order, as §6.5.3 requires.
 * Returns the connection error for a value out of range: ENABLE_PUSH other than 0 or 1, and MAX_FRAME_SIZE outside
 * [2^14, 2^24 − 1], are PROTOCOL_ERROR; INITIAL_WINDOW_SIZE above 2^31 − 1 is FLOW_CONTROL_ERROR. `fromServer`: the
 * frame came from a server (our upstream leg), which MUST NOT send ENABLE_PUSH 1 (§6.5.2: a client treats it as
 * PROTOCOL_ERROR); a client may send either. Unknown identifiers are ignored (§6.5.2).
 */
export function applySettings(settings: Http2Settings, payload: Buffer, fromServer: boolean): FrameError | undefined {
  let error: FrameError | undefined;
  readSettings(payload, (id, value) => {
    if (error !== undefined) return;
    switch (id) {
      case SettingId.HEADER_TABLE_SIZE:
        settings.headerTableSize = value;
        break;
      case SettingId.ENABLE_PUSH:
        if (value > 1 || (fromServer && value === 1)) error = settingsError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH ${value}`);
        else settings.enablePush = value === 1;
        break;
      case SettingId.MAX_CONCURRENT_STREAMS:
        settings.maxConcurrentStreams = value;
        break;
      case SettingId.INITIAL_WINDOW_SIZE:
        if (value > MAX_WINDOW_SIZE) error = settingsError(ErrorCode.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value}`);
        else settings.initialWindowSize = value;
        break;
      case SettingId.MAX_FRAME_SIZE:
        if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_FRAME_SIZE_LIMIT) error = settingsError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value}`);
        else settings.maxFrameSize = value;
        break;
      case SettingId.MAX_HEADER_LIST_SIZE:
        settings.maxHeaderListSize = value;
        break;
      default:
        break; // §6.5.2: an endpoint that receives an unknown setting MUST ignore it
    }
  });
  return error;
}

function settingsError(code: number, reason: string): FrameError {
  return { code, connection: true, reason: `${reason} is not allowed` };
}

/** The (identifier, value) pairs that announce `ours` where they differ from the protocol's initial values. */
export function settingsToSend(ours: Http2Settings): [number, number][] {
  const initial = initialSettings();
  const pairs: [number, number][] = [];
  if (ours.headerTableSize !== initial.headerTableSize) pairs.push([SettingId.HEADER_TABLE_SIZE, ours.headerTableSize]);
  if (ours.enablePush !== initial.enablePush) pairs.push([SettingId.ENABLE_PUSH, ours.enablePush ? 1 : 0]);
  if (Number.isFinite(ours.maxConcurrentStreams)) pairs.push([SettingId.MAX_CONCURRENT_STREAMS, ours.maxConcurrentStreams]);
  if (ours.initialWindowSize !== initial.initialWindowSize) pairs.push([SettingId.INITIAL_WINDOW_SIZE, ours.initialWindowSize]);
  if (ours.maxFrameSize !== initial.maxFrameSize) pairs.push([SettingId.MAX_FRAME_SIZE, ours.maxFrameSize]);
  if (Number.isFinite(ours.maxHeaderListSize)) pairs.push([SettingId.MAX_HEADER_LIST_SIZE, ours.maxHeaderListSize]);
  return pairs;
}
