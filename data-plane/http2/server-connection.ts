/**
 * The listener leg of the engine: one client connection (h2c with prior knowledge, or TLS after ALPN `h2`).
 *
 * - Preface (RFC 9113 §3.4): the 24 magic octets, then SETTINGS as the first frame. A client that starts with
 *   anything else gets a readable HTTP/1.1 505 if its first bytes already differ from "PRI " (an HTTP/1 client on
 *   a gRPC port), else GOAWAY(PROTOCOL_ERROR).
 * - Requests (§8.1, §8.3): pseudo-headers first, each once, :method :scheme :path present, lowercase names, no
 *   connection-specific fields, `te` only "trailers", content-length matched by the DATA: anything else is a
 *   malformed request, RST_STREAM(PROTOCOL_ERROR), and the connection goes on.
 * - Limits, exact: SETTINGS_MAX_CONCURRENT_STREAMS (a stream over it is refused with REFUSED_STREAM whether or not
 *   the client acknowledged the setting), SETTINGS_MAX_HEADER_LIST_SIZE (RST_STREAM(ENHANCE_YOUR_CALM) after the
 *   block was decoded), requests per connection (`keepalive_requests`: GOAWAY(NO_ERROR) naming the last one
 *   served), premature resets (Envoy's rule, GOAWAY(ENHANCE_YOUR_CALM)), the memory watermark (new streams answered
 *   RESOURCE_EXHAUSTED).
 * - Rapid reset: new streams are handed to the proxy after the whole read was parsed, so a stream reset in the same
 *   read never opens an upstream stream; no event-loop hop.
 * - A response that ends while the client is still sending gets RST_STREAM(NO_ERROR) after it (§8.1), so the client
 *   stops sending and the stream closes.
 */
import type { Socket } from 'node:net';
import { type ConnectionOptions, ErrorCode, FrameFlag, Http2Connection, type Http2Stream, StreamState, validFieldName, validFieldValue } from './connection.ts';
import { CLIENT_PREFACE } from './frame.ts';
import { afterReceive } from './stream-state.ts';

/** What the listener does with a stream and how it sees the connection's life. */
export interface ServerHooks {
  /** A new request: attach a handler (stream.handler = …) before returning, or answer/reset it. */
  onRequest(stream: Http2Stream, fields: string[], endStream: boolean): void;
  /** The connection is gone. */
  onConnectionClosed(conn: ServerConnection): void;
  /** A stream was opened (counted) / left the connection (for idle tracking). */
  onStreamOpened?(conn: ServerConnection): void;
  onStreamClosed?(conn: ServerConnection): void;
  /**
   * The client speaks HTTP/1 (its first bytes are no preface): what takes the connection over, or undefined to
   * answer it with the listener's readable refusal (a 505) and close.
   */
  onHttp1?(conn: ServerConnection): Http1Takeover | undefined;
  /** Limits hit, for the rate-limited log. */
  onLimit?(conn: ServerConnection, kind: 'keepalive_requests' | 'premature_resets' | 'protocol_error', detail: Record<string, unknown>): void;
}

/** An HTTP/1 connection's new owner: it gets every byte read from here on (valid only during the call). */
export interface Http1Takeover {
  push(bytes: Buffer): void;
  /** Graceful close (the listener drains, the header deadline or the idle timeout passed). */
  shutdown(): void;
}

export interface ServerLimits {
  /** Streams per connection before GOAWAY(NO_ERROR); 0 = unlimited. */
  readonly keepaliveRequests: number;
  readonly prematureResetTotalStreamCount: number;
  readonly prematureResetMinStreamLifetimeMs: number;
}

const PREFACE_START = 4; // "PRI "
/** Ranges of skipped stream ids remembered per connection (older skips then count as closed streams). */
const MAX_SKIPPED_RANGES = 16;

export class ServerConnection extends Http2Connection {
  private readonly hooks: ServerHooks;
  private readonly limits: ServerLimits;
  /** Preface octets still expected. */
  private prefaceAt = 0;
  private highestId = 0;
  /**
   * Stream ids the client skipped (§5.1.1: implicitly closed without ever being opened), as flat [first, last]
   * pairs, newest last, at most MAX_SKIPPED_RANGES of them. Clients rarely skip, so this stays empty.
   */
  private skipped: number[] | undefined;
  /** GOAWAY sent: streams above this id are not served. */
  private goawayLastId = -1;
  private fresh: Http2Stream[] = [];
  private opened = 0;
  private closedCount = 0;
  private premature = 0;
  /** Responses to non-HTTP/2 clients. */
  private readonly notHttp2Response: string;
  /** Set when an HTTP/1 client's connection was taken over (hooks.onHttp1): it reads the bytes from then on. */
  private http1: Http1Takeover | undefined;

  constructor(socket: Socket, options: ConnectionOptions, limits: ServerLimits, hooks: ServerHooks, notHttp2Response: string) {
    super(socket, options);
    this.hooks = hooks;
    this.limits = limits;
    this.notHttp2Response = notHttp2Response;
    // Our SETTINGS wait for the client's magic: an HTTP/1 client must get a readable 505 and no binary frames first.
  }

  get activeStreams(): number {
    return this.streams.size;
  }

  protected override beforeFrames(chunk: Buffer): Buffer | undefined {
    if (this.prefaceAt >= CLIENT_PREFACE.length) return chunk;
    if (this.http1 !== undefined) {
      this.http1.push(chunk);
      return undefined;
    }
    const n = Math.min(chunk.length, CLIENT_PREFACE.length - this.prefaceAt);
    for (let i = 0; i < n; i++) {
      if (chunk[i] !== CLIENT_PREFACE[this.prefaceAt + i]) {
        if (this.prefaceAt + i < PREFACE_START) {
          // An HTTP/1 client: served by the listener's HTTP/1.1 server when it takes the connection (this object
          // stays as its shell until the socket closes), else a readable answer instead of binary frames (teardown
          // first: our SETTINGS are dropped, and the listener hears that the connection closed).
          const takeover = this.hooks.onHttp1?.(this);
          if (takeover !== undefined) {
            this.http1 = takeover;
            // Octets an earlier read matched against the preface ("P" of "POST") are the preface's own.
            takeover.push(this.prefaceAt > 0 ? Buffer.concat([CLIENT_PREFACE.subarray(0, this.prefaceAt), chunk]) : chunk);
            return undefined;
          }
          this.teardown(ErrorCode.PROTOCOL_ERROR);
          this.socket.end(this.notHttp2Response);
          return undefined;
        }
        this.connectionError(ErrorCode.PROTOCOL_ERROR, 'invalid connection preface');
        return undefined;
      }
    }
    this.prefaceAt += n;
    if (this.prefaceAt === CLIENT_PREFACE.length) this.sendPreface();
    return chunk.subarray(n);
  }

  override connectionError(code: number, reason: string): void {
    if (this.http1 === undefined) return super.connectionError(code, reason);
    // An HTTP/1 connection (the grace of a shutdown ran out): no HTTP/2 frame may be written into it.
    if (this.closed) return;
    this.socket.destroy();
    this.teardown(code);
  }

  protected isIdle(id: number): boolean {
    return id > this.highestId;
  }

  protected lastPeerStreamId(): number {
    return this.highestId;
  }

  protected override onHeaderBlock(id: number, flags: number, fields: string[]): void {
    const existing = this.streams.get(id);
    if (existing !== undefined) return this.trailersReceived(existing, flags, fields);
    if ((id & 1) === 0) return this.connectionError(ErrorCode.PROTOCOL_ERROR, `client stream ${id} is even`);
    if (id <= this.highestId) {
      if (this.recentlyReset(id)) return;
      // A stream never opened (skipped): HEADERS on it opens a stream below one already used, an unexpected
      // identifier (§5.1.1: PROTOCOL_ERROR). A stream that was used is closed (§5.1: STREAM_CLOSED).
      if (this.wasSkipped(id)) return this.connectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS opening stream ${id} below stream ${this.highestId}`);
      return this.connectionError(ErrorCode.STREAM_CLOSED, `HEADERS on closed stream ${id}`);
    }
    this.advance(id);
    if (this.goawayLastId >= 0) return; // §6.8: after our GOAWAY, new streams are ignored; the client retries them
    const contentLength = requestContentLength(fields, this.decoder.malformed);
    if (contentLength === -2) {
      this.hooks.onLimit?.(this, 'protocol_error', { stream: id });
      return this.streamError(id, ErrorCode.PROTOCOL_ERROR);
    }
    if (this.streams.size >= this.ours.maxConcurrentStreams) return this.streamError(id, ErrorCode.REFUSED_STREAM);
    const stream = this.addStream(id);
    stream.contentLength = contentLength;
    stream.state = afterReceive(StreamState.IDLE, 1 /* HEADERS */, flags);
    stream.headerBlocks = 1;
    stream.openedAt = Date.now();
    stream.inbox = [fields, (flags & FrameFlag.END_STREAM) !== 0];
    this.fresh.push(stream);
    this.opened++;
    this.hooks.onStreamOpened?.(this);
    const max = this.limits.keepaliveRequests;
    if (max > 0 && this.opened >= max) {
      this.hooks.onLimit?.(this, 'keepalive_requests', { streams: this.opened });
      this.shutdown();
    }
  }

  /** `id` is the client's new highest stream; the odd ids it jumped over are remembered as skipped. */
  private advance(id: number): void {
    const expected = this.highestId === 0 ? 1 : this.highestId + 2;
    if (id > expected) {
      const skipped = (this.skipped ??= []);
      if (skipped.length >= 2 * MAX_SKIPPED_RANGES) skipped.splice(0, 2);
      skipped.push(expected, id - 2);
    }
    this.highestId = id;
  }

  private wasSkipped(id: number): boolean {
    const skipped = this.skipped;
    if (skipped === undefined) return false;
    for (let i = 0; i < skipped.length; i += 2) {
      if (id >= (skipped[i] as number) && id <= (skipped[i + 1] as number)) return true;
    }
    return false;
  }

  /** New streams of this read, handed over now that the whole read was parsed. */
  protected override afterRead(): void {
    if (this.fresh.length === 0) return;
    const fresh = this.fresh;
    this.fresh = [];
    for (const stream of fresh) {
      if (stream.removed || this.closed) continue; // reset in the same read: it never reaches the proxy
      const inbox = stream.inbox as (Buffer | string[] | boolean)[];
      stream.inbox = undefined;
      const fields = inbox[0] as string[];
      const headersEnd = inbox[1] as boolean;
      this.hooks.onRequest(stream, fields, headersEnd);
      // DATA (and trailers) that came in the same read, now that the stream has its handler.
      // `as boolean`: a handler may reset the stream, which TypeScript's narrowing does not see.
      for (let i = 2; i < inbox.length && !(stream.removed as boolean) && stream.handler !== undefined; i += 2) {
        const item = inbox[i];
        const end = inbox[i + 1] as boolean;
        if (Buffer.isBuffer(item)) stream.handler.onData(stream, item, end, true); // copied when it was read
        else stream.handler.onHeaders(stream, item as string[], end);
      }
    }
  }

  /** A new stream's header block refused (too large, depends on itself): its id is used all the same (§5.1.1). */
  protected override rejectHeaderBlock(id: number, code: number): void {
    if (!this.streams.has(id) && id > this.highestId && (id & 1) === 1) this.advance(id);
    this.streamError(id, code);
  }

  protected override localEnded(stream: Http2Stream): void {
    if (!stream.remoteClosed && !stream.removed) {
      // The response is complete while the client still sends: tell it to stop (RFC 9113 §8.1).
      stream.ended = true;
      this.resetStream(stream, ErrorCode.NO_ERROR);
      return;
    }
    stream.ended = true;
    this.maybeClose(stream);
  }

  protected override onStreamRemoved(stream: Http2Stream, byPeer: boolean): void {
    this.closedCount++;
    this.hooks.onStreamClosed?.(this);
    if (byPeer && !stream.ended && stream.resetCode !== ErrorCode.NO_ERROR && stream.resetCode !== ErrorCode.REFUSED_STREAM) {
      if (Date.now() - stream.openedAt < this.limits.prematureResetMinStreamLifetimeMs) {
        this.premature++;
        if (this.tooManyPrematureResets()) {
          this.hooks.onLimit?.(this, 'premature_resets', { streams: this.closedCount, prematureResets: this.premature });
          // After the stream's own bookkeeping: the connection error tears down the rest.
          queueMicrotask(() => this.connectionError(ErrorCode.ENHANCE_YOUR_CALM, 'too many premature stream resets'));
          return;
        }
      }
    }
    if (this.goawayLastId >= 0 && this.streams.size === 0) this.finishShutdown();
  }

  private tooManyPrematureResets(): boolean {
    const limit = this.limits.prematureResetTotalStreamCount;
    if (limit === 0) return false;
    if (this.closedCount < limit) return this.premature * 2 >= limit;
    return this.premature * 2 >= this.closedCount;
  }

  protected onGoaway(): void {
    // The client opens no more streams; those in flight finish. Nothing to do until they are done.
  }

  /** Graceful close: GOAWAY(NO_ERROR) with the last stream we serve; the socket closes when the streams are done. */
  shutdown(code: number = ErrorCode.NO_ERROR, debug = ''): void {
    if (this.closed) return;
    if (this.http1 !== undefined) return this.http1.shutdown();
    if (this.prefaceAt < CLIENT_PREFACE.length) {
      // Not an HTTP/2 connection yet (no magic, so none of our frames either): nothing to say, just close.
      this.socket.destroy();
      this.teardown(ErrorCode.NO_ERROR);
      return;
    }
    if (this.goawayLastId < 0) {
      this.goawayLastId = this.highestId;
      this.goawaySent = true;
      this.writeGoaway(this.goawayLastId, code, debug);
    }
    if (this.streams.size === 0) this.finishShutdown();
  }

  private finishShutdown(): void {
    if (this.closed) return;
    this.flush();
    this.socket.end();
    this.teardown(ErrorCode.NO_ERROR);
    setTimeout(destroySocket, 1000, this.socket).unref();
  }

  protected override onClosed(): void {
    this.hooks.onConnectionClosed(this);
  }
}

function destroySocket(socket: Socket): void {
  if (!socket.destroyed) socket.destroy();
}

const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
const REQUEST_PSEUDO = new Set([':method', ':scheme', ':path', ':authority']);

/**
 * Checks a request's header list (RFC 9113 §8.1.1, §8.2, §8.3.1). Returns its content-length (−1 when absent), or
 * −2 when the request is malformed.
 */
export function requestContentLength(fields: string[], malformed?: boolean): number {
  // `malformed` given: the HPACK decoder already checked the fields' characters (and found them bad or not).
  if (malformed === true) return -2;
  const checkChars = malformed === undefined;
  let regular = false;
  let seen = 0; // bits: method 1, scheme 2, path 4, authority 8
  let contentLength = -1;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    const value = fields[i + 1] as string;
    if (checkChars && (!validFieldName(name) || !validFieldValue(value))) return -2;
    if (name.charCodeAt(0) === 58 /* ':' */) {
      if (regular || !REQUEST_PSEUDO.has(name)) return -2;
      const bit = name === ':method' ? 1 : name === ':scheme' ? 2 : name === ':path' ? 4 : 8;
      if ((seen & bit) !== 0) return -2;
      seen |= bit;
      if (bit === 4 && value.length === 0) return -2;
      continue;
    }
    regular = true;
    if (CONNECTION_SPECIFIC.has(name)) return -2;
    if (name === 'te' && value !== 'trailers') return -2;
    if (name === 'content-length') {
      if (!/^\d{1,15}$/.test(value)) return -2;
      const n = Number(value);
      if (contentLength >= 0 && contentLength !== n) return -2;
      contentLength = n;
    }
  }
  if ((seen & 7) !== 7) return -2;
  return contentLength;
}
