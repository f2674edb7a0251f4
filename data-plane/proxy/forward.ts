/**
 * One proxied call from the moment its node is picked to its last frame: attempts on pooled upstream sessions,
 * request bytes streamed up with backpressure, the response relayed exactly (headers, data, trailers, or one
 * trailers-only HEADERS frame), and every failure turned into a gRPC status for the client. A small state machine:
 *
 *   connecting → waiting (stream open, no response headers) → streaming (headers relayed) → finished
 *
 * and `finished` is reached exactly once, by the one frame that ends the client's stream.
 *
 * Rules (gRPC PROTOCOL-HTTP2.md, and what users of other gateways trip over; docs/proxying.md):
 * - Retries happen only before response headers: on a connect failure (next untried node, up to `retries`, within
 *   `retry_timeout`), and once on a stream the upstream refused (REFUSED_STREAM, or above a GOAWAY's
 *   last-stream-id), which it never processed. Request bytes are kept for the replay until the response starts,
 *   up to REPLAY_LIMIT_BYTES; a larger request is simply not retried. `grpc-previous-rpc-attempts` tells the
 *   upstream a call is a retry (gRFC A6).
 * - `grpc-timeout` is enforced here (DEADLINE_EXCEEDED, upstream reset with CANCEL) and forwarded as the time left.
 * - A client reset, or the client going away, resets the upstream stream with CANCEL; no upstream stream outlives
 *   its client stream. A reset travels as a reset, never as a half-close (reset-stream.ts): the upstream of a
 *   cancelled upload must not see END_STREAM, which says the request is complete.
 * - A malformed `grpc-timeout` is answered INTERNAL, as gRPC servers do, and never forwarded (grpc-timeout.ts).
 * - A stream that ends without grpc-status, a lost connection, a non-200 or non-gRPC answer is never a success.
 */
import type { ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { BadRequest, DeadlineExceeded, MessageTooLarge, UpstreamConnectError, UpstreamProtocolError, UpstreamReset, UpstreamTimeout, describe } from '../../shared/errors.ts';
import { GrpcStatus, grpcStatusFromHttp } from '../../shared/grpc-status.ts';
import type { Logger } from '../../shared/logger.ts';
import { ErrorCode, FrameFlag } from '../http2/frame.ts';
import type { RouteTarget } from '../routing/route-target.ts';
import { UNKNOWN_END, type BasePluginRequest } from '../plugins/request.ts';
import type { PooledSession, SessionPool } from '../upstream/pool.ts';
import type { ResolvedUpstream, UpstreamNode } from '../upstream/upstream.ts';
import { MAX_TIMER_DELAY_MS, clampDelay } from '../timers.ts';
import { MALFORMED_TIMEOUT, formatGrpcTimeout, parseGrpcTimeout } from './grpc-timeout.ts';
import { relayedHeaders, upstreamRequestHeaders } from './headers.ts';
import { MessageMeter } from './message-meter.ts';
import { resetStream } from './reset-stream.ts';
import { addFields, errorTrailers, respondError } from './respond-error.ts';
import { rstCodeOf, statusForRst, rstName } from './rst-codes.ts';

/** Request bytes kept for a retry until the response starts; beyond this a call is not retried (Envoy-style). */
export const REPLAY_LIMIT_BYTES = 64 * 1024;
const END_STREAM = FrameFlag.END_STREAM;

/**
 * The call a stream belongs to. Listeners are shared module functions that find their call through the stream they
 * are called on, so a call allocates no closure per listener (the hot path: one ProxyCall, two streams).
 */
const CALL = Symbol('proxy call');
type Tagged<S> = S & { [CALL]?: ProxyCall };
/** respond() copies its options: shared constants spare an object per call. No `date`: the upstream's headers, as sent. */
const RESPOND_STREAMING = { waitForTrailers: true, sendDate: false } as const;
const RESPOND_TRAILERS_ONLY = { endStream: true, sendDate: false } as const;
const callOf = (stream: Tagged<ServerHttp2Stream> | Tagged<ClientHttp2Stream>): ProxyCall | undefined => stream[CALL];

export interface CallDeps {
  pool: SessionPool;
  log: Logger;
}

type Phase = 'connecting' | 'waiting' | 'streaming' | 'finished';

export class ProxyCall {
  private readonly down: ServerHttp2Stream;
  private readonly headers: IncomingHttpHeaders;
  private readonly upstream: ResolvedUpstream;
  private readonly target: RouteTarget;
  private readonly deps: CallDeps;
  private readonly requestMeter: MessageMeter | undefined;
  private phase: Phase = 'connecting';
  private node: UpstreamNode;
  private up: ClientHttp2Stream | undefined;
  private pooled: PooledSession | undefined;
  private attempts = 0;
  private tried: Set<string> | undefined;
  private refusedRetried = false;
  private replay: Buffer[] | undefined = [];
  private replayBytes = 0;
  private reading = false;
  private requestEnded = false;
  private trailers: OutgoingHttpHeaders | undefined;
  /** The upstream's trailers arrived: the response is complete whatever happens to the stream afterwards. */
  private responseComplete = false;
  /** When the client's request arrived: set by the listener when an access phase held the call before it began. */
  startedAt = Date.now();
  private deadlineAt = 0;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private sendTimer: NodeJS.Timeout | undefined;
  /** Response data is being relayed from `up` to the client (between response headers and the end or a failure). */
  private relaying = false;
  /** The upstream stream with our 'drain' listener, and whether the client stream has one (added on backpressure). */
  private drainingUp: ClientHttp2Stream | undefined;
  private drainingDown = false;
  private responseMeter: MessageMeter | undefined;

  /** The plugins' request when one of them waits for the call's end (limit-conn, api-breaker): told in finish(). */
  plugins: BasePluginRequest | undefined;
  /** Fields the route's plugins add to the response headers (limit-count's quota), or to a gateway-made answer. */
  responseFields: readonly string[] | undefined;

  constructor(down: ServerHttp2Stream, headers: IncomingHttpHeaders, target: RouteTarget, node: UpstreamNode, deps: CallDeps) {
    this.down = down;
    this.headers = headers;
    this.target = target;
    this.upstream = target.upstream;
    this.requestMeter = target.maxRequestMessageBytes === undefined ? undefined : new MessageMeter(target.maxRequestMessageBytes);
    this.node = node;
    this.deps = deps;
  }

  start(): void {
    const down = this.down as Tagged<ServerHttp2Stream>;
    down[CALL] = this;
    down.on('aborted', downGone);
    down.on('close', downGone);
    down.on('end', downEnd);
    down.on('wantTrailers', downWantTrailers);
    // The stream reaches us a turn after its HEADERS (limits/stream-limits.ts): a request that was one HEADERS frame
    // plus an empty END_STREAM (an empty client stream) has already emitted 'end' by then.
    if (down.readableEnded) this.requestEnded = true;
    const timeoutMs = parseGrpcTimeout(this.headers['grpc-timeout']);
    if (timeoutMs !== undefined) {
      if (timeoutMs === MALFORMED_TIMEOUT) return this.fail(new BadRequest(MALFORMED_TIMEOUT_MESSAGE));
      this.deadlineAt = this.startedAt + timeoutMs;
      // From the request's arrival: an access phase that held the call (Redis, a delay) used part of it, maybe all.
      const left = this.deadlineAt - Date.now();
      if (left <= 0) return this.onDeadline();
      this.deadlineTimer = setTimeout(deadlinePassed, clampDelay(left), this);
    }
    this.connect();
  }

  // ---- attempts -------------------------------------------------------------------------------------------------

  private connect(): void {
    const ready = this.deps.pool.ready(this.node);
    if (ready !== undefined) return this.open(ready);
    this.deps.pool.acquire(this.node, this.upstream.connectTimeoutMs).then(
      (pooled) => this.onConnected(pooled),
      (err: unknown) => this.onConnectFailed(err),
    );
  }

  private onConnected(pooled: PooledSession): void {
    if (this.phase === 'finished') return;
    this.open(pooled);
  }

  private onConnectFailed(err: unknown): void {
    if (this.phase === 'finished') return;
    this.deps.log.warn({ node: this.node.key, err: describe(err) }, 'upstream connect failed');
    this.attempts++; // an attempt, though it never reached a server: the next one says it is a retry
    this.retryOrFail(err, false);
  }

  private open(pooled: PooledSession): void {
    let up: ClientHttp2Stream;
    try {
      up = pooled.request(this.requestHeaders(pooled.node));
    } catch (err) {
      // The session cannot take streams any more (closing, or GOAWAY seen): nothing was sent, so retry.
      this.deps.pool.retire(pooled);
      return this.retryOrFail(new UpstreamReset(`cannot open a stream on ${pooled.node.key}: ${describe(err)}`), true);
    }
    this.attempts++;
    this.up = up;
    this.pooled = pooled;
    this.phase = 'waiting';
    (up as Tagged<ClientHttp2Stream>)[CALL] = this;
    up.on('response', upResponse);
    up.on('trailers', upTrailers);
    up.on('close', upClose);
    up.on('error', ignore); // 'close' follows with rstCode set; the status is decided there
    if (this.upstream.readTimeoutMs > 0) up.setTimeout(clampDelay(this.upstream.readTimeoutMs), () => this.onIdle(up));
    if (this.replay !== undefined) for (const chunk of this.replay) up.write(chunk);
    if (this.requestEnded) {
      up.end();
    } else if (!this.reading) {
      this.reading = true;
      this.down.on('data', downData);
    } else if (!up.writableNeedDrain) {
      this.down.resume();
    }
  }

  private requestHeaders(node: UpstreamNode): OutgoingHttpHeaders {
    const out = upstreamRequestHeaders(this.headers, this.upstream, node);
    if (this.attempts > 0) {
      const previous = Number(this.headers['grpc-previous-rpc-attempts'] ?? 0) || 0;
      out['grpc-previous-rpc-attempts'] = String(previous + this.attempts);
    }
    if (this.deadlineAt !== 0) out['grpc-timeout'] = formatGrpcTimeout(this.deadlineAt - Date.now());
    return out;
  }

  /** Starts another attempt when the rules allow one, else fails the call with `err`. */
  private retryOrFail(err: unknown, refused: boolean): void {
    this.up = undefined;
    const now = Date.now();
    const allowed =
      this.replay !== undefined &&
      (this.upstream.retryTimeoutMs === 0 || now - this.startedAt < this.upstream.retryTimeoutMs) &&
      (this.deadlineAt === 0 || now < this.deadlineAt);
    if (allowed && refused && !this.refusedRetried) {
      // A refused stream was never processed: try the same node once more, on a fresh session if that one drains.
      this.refusedRetried = true;
      if (this.reading) this.down.pause();
      return this.connect();
    }
    if (allowed) {
      this.tried ??= new Set();
      this.tried.add(this.node.key);
      if (this.tried.size <= this.upstream.retries) {
        const next = this.upstream.pick(this.tried);
        if (next !== undefined) {
          this.deps.log.info({ node: this.node.key, next: next.key }, 'retrying the call on the next node');
          this.node = next;
          if (this.reading) this.down.pause();
          return this.connect();
        }
      }
    }
    this.fail(err);
  }

  // ---- request direction: client → upstream -------------------------------------------------------------------

  onDownData(chunk: Buffer): void {
    if (this.requestMeter !== undefined) {
      const size = this.requestMeter.feed(chunk);
      if (size >= 0) return this.fail(new MessageTooLarge('request', size, this.target.maxRequestMessageBytes ?? 0));
    }
    if (this.replay !== undefined) {
      this.replayBytes += chunk.length;
      if (this.replayBytes > REPLAY_LIMIT_BYTES) this.replay = undefined;
      else this.replay.push(chunk);
    }
    const { up } = this;
    if (up === undefined || up.destroyed) {
      this.down.pause(); // between attempts: the next one replays or the call fails
      return;
    }
    if (!up.write(chunk)) {
      this.down.pause();
      // 'drain' listeners only once there is backpressure: most calls never need one.
      if (this.drainingUp !== up) {
        this.drainingUp = up;
        up.on('drain', upDrain);
      }
      if (this.upstream.sendTimeoutMs > 0 && this.sendTimer === undefined) {
        this.sendTimer = setTimeout(sendTimedOut, clampDelay(this.upstream.sendTimeoutMs), this);
      }
    }
  }

  onUpDrain(up: ClientHttp2Stream): void {
    if (up !== this.up) return;
    this.clearSendTimer();
    if (this.phase !== 'finished') this.down.resume();
  }

  onDownEnd(): void {
    // node:http2 ends the readable side of a stream the client reset too ('end' after the RST): that is a cancel,
    // and must reach the upstream as one, never as END_STREAM.
    if (this.down.aborted || rstCodeOf(this.down) !== ErrorCode.NO_ERROR) return this.onDownGone();
    this.requestEnded = true; // the client's half-close; passed on exactly when it happens
    const { up } = this;
    if (up !== undefined && !up.destroyed) up.end();
  }

  // ---- response direction: upstream → client ------------------------------------------------------------------

  onResponse(up: ClientHttp2Stream, headers: IncomingHttpHeaders, flags: number): void {
    if (up !== this.up || this.phase !== 'waiting') return;
    if (this.downGone()) return this.onDownGone();
    // Node types :status as a string but hands over a number; Number() accepts both.
    const status = Number(headers[':status']);
    if (status !== 200) {
      return this.fail(new UpstreamProtocolError(`upstream answered HTTP status ${status}`, grpcStatusFromHttp(status)));
    }
    const contentType = headers['content-type'];
    if (contentType === undefined || !contentType.startsWith('application/grpc')) {
      return this.fail(new UpstreamProtocolError(`upstream answered non-gRPC content-type ${JSON.stringify(contentType ?? '')}`));
    }
    this.replay = undefined; // the response has started: no retry from here on
    const out = relayedHeaders(headers);
    if (this.responseFields !== undefined) addFields(out, this.responseFields);
    if ((flags & END_STREAM) !== 0) {
      // Trailers-only: one HEADERS frame carrying grpc-status. Keep it one frame.
      if (out['grpc-status'] === undefined) Object.assign(out, errorTrailers(missingStatus()));
      this.finish(Number(out['grpc-status']));
      this.safely(() => this.down.respond(out, RESPOND_TRAILERS_ONLY));
      return;
    }
    this.phase = 'streaming';
    if (!this.safely(() => this.down.respond(out, RESPOND_STREAMING))) return;
    const limit = this.target.maxResponseMessageBytes;
    if (limit !== undefined) this.responseMeter = new MessageMeter(limit);
    // The body is relayed by hand rather than with pipe(): the same backpressure (pause the upstream stream while
    // the client's window is full, resume on its 'drain') for fewer listeners and allocations per call.
    this.relaying = true;
    up.on('data', upData);
    up.on('end', upEnd);
  }

  onUpData(up: ClientHttp2Stream, chunk: Buffer): void {
    if (up !== this.up || !this.relaying) return;
    // Written before the cap is checked, so that the chunk which crosses it reaches the client before the error.
    if (!this.down.write(chunk)) {
      up.pause();
      if (!this.drainingDown) {
        this.drainingDown = true;
        this.down.on('drain', downDrain);
      }
    }
    const meter = this.responseMeter;
    if (meter !== undefined) {
      const size = meter.feed(chunk);
      if (size >= 0) this.fail(new MessageTooLarge('response', size, this.target.maxResponseMessageBytes ?? 0));
    }
  }

  onUpEnd(up: ClientHttp2Stream): void {
    if (up !== this.up || !this.relaying) return;
    this.stopRelaying();
    if (!this.down.writableEnded && !this.downGone()) this.down.end();
  }

  onDownDrain(): void {
    const { up } = this;
    if (this.relaying && up !== undefined && !up.destroyed) up.resume();
  }

  /** Stops relaying response data (it ends, fails, or the rest is moved over at once). */
  private stopRelaying(): void {
    if (!this.relaying) return;
    this.relaying = false;
    this.up?.off('data', upData);
    this.down.off('drain', downDrain);
  }

  onTrailers(up: ClientHttp2Stream, headers: IncomingHttpHeaders): void {
    if (up !== this.up || this.phase !== 'streaming') return;
    this.trailers = relayedHeaders(headers);
    this.responseComplete = true;
    // Everything the upstream sent is in `up` now. Move what is still buffered to the client at once (at most a
    // window), so a reset the upstream sends after its trailers cannot truncate a complete response.
    this.stopRelaying();
    for (let chunk: unknown = up.read(); chunk !== null; chunk = up.read()) this.down.write(chunk);
    if (!this.down.writableEnded) this.down.end();
    up.resume();
  }

  onWantTrailers(): void {
    const trailers = this.trailers !== undefined && this.trailers['grpc-status'] !== undefined ? this.trailers : errorTrailers(missingStatus());
    this.finish(Number(trailers['grpc-status']));
    this.safely(() => this.down.sendTrailers(trailers));
  }

  onUpClose(up: ClientHttp2Stream): void {
    if (up !== this.up) return;
    this.clearSendTimer();
    if (this.phase === 'finished' || this.responseComplete) return;
    const code = rstCodeOf(up);
    // Refused, or above the last-stream-id of the upstream's GOAWAY: never processed, so safe to retry.
    if (this.phase === 'waiting' && (code === ErrorCode.REFUSED_STREAM || this.pooled?.unprocessed(up) === true)) {
      return this.retryOrFail(new UpstreamReset(`upstream refused the stream (${rstName(code)})`), true);
    }
    if (this.pooled?.session.destroyed === true) {
      // Node closes the streams of a dead session with CANCEL though nothing was sent: the connection was lost.
      return this.fail(new UpstreamReset(`lost the connection to ${this.node.key}`));
    }
    if (code === ErrorCode.NO_ERROR) return this.fail(missingStatus());
    this.fail(new UpstreamReset(`upstream reset the stream with ${rstName(code)}`, statusForRst(code)));
  }

  // ---- endings --------------------------------------------------------------------------------------------------

  onDownGone(): void {
    this.cancelUp();
    this.finish(GrpcStatus.CANCELLED);
  }

  onDeadline(): void {
    this.deadlineTimer = undefined;
    // A deadline beyond what a timer holds (grpc-timeout 720H) fired at the clamp: wait for the rest.
    const left = this.deadlineAt - Date.now();
    if (left > 0 && this.deadlineAt - this.startedAt > MAX_TIMER_DELAY_MS) {
      this.deadlineTimer = setTimeout(deadlinePassed, clampDelay(left), this);
      return;
    }
    this.fail(new DeadlineExceeded(`deadline exceeded: grpc-timeout ${String(this.headers['grpc-timeout'])} passed at the gateway`));
  }

  onSendTimeout(): void {
    this.sendTimer = undefined;
    this.fail(new UpstreamTimeout(`upstream did not accept request data for ${this.upstream.sendTimeoutMs / 1000} s (timeout.send)`));
  }

  private onIdle(up: ClientHttp2Stream): void {
    if (up !== this.up) return;
    this.fail(new UpstreamTimeout(`no frame on the stream for ${this.upstream.readTimeoutMs / 1000} s (timeout.read)`));
  }

  /** Ends the call with a gateway-made status: trailers-only before response headers, error trailers after. */
  private fail(err: unknown): void {
    if (this.phase === 'finished') return;
    // Clients get the public text only (shared/errors.ts); the detail goes here, with the node (connect failures
    // were logged when they happened).
    if (!(err instanceof UpstreamConnectError)) this.deps.log.info({ node: this.node.key, err: describe(err) }, 'call failed at the gateway');
    this.cancelUp();
    if (this.phase !== 'streaming') {
      this.finish(Number(errorTrailers(err)['grpc-status']));
      respondError(this.down, err, this.responseFields);
      return;
    }
    // Response headers are out: end the body; wantTrailers sends the status.
    this.trailers = errorTrailers(err);
    this.responseComplete = true;
    this.stopRelaying();
    this.stopReading();
    if (this.downGone()) return this.finish(GrpcStatus.CANCELLED);
    if (!this.down.writableEnded) this.down.end();
  }

  /** `grpcStatus`: what the client is answered, for the plugins that wait for it (UNKNOWN_END: not known). */
  private finish(grpcStatus = UNKNOWN_END): void {
    this.plugins?.finished(grpcStatus);
    // The upstream finished first while the client was still sending (a bidi call ended by the server): release
    // the upstream stream's open half instead of leaving it to linger.
    if (!this.requestEnded) this.cancelUp();
    this.phase = 'finished';
    if (this.deadlineTimer !== undefined) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    this.clearSendTimer();
    this.stopReading();
  }

  /** Stops reading the request and discards the rest, so the client stream can close (an unread one never does). */
  private stopReading(): void {
    if (!this.reading) return;
    this.reading = false;
    this.down.off('data', downData);
    this.down.resume();
  }

  private cancelUp(): void {
    const { up } = this;
    if (up !== undefined) resetStream(up, ErrorCode.CANCEL);
  }

  private clearSendTimer(): void {
    if (this.sendTimer !== undefined) clearTimeout(this.sendTimer);
    this.sendTimer = undefined;
  }

  private downGone(): boolean {
    // A client RST leaves the stream `closed` but not yet `destroyed` while unread data remains.
    return this.down.destroyed || this.down.closed;
  }

  /** respond()/sendTrailers() throw on a stream that just went away or on headers Node refuses to send. */
  private safely(write: () => void): boolean {
    try {
      write();
      return true;
    } catch (err) {
      this.deps.log.warn({ err: describe(err), path: this.headers[':path'] }, 'cannot write to the client stream');
      this.cancelUp();
      this.finish();
      if (!this.down.destroyed) this.down.close(ErrorCode.INTERNAL_ERROR);
      return false;
    }
  }
}

const MALFORMED_TIMEOUT_MESSAGE = 'malformed grpc-timeout: expected 1 to 8 digits and a unit (H, M, S, m, u or n)';

function missingStatus(): UpstreamProtocolError {
  return new UpstreamProtocolError('stream ended without grpc-status', GrpcStatus.UNAVAILABLE);
}

function ignore(): void {
  // see the 'error' listener above
}

// ---- shared listeners: `this` is the stream, its call is found through CALL -------------------------------------

function downGone(this: Tagged<ServerHttp2Stream>): void {
  callOf(this)?.onDownGone();
}
function downEnd(this: Tagged<ServerHttp2Stream>): void {
  callOf(this)?.onDownEnd();
}
function downWantTrailers(this: Tagged<ServerHttp2Stream>): void {
  callOf(this)?.onWantTrailers();
}
function downData(this: Tagged<ServerHttp2Stream>, chunk: Buffer): void {
  callOf(this)?.onDownData(chunk);
}
function downDrain(this: Tagged<ServerHttp2Stream>): void {
  callOf(this)?.onDownDrain();
}
function upResponse(this: Tagged<ClientHttp2Stream>, headers: IncomingHttpHeaders, flags: number): void {
  callOf(this)?.onResponse(this, headers, flags);
}
function upTrailers(this: Tagged<ClientHttp2Stream>, headers: IncomingHttpHeaders): void {
  callOf(this)?.onTrailers(this, headers);
}
function upClose(this: Tagged<ClientHttp2Stream>): void {
  callOf(this)?.onUpClose(this);
}
function upDrain(this: Tagged<ClientHttp2Stream>): void {
  callOf(this)?.onUpDrain(this);
}
function upData(this: Tagged<ClientHttp2Stream>, chunk: Buffer): void {
  callOf(this)?.onUpData(this, chunk);
}
function upEnd(this: Tagged<ClientHttp2Stream>): void {
  callOf(this)?.onUpEnd(this);
}
function deadlinePassed(call: ProxyCall): void {
  call.onDeadline();
}
function sendTimedOut(call: ProxyCall): void {
  call.onSendTimeout();
}
