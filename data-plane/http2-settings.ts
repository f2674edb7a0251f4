/**
 * HTTP/2 SETTINGS and flow-control windows of both legs (client sessions on the listeners, upstream sessions in the
 * pool), derived from the configured limits (shared/config-http2.ts).
 *
 * Windows. The protocol's defaults (64 KiB per stream and per connection) make a 1 MiB message cross in 16 window
 * round trips; larger windows let large messages stream at link speed. But the stream window is also what a peer
 * may make the gateway hold per stream: node:http2 consumes the *connection* window as soon as bytes arrive and
 * holds back only the stream window of a stream nobody reads, so a client that never reads its server streams
 * pinned ~1 MiB per stream (issue #11: 800 streams, +720 MiB). The stream window is therefore the per-connection
 * budget (`per_connection_buffer_limit_bytes`) shared among the streams one connection may have open
 * (`max_concurrent_streams`), on both legs: a client's streams can then never make the gateway hold more than the
 * budget, whichever direction stalls (Envoy's edge guidance does the same with a 64 KiB stream window).
 *
 * The downstream SETTINGS also carry SETTINGS_MAX_CONCURRENT_STREAMS and SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113
 * §6.5.2), which nghttp2 enforces: a HEADERS frame above the acknowledged stream limit is a connection error, one
 * above the limit still being acknowledged gets RST_STREAM(REFUSED_STREAM), and a header list over the size limit
 * gets RST_STREAM(ENHANCE_YOUR_CALM) before any 'stream' event.
 */
import type { Http2Session, Settings } from 'node:http2';
import { defaultHttp2Limits, type Http2Limits } from '../shared/config-http2.ts';

/** The connection-level window (all streams of a session together). */
export const SESSION_WINDOW_BYTES = 16 * 1024 * 1024;

/** SETTINGS of the listeners' sessions. */
export function serverSettings(limits: Http2Limits): Settings {
  return {
    initialWindowSize: limits.streamWindowBytes,
    maxConcurrentStreams: limits.maxConcurrentStreams,
    maxHeaderListSize: limits.maxHeaderListSize,
  };
}

/** SETTINGS of the pool's upstream sessions: the same stream window, so a stalled client holds its budget at most. */
export function upstreamSettings(limits: Http2Limits = defaultHttp2Limits()): Settings {
  return { initialWindowSize: limits.streamWindowBytes };
}

/** Raises the session's connection window; call once the session exists (server: 'session', client: 'connect'). */
export function widenSessionWindow(session: Http2Session): void {
  try {
    session.setLocalWindowSize(SESSION_WINDOW_BYTES);
  } catch {
    // a session destroyed in between: nothing to widen
  }
}
