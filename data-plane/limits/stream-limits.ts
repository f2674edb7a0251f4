/**
 * The HTTP/2 limits of the listeners (issue #11), in one place the listeners call once per session and once per
 * stream: the SETTINGS every client gets (data-plane/http2-settings.ts: concurrent streams, header list size, and
 * stream windows sized from the per-connection buffer budget), the per-connection guard (requests per connection,
 * premature resets: stream-guard.ts), the process memory watermark (memory-watermark.ts), and the rapid-reset
 * gap described below.
 *
 * What node:http2 enforces by itself, from the SETTINGS: a HEADERS frame above SETTINGS_MAX_CONCURRENT_STREAMS gets
 * RST_STREAM(REFUSED_STREAM) while the setting is unacknowledged and closes the connection (GOAWAY PROTOCOL_ERROR)
 * once the client has acknowledged it and still ignores it; a header block above SETTINGS_MAX_HEADER_LIST_SIZE gets
 * RST_STREAM(ENHANCE_YOUR_CALM). Neither becomes a 'stream' event, so neither reaches an upstream.
 *
 * Rapid reset. An attacker writes HEADERS and RST_STREAM for the same stream in one burst; node:http2 emits the
 * stream to JavaScript (and a handler would open the upstream stream at once) before it parses the RST_STREAM that
 * follows in the same read. Streams are therefore handed to the proxy from setImmediate, after the whole read was
 * parsed: a stream its client already reset is dropped there and never costs an upstream stream. setImmediate
 * runs in the same event-loop turn, before node:http2 flushes what the turn wrote, so a legitimate call's upstream
 * HEADERS leave no later than before; one shared function and no closure per stream.
 */
import type { IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream, Settings } from 'node:http2';
import type { Http2Limits } from '../../shared/config-http2.ts';
import type { Logger } from '../../shared/logger.ts';
import { ErrorCode } from '../http2/frame.ts';
import { serverSettings } from '../http2-settings.ts';
import { handleStream, type ProxyDeps } from '../proxy/handle-stream.ts';
import { respondError } from '../proxy/respond-error.ts';
import { StreamGuard } from './stream-guard.ts';
import { MemoryWatermark, Overloaded } from './memory-watermark.ts';
import { RateLimitedLog } from './rate-limited-log.ts';

export interface StreamLimits {
  /** SETTINGS for http2.createServer / createSecureServer. */
  readonly settings: Settings;
  /** Call on every new client session. */
  watchSession(session: ServerHttp2Session): void;
  /** Call on every new stream instead of handleStream: serves it unless a limit refuses it. */
  onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, deps: ProxyDeps): void;
  close(): void;
}

export function createStreamLimits(limits: Http2Limits, log: Logger): StreamLimits {
  const notes = new RateLimitedLog(log.child({ module: 'limits' }));
  const watermark = new MemoryWatermark(limits.overload, log.child({ module: 'overload' }));
  return {
    settings: serverSettings(limits),
    watchSession(session) {
      new StreamGuard(session, limits, notes);
    },
    onStream(stream, headers, deps) {
      const guard = StreamGuard.of(stream.session);
      if (guard !== undefined && !guard.admit(stream)) {
        stream.close(ErrorCode.REFUSED_STREAM);
        return;
      }
      if (watermark.overloaded) {
        notes.note('memory_watermark', {}, 'new stream refused: over the memory watermark');
        respondError(stream, new Overloaded());
        return;
      }
      setImmediate(dispatch, stream, headers, deps);
    },
    close() {
      watermark.close();
      notes.close();
    },
  };
}

function dispatch(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, deps: ProxyDeps): void {
  // Reset in the same read as its HEADERS (or the connection went): nothing to forward, nothing to answer.
  if (stream.closed || stream.destroyed) return;
  handleStream(stream, headers, deps);
}
