/**
 * HTTP/2 flow-control windows of both legs (client sessions on the listeners, upstream sessions in the pool).
 * The protocol's defaults (64 KiB per stream and per connection) make a 1 MiB message cross in 16 window round
 * trips with a WINDOW_UPDATE each; larger windows let large messages stream at link speed. Flow control stays
 * on: a stream never buffers more than its window, so a slow reader holds at most ~1 MiB per stream in the gateway.
 */
import type { Http2Session, Settings } from 'node:http2';

/** SETTINGS_INITIAL_WINDOW_SIZE: what a peer may send on one stream before we read it. */
export const STREAM_WINDOW_BYTES = 1024 * 1024;
/** The connection-level window (all streams of a session together). */
export const SESSION_WINDOW_BYTES = 16 * 1024 * 1024;

export const LOCAL_SETTINGS: Settings = { initialWindowSize: STREAM_WINDOW_BYTES };

/** Raises the session's connection window; call once the session exists (server: 'session', client: 'connect'). */
export function widenSessionWindow(session: Http2Session): void {
  try {
    session.setLocalWindowSize(SESSION_WINDOW_BYTES);
  } catch {
    // a session destroyed in between: nothing to widen
  }
}
