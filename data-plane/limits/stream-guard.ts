/**
 * Per client connection: how many streams it opened (nginx `keepalive_requests`) and how many of them it reset
 * prematurely (Envoy's rapid-reset defence against CVE-2023-44487), and the GOAWAY each limit ends in.
 *
 * - Requests per connection. The stream that reaches `keepalive_requests` is served; with it the connection gets
 *   GOAWAY(NO_ERROR) naming it as the last stream (node:http2 session.close()), so the client opens a new connection
 *   for what follows instead of having calls cut (RFC 9113 §6.8). This rebalances long-lived clients across workers
 *   and replicas and bounds what one connection can cost over its life.
 * - Premature resets. A stream is reset prematurely when the client resets it (any RST_STREAM code but
 *   REFUSED_STREAM) before the response ended and within `premature_reset_min_stream_lifetime` of its start. Like
 *   Envoy (`ConnectionManagerImpl::maybeDrainDueToPrematureResets`): once `premature_reset_total_stream_count`
 *   streams have closed, the connection is closed when at least half of them were premature; before that, when the
 *   premature ones alone reach half that count. The close is GOAWAY(ENHANCE_YOUR_CALM) and the socket goes at once:
 *   the client proved it is not waiting for answers.
 *
 * The guard lives on the session (a symbol property) and its stream listener is one shared function, so a stream
 * costs one number and one listener, no closure.
 */
import type { Http2Session, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import type { Http2Limits } from '../../shared/config-http2.ts';
import { ErrorCode } from '../http2/frame.ts';
import { rstCodeOf } from '../proxy/rst-codes.ts';
import type { RateLimitedLog } from './rate-limited-log.ts';

const GUARD = Symbol('stream guard');
const PREMATURE_RESETS = 'too many premature stream resets';
const STARTED = Symbol('stream started at');
type GuardedSession = Http2Session & { [GUARD]?: StreamGuard };
type GuardedStream = ServerHttp2Stream & { [GUARD]?: StreamGuard; [STARTED]?: number };

export class StreamGuard {
  private readonly session: ServerHttp2Session;
  private readonly limits: Http2Limits;
  private readonly log: RateLimitedLog;
  private opened = 0;
  private closedStreams = 0;
  private premature = 0;
  private goneAway = false;

  constructor(session: ServerHttp2Session, limits: Http2Limits, log: RateLimitedLog) {
    this.session = session;
    this.limits = limits;
    this.log = log;
    (session as GuardedSession)[GUARD] = this;
  }

  static of(session: Http2Session | undefined): StreamGuard | undefined {
    return session === undefined ? undefined : (session as GuardedSession)[GUARD];
  }

  /** Counts a new stream; returns false when the connection is being closed and the stream must not be served. */
  admit(stream: ServerHttp2Stream): boolean {
    if (this.goneAway) return false;
    const tagged = stream as GuardedStream;
    tagged[GUARD] = this;
    tagged[STARTED] = Date.now();
    stream.on('close', streamClosed);
    this.opened++;
    const max = this.limits.keepaliveRequests;
    if (max > 0 && this.opened >= max && !this.session.closed) {
      // Graceful: GOAWAY(NO_ERROR) with this stream as the last one; the streams in flight finish.
      this.log.note('keepalive_requests', { streams: this.opened }, 'connection reached keepalive_requests: GOAWAY, the client reconnects');
      this.session.close();
    }
    return true;
  }

  onStreamClosed(stream: GuardedStream): void {
    this.closedStreams++;
    const code = rstCodeOf(stream);
    // A reset closes the writable side too (writableFinished says nothing); trailers sent mean the response was whole.
    if (code === ErrorCode.NO_ERROR || code === ErrorCode.REFUSED_STREAM || stream.sentTrailers !== undefined) return;
    if (Date.now() - (stream[STARTED] ?? 0) >= this.limits.prematureResetMinStreamLifetimeMs) return;
    this.premature++;
    if (this.tooManyPrematureResets()) this.closeForResets();
  }

  private tooManyPrematureResets(): boolean {
    const limit = this.limits.prematureResetTotalStreamCount;
    if (limit === 0) return false;
    if (this.closedStreams < limit) return this.premature * 2 >= limit;
    return this.premature * 2 >= this.closedStreams;
  }

  private closeForResets(): void {
    if (this.goneAway || this.session.destroyed) return;
    this.goneAway = true;
    const socket = this.session.socket as { remoteAddress?: string } | undefined;
    this.log.note(
      'premature_resets',
      { client: socket?.remoteAddress, streams: this.closedStreams, prematureResets: this.premature },
      'client reset too many streams prematurely (rapid reset): GOAWAY ENHANCE_YOUR_CALM',
    );
    // destroy(error, code) sends a last GOAWAY with `code` and closes the socket; its streams end with it. An error
    // is needed: destroy(undefined, code) takes the undefined error for its default, NO_ERROR, which wins over `code`.
    this.session.destroy(new Error(PREMATURE_RESETS), ErrorCode.ENHANCE_YOUR_CALM);
  }
}

function streamClosed(this: GuardedStream): void {
  this[GUARD]?.onStreamClosed(this);
}
