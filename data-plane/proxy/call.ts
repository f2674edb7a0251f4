/**
 * One proxied call on the native engine (Envoy's router filter): it owns the client's stream, the deadline, the
 * request bytes kept for a replay, and the attempts (attempt.ts), one at a time. A small state machine:
 *
 *   connecting (no upstream stream yet) → waiting (stream open, no response headers) → streaming → finished
 *
 * and `finished` is reached exactly once, by the one frame that ends the client's stream (or its reset).
 *
 * The rules are forward.ts's, unchanged (the whole suite runs against both engines):
 * - Retries only before response headers, as the pure policy says (retry-policy.ts): a failed connect goes to the
 *   next untried node; a stream the upstream never processed is tried once more on the same node, then on others.
 *   Request bytes are kept for the replay up to REPLAY_LIMIT_BYTES; `grpc-previous-rpc-attempts` says it is a retry.
 * - `grpc-timeout` is enforced here (DEADLINE_EXCEEDED, upstream reset with CANCEL) and forwarded as the time left;
 *   a malformed one is answered INTERNAL and never forwarded.
 * - A client reset, or the client going away, resets the upstream stream with CANCEL, never END_STREAM.
 * - A stream that ends without grpc-status, a lost connection, a non-200 or non-gRPC answer is never a success.
 *
 * Flow control end to end, with no buffer of our own beyond the windows: request DATA is credited back to the
 * client (WINDOW_UPDATE) only once the upstream stream sent it, and response DATA is credited back to the upstream
 * only once the client's stream sent it. A slow reader on either side therefore stops the other side's sender at
 * one stream window. DATA payloads are passed on as the slices the engine read; no per-message objects.
 */
import { BadRequest, DeadlineExceeded, type GatewayError, MessageTooLarge, UpstreamConnectError, UpstreamProtocolError, UpstreamReset, UpstreamTimeout, describe } from '../../shared/errors.ts';
import { GrpcStatus, grpcStatusFromHttp } from '../../shared/grpc-status.ts';
import type { Logger } from '../../shared/logger.ts';
import type { RouteTarget } from '../routing/route-target.ts';
import { ErrorCode, type ResetReasonValue, type StreamHandler } from '../http2/connection.ts';
import type { Downstream } from './downstream.ts';
import { fieldValue } from '../http2/fields.ts';
import type { ClientConnection } from '../http2/client-connection.ts';
import type { ClientPool } from '../upstream/client-pool.ts';
import type { ResolvedUpstream, UpstreamNode } from '../upstream/upstream.ts';
import { MAX_TIMER_DELAY_MS, clampDelay } from '../timers.ts';
import { Attempt } from './attempt.ts';
import { REPLAY_LIMIT_BYTES } from './forward.ts';
import { MALFORMED_TIMEOUT, formatGrpcTimeout, parseGrpcTimeout } from './grpc-timeout.ts';
import { errorResponseFields, errorTrailerFields, gatewayStatusOf } from './respond-error.ts';
import { decideRetry, type AttemptOutcome } from './retry-policy.ts';
import { rstName, statusForRst } from './rst-codes.ts';
import { MessageMeter } from './message-meter.ts';
import type { ProbeOutcome } from '../upstream/health/types.ts';
import type { CallObservation, Observer } from '../observability/observer.ts';
import { formatTraceparent } from '../observability/trace-context.ts';
import { readClockNow } from '../read-clock.ts';
import type { BasePluginRequest } from '../plugins/request.ts';

export interface CallDeps {
  pool: ClientPool;
  log: Logger;
  /** Set when anything records calls; the call then carries an observation (`obs`). */
  observer?: Observer | undefined;
}

const Phase = { Connecting: 0, Waiting: 1, Streaming: 2, Finished: 3 } as const;
type Phase = (typeof Phase)[keyof typeof Phase];

const EMPTY = Buffer.alloc(0);
/** nginx's status for a request whose client closed the connection first. */
const CLIENT_CLOSED_STATUS = 499;
const MALFORMED_TIMEOUT_MESSAGE = 'malformed grpc-timeout: expected 1 to 8 digits and a unit (H, M, S, m, u or n)';

export class Call implements StreamHandler<Downstream> {
  readonly down: Downstream;
  /** The client's request header list (flat name, value pairs), as decoded. */
  private readonly fields: string[];
  private readonly target: RouteTarget;
  readonly upstream: ResolvedUpstream;
  private readonly deps: CallDeps;
  private node: UpstreamNode;
  private phase: Phase = Phase.Connecting;
  private attempt: Attempt | undefined;
  /** Attempts started (including connects that failed). */
  private attempts = 0;
  private tried: Set<string> | undefined;
  private refusedRetried = false;
  /** Every request chunk so far while a replay is possible; undefined once over the limit or once the response started. */
  private replay: Buffer[] | undefined = [];
  private replayBytes = 0;
  /** Request chunks that arrived before the first attempt could take them. */
  private pending: Buffer[] | undefined = [];
  private requestEnded = false;
  /** Request bytes credited back to the client, and sent by the current attempt (a replay re-sends credited ones). */
  private credited = 0;
  private attemptSent = 0;
  private readonly requestMeter: MessageMeter | undefined;
  private responseMeter: MessageMeter | undefined;
  /** When the client's request arrived (an access phase may have held it before the call began). */
  private readonly startedAt: number;
  private deadlineAt = 0;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private timeoutText: string | undefined;
  /** `chash`: the key this call hashes on (set by the listener before start), kept for its retries. */
  hashKey = '';
  /** When the current attempt began, and ms to its response headers (-1 until they came): least_conn/ewma and passive checks. */
  private attemptStartedAt = 0;
  private headersAfterMs = -1;
  /** The node the balancer was told about (begin) and not yet told the end of. */
  private begun: UpstreamNode | undefined;
  /** What the observer records of this call (set by the listener before start); undefined when nothing records. */
  obs: CallObservation | undefined;
  /** Fields the route's plugins add to the response headers (limit-count's quota), or to a gateway-made answer. */
  responseFields: readonly string[] | undefined;
  /** The plugins' request when one of them waits for the call's end (limit-conn's release): told once, in finish(). */
  plugins: BasePluginRequest | undefined;

  constructor(down: Downstream, fields: string[], target: RouteTarget, node: UpstreamNode, deps: CallDeps) {
    this.down = down;
    this.fields = fields;
    this.target = target;
    this.upstream = target.upstream;
    this.node = node;
    this.deps = deps;
    this.startedAt = down.openedAt > 0 ? down.openedAt : Date.now();
    this.requestMeter = target.maxRequestMessageBytes === undefined ? undefined : new MessageMeter(target.maxRequestMessageBytes);
    down.handler = this;
  }

  /** `ended`: the client's HEADERS carried END_STREAM. */
  start(ended: boolean): void {
    if (ended) this.requestEnded = true;
    const timeout = fieldValue(this.fields, 'grpc-timeout');
    if (timeout !== undefined) {
      const timeoutMs = parseGrpcTimeout(timeout);
      if (timeoutMs === MALFORMED_TIMEOUT) return this.fail(new BadRequest(MALFORMED_TIMEOUT_MESSAGE));
      if (timeoutMs !== undefined) {
        this.timeoutText = timeout;
        this.deadlineAt = this.startedAt + timeoutMs;
        // From the request's arrival: an access phase that held the call (Redis, a delay) used part of it, maybe all.
        const left = this.deadlineAt - Date.now();
        if (left <= 0) return this.onDeadline();
        this.deadlineTimer = setTimeout(deadlinePassed, clampDelay(left), this);
      }
    }
    this.connect();
  }

  // ---- attempts -------------------------------------------------------------------------------------------------

  private connect(): void {
    this.attemptOver('none', ''); // a previous attempt that ended without a report (a connection closing under it)
    this.phase = Phase.Connecting;
    this.headersAfterMs = -1;
    const obs = this.obs;
    if (obs !== undefined) {
      if (obs.upstreamStartHr === 0) obs.upstreamStartHr = readClockNow();
      obs.node = this.node;
    }
    if (this.upstream.tracksCalls) {
      this.attemptStartedAt = Date.now();
      this.begun = this.node;
      this.upstream.begin(this.node);
    }
    const ready = this.deps.pool.ready(this.node);
    if (ready !== undefined) return this.open(ready);
    this.deps.pool.acquire(this.node, this.upstream.connectTimeoutMs).then(
      (conn) => this.onConnected(conn),
      (err: unknown) => this.onConnectFailed(err),
    );
  }

  private onConnected(conn: ClientConnection): void {
    if (this.phase !== Phase.Finished) this.open(conn);
  }

  private onConnectFailed(err: unknown): void {
    if (this.phase === Phase.Finished) return;
    this.deps.log.warn({ node: this.node.key, err: describe(err) }, 'upstream connect failed');
    this.attempts++; // an attempt, though it never reached a server: the next one says it is a retry
    // One failed dial is shared by every call that waited for it: the node's checker is charged once (the balancer
    // hears of every attempt). A pool shutting down says nothing about the node.
    const text = describe(err);
    if (!text.includes('shutting down')) {
      const timedOut = text.includes('timed out');
      const charge = typeof err === 'object' && err !== null && !COUNTED_DIALS.has(err);
      if (charge && this.upstream.checker !== undefined) COUNTED_DIALS.add(err);
      this.attemptOver(timedOut ? 'timeout' : 'tcp_failure', timedOut ? 'connect timed out' : 'connect failed', charge);
    }
    this.retryOrFail('connect-failed', err);
  }

  private open(conn: ClientConnection): void {
    if (!conn.usable) {
      // Went away between the pick and now (GOAWAY in the same turn): never sent, so another try is free.
      return this.retryOrFail('refused', new UpstreamReset(`cannot open a stream on ${this.node.key}: the connection is closing`));
    }
    const chunks = this.attempts === 0 ? this.pending : this.replay;
    this.pending = undefined;
    const fields = this.requestFields();
    this.attempts++;
    this.attemptSent = 0;
    const hasChunks = chunks !== undefined && chunks.length > 0;
    const attempt = new Attempt(this, conn, fields, this.requestEnded && !hasChunks);
    this.attempt = attempt;
    this.phase = Phase.Waiting;
    this.deps.pool.opened(conn);
    if (hasChunks) {
      const last = chunks.length - 1;
      for (let i = 0; i <= last && this.attempt === attempt; i++) attempt.send(chunks[i] as Buffer, this.requestEnded && i === last);
    }
  }

  /** The upstream request header list: pseudo-headers first, `te: trailers`, the client's metadata, the deadline left. */
  private requestFields(): string[] {
    const down = this.fields;
    let authority: string | undefined;
    let host: string | undefined;
    let previous = 0;
    const retry = this.attempts > 0;
    // One pass: the pseudo-headers' values are filled in as they are found, the client's metadata follows them.
    const out = [':method', 'POST', ':scheme', this.node.scheme === 'grpcs' ? 'https' : 'http', ':path', '/', ':authority', '', 'te', 'trailers'];
    for (let i = 0; i < down.length; i += 2) {
      const name = down[i] as string;
      const value = down[i + 1] as string;
      if (name.charCodeAt(0) === 58 /* ':' */) {
        if (name === ':method') out[1] = value;
        else if (name === ':path') out[5] = value;
        else if (name === ':authority') authority = value;
        continue;
      }
      if (name === 'host') host = value;
      else if (name === 'grpc-previous-rpc-attempts') {
        previous = Number(value) || 0;
        if (retry) continue;
      }
      if (DROPPED_REQUEST_FIELDS.has(name)) continue;
      if (name === 'traceparent' && this.obs !== undefined && this.obs.spanId !== '') continue;
      out.push(name, value);
    }
    out[7] = this.authorityFor(authority ?? host);
    if (retry) out.push('grpc-previous-rpc-attempts', String(previous + this.attempts));
    const obs = this.obs;
    if (obs !== undefined) {
      // The request id the client did not send, and our span as the upstream's parent (the client's traceparent
      // was left out above).
      if (obs.requestId !== '' && !obs.clientRequestId) out.push(this.deps.observer?.requestIdHeader as string, obs.requestId);
      if (obs.spanId !== '') out.push('traceparent', formatTraceparent(obs.traceId, obs.spanId, obs.sampled));
    }
    if (this.deadlineAt !== 0) out.push('grpc-timeout', formatGrpcTimeout(this.deadlineAt - Date.now()));
    return out;
  }

  /** APISIX's pass_host: `pass` keeps the client's authority, `node` uses the node, `rewrite` uses upstream_host. */
  private authorityFor(client: string | undefined): string {
    switch (this.upstream.passHost) {
      case 'node':
        return this.node.authority;
      case 'rewrite':
        return this.upstream.upstreamHost ?? this.node.authority;
      case 'pass':
        return client ?? this.node.authority;
    }
  }

  /** Starts another attempt when the policy allows one, else fails the call with `err`. */
  private retryOrFail(outcome: AttemptOutcome, err: unknown): void {
    this.attempt = undefined;
    this.tried ??= new Set();
    this.tried.add(this.node.key);
    const decision = decideRetry(outcome, {
      replayable: this.replay !== undefined && this.phase !== Phase.Streaming,
      elapsedMs: Date.now() - this.startedAt,
      retryTimeoutMs: this.upstream.retryTimeoutMs,
      deadlineLeftMs: this.deadlineAt === 0 ? Number.POSITIVE_INFINITY : this.deadlineAt - Date.now(),
      refusedRetried: this.refusedRetried,
      nodesTried: this.tried.size,
      retries: this.upstream.retries,
    });
    if (decision === 'same-node') {
      this.refusedRetried = true;
      return this.connect();
    }
    if (decision === 'next-node') {
      const next = this.upstream.pick(this.tried, this.hashKey);
      if (next !== undefined) {
        this.deps.log.info({ node: this.node.key, next: next.key }, 'retrying the call on the next node');
        this.node = next;
        return this.connect();
      }
    }
    this.fail(err);
  }

  // ---- the client's stream (StreamHandler) ------------------------------------------------------------------------

  onHeaders(_down: Downstream, _fields: string[], endStream: boolean): void {
    // Request trailers: gRPC has none to pass on; they end the request like END_STREAM.
    if (endStream) this.onData(this.down, EMPTY, true);
  }

  onData(down: Downstream, data: Buffer, end: boolean, owned?: boolean): void {
    if (this.phase === Phase.Finished) {
      down.consume(data.length);
      return;
    }
    if (end) this.requestEnded = true;
    if (this.obs !== undefined) this.obs.bytesReceived += data.length;
    // `data` is valid only during this call (the engine reuses its read buffer) unless `owned`: what is kept is a copy.
    let kept: Buffer | undefined;
    if (data.length > 0) {
      const meter = this.requestMeter;
      if (meter !== undefined) {
        const size = meter.feed(data);
        if (size >= 0) {
          down.consume(data.length);
          return this.fail(new MessageTooLarge('request', size, this.target.maxRequestMessageBytes ?? 0));
        }
      }
      const replay = this.replay;
      if (replay !== undefined) {
        // A first message that says it is larger than the replay limit: no copy of its first bytes to drop later.
        const declared = this.replayBytes === 0 && data.length >= 5 ? 5 + data.readUInt32BE(1) : 0;
        this.replayBytes += data.length;
        if (this.replayBytes > REPLAY_LIMIT_BYTES || declared > REPLAY_LIMIT_BYTES) this.replay = undefined;
        else replay.push((kept = owned === true ? data : Buffer.from(data)));
      }
    }
    const attempt = this.attempt;
    if (attempt !== undefined) {
      attempt.send(data, end);
    } else if (this.pending !== undefined && data.length > 0) {
      this.pending.push(kept ?? (owned === true ? data : Buffer.from(data))); // before the first attempt: it sends these first
    }
    // Between attempts the bytes are in the replay (or the call cannot be retried and fails).
  }

  onReset(): void {
    // The client reset the stream, or its connection went: the upstream stream goes with CANCEL.
    if (this.phase === Phase.Finished) return;
    this.attempt?.cancel();
    this.attempt = undefined;
    this.finish(GrpcStatus.CANCELLED);
    // The client went first: nginx logs 499; the call ended CANCELLED as far as the client is concerned.
    if (this.obs !== undefined) this.deps.observer?.end(this.obs, CLIENT_CLOSED_STATUS, GrpcStatus.CANCELLED, 'client cancelled');
  }

  onMalformed(_down: Downstream, err: GatewayError): void {
    // A wrapping stream could not decode the request (grpc-web-text that is not base64): the call ends with it.
    this.fail(err);
  }

  onSent(_down: Downstream, bytes: number): void {
    // Response bytes reached the client's socket: credit the upstream for them.
    const attempt = this.attempt;
    if (attempt !== undefined) attempt.up.consume(bytes);
  }

  // ---- the attempt's reports ---------------------------------------------------------------------------------------

  requestSent(attempt: Attempt, bytes: number): void {
    if (attempt !== this.attempt) return;
    this.attemptSent += bytes;
    if (this.attemptSent > this.credited) {
      this.down.consume(this.attemptSent - this.credited);
      this.credited = this.attemptSent;
    }
  }

  attemptResponse(attempt: Attempt, fields: string[], end: boolean): void {
    if (attempt !== this.attempt || this.phase !== Phase.Waiting) return;
    if (this.begun !== undefined) this.headersAfterMs = Date.now() - this.attemptStartedAt;
    const status = Number(fieldValue(fields, ':status'));
    if (status !== 200) {
      this.attemptOver(this.passiveHttp(status), `HTTP ${status}`);
      return this.fail(new UpstreamProtocolError(`upstream answered HTTP status ${status}`, grpcStatusFromHttp(status)));
    }
    const contentType = fieldValue(fields, 'content-type');
    if (contentType === undefined || !contentType.startsWith('application/grpc')) {
      return this.fail(new UpstreamProtocolError(`upstream answered non-gRPC content-type ${JSON.stringify(contentType ?? '')}`));
    }
    this.replay = undefined; // the response has started: no retry from here on
    const out = relayedFields(fields, true);
    if (this.responseFields !== undefined) out.push(...this.responseFields);
    const obs = this.obs;
    if (obs !== undefined) {
      obs.answered = true;
      if (obs.requestId !== '' && this.deps.observer?.requestIdInResponse === true) out.push(this.deps.observer.requestIdHeader as string, obs.requestId);
    }
    if (end) {
      // Trailers-only: one HEADERS frame carrying grpc-status. Keep it one frame.
      const grpcStatus = fieldValue(out, 'grpc-status');
      if (grpcStatus === undefined) out.push(...errorTrailerFields(missingStatus()));
      this.passiveOutcome(grpcStatus);
      this.finish(endStatus(out));
      this.down.sendHeaders(out, true);
      if (obs !== undefined) this.observeEnd(obs, out);
      return;
    }
    this.phase = Phase.Streaming;
    const limit = this.target.maxResponseMessageBytes;
    if (limit !== undefined) this.responseMeter = new MessageMeter(limit);
    this.down.sendHeaders(out, false);
  }

  attemptData(attempt: Attempt, data: Buffer, end: boolean): void {
    if (attempt !== this.attempt || this.phase !== Phase.Streaming) {
      attempt.up.consume(data.length);
      return;
    }
    // Written before the cap is checked, so that the chunk which crosses it reaches the client before the error.
    if (data.length > 0) {
      this.down.sendData(data, false);
      if (this.obs !== undefined) this.obs.bytesSent += data.length;
    }
    const meter = this.responseMeter;
    if (meter !== undefined && data.length > 0) {
      const size = meter.feed(data);
      if (size >= 0) return this.fail(new MessageTooLarge('response', size, this.target.maxResponseMessageBytes ?? 0));
    }
    if (end) this.fail(missingStatus()); // DATA with END_STREAM and no trailers: no grpc-status
  }

  attemptTrailers(attempt: Attempt, fields: string[]): void {
    if (attempt !== this.attempt || this.phase !== Phase.Streaming) return;
    const out = relayedFields(fields, false);
    const grpcStatus = fieldValue(out, 'grpc-status');
    if (grpcStatus === undefined) out.push(...errorTrailerFields(missingStatus()));
    this.passiveOutcome(grpcStatus);
    this.finish(endStatus(out));
    this.down.sendHeaders(out, true);
    if (this.obs !== undefined) this.observeEnd(this.obs, out);
  }

  attemptEnded(attempt: Attempt, outcome: AttemptOutcome, code: number, protocol: boolean): void {
    if (attempt !== this.attempt || this.phase === Phase.Finished) return;
    if (outcome === 'refused' && this.phase === Phase.Waiting) {
      this.attemptOver('none', 'refused');
      return this.retryOrFail('refused', new UpstreamReset(`upstream refused the stream (${rstName(code)})`));
    }
    // A reset or a lost connection before response headers is the node's failure (passive checks); after them, a
    // stream the server chose to end.
    this.attemptOver(this.phase === Phase.Waiting ? 'tcp_failure' : 'none', outcome === 'lost' ? 'connection lost' : `stream reset ${rstName(code)}`);
    if (outcome === 'lost') return this.fail(new UpstreamReset(`lost the connection to ${this.node.key}`));
    if (protocol) return this.fail(new UpstreamProtocolError(`upstream broke HTTP/2 on the stream (${rstName(code)})`));
    if (code === ErrorCode.NO_ERROR) return this.fail(missingStatus());
    this.fail(new UpstreamReset(`upstream reset the stream with ${rstName(code)}`, statusForRst(code)));
  }

  attemptTimedOut(attempt: Attempt, kind: 'read' | 'send'): void {
    if (attempt !== this.attempt) return;
    const err =
      kind === 'read'
        ? new UpstreamTimeout(`no frame on the stream for ${this.upstream.readTimeoutMs / 1000} s (timeout.read)`)
        : new UpstreamTimeout(`upstream did not accept request data for ${this.upstream.sendTimeoutMs / 1000} s (timeout.send)`);
    // A client-streaming or bidi call whose client paused: the quiet stream is the client's doing, not the node's,
    // and the node may be running the call: no charge against the node, no replay elsewhere.
    if (kind === 'read' && !this.requestEnded) return this.fail(err);
    this.attemptOver('timeout', `timeout.${kind}`);
    if (this.phase !== Phase.Waiting) return this.fail(err);
    // No response headers yet: the next node may answer (retry-policy.ts); this attempt's stream goes with CANCEL.
    attempt.cancel();
    this.retryOrFail('timeout', err);
  }

  onDeadline(): void {
    this.deadlineTimer = undefined;
    if (this.phase === Phase.Finished) return;
    // A deadline beyond what a timer holds (grpc-timeout 720H) fired at the clamp: wait for the rest.
    const left = this.deadlineAt - Date.now();
    if (left > 0 && this.deadlineAt - this.startedAt > MAX_TIMER_DELAY_MS) {
      this.deadlineTimer = setTimeout(deadlinePassed, clampDelay(left), this);
      return;
    }
    this.fail(new DeadlineExceeded(`deadline exceeded: grpc-timeout ${String(this.timeoutText)} passed at the gateway`));
  }

  // ---- endings --------------------------------------------------------------------------------------------------

  /** Ends the call with a gateway-made status: trailers-only before response headers, error trailers after. */
  private fail(err: unknown): void {
    if (this.phase === Phase.Finished) return;
    if (!(err instanceof UpstreamConnectError)) this.deps.log.info({ node: this.node.key, err: describe(err) }, 'call failed at the gateway');
    const streaming = this.phase === Phase.Streaming;
    this.attempt?.cancel();
    const out = streaming ? errorTrailerFields(err) : errorResponseFields(err);
    this.finish(endStatus(out));
    if (!streaming && this.responseFields !== undefined) out.push(...this.responseFields);
    const obs = this.obs;
    if (obs !== undefined && !streaming && obs.requestId !== '' && this.deps.observer?.requestIdInResponse === true) out.push(this.deps.observer.requestIdHeader as string, obs.requestId);
    this.down.sendHeaders(out, true);
    if (obs !== undefined) this.observeEnd(obs, out, true);
  }

  /** The call ended with this header list (trailers, or a trailers-only response): the observer records it. */
  private observeEnd(obs: CallObservation, fields: string[], gatewayMade = false): void {
    const { httpStatus, grpcStatus, grpcMessage } = gatewayStatusOf(fields);
    this.deps.observer?.end(obs, this.down.answeredStatus ?? httpStatus, grpcStatus, grpcMessage, gatewayMade);
  }

  /**
   * The current attempt is over as far as the balancer and the passive checks go: least_conn/ewma hear its end
   * (once), the checker hears the outcome ('none' when it says nothing about the node's health).
   */
  private attemptOver(outcome: ProbeOutcome, reason: string | undefined, charge = true): void {
    const node = this.begun;
    if (node !== undefined) {
      this.begun = undefined;
      const answered = this.headersAfterMs >= 0;
      const failed = !answered && outcome !== 'none';
      // Latency is learnt from answers and failures; an attempt that got neither (refused, cancelled) is no sample.
      this.upstream.end(node, answered ? this.headersAfterMs : failed ? Date.now() - this.attemptStartedAt : -1, failed);
    }
    if (outcome !== 'none' && charge) this.upstream.checker?.passive(this.node.key, outcome, reason ?? 'no grpc-status');
  }

  /** The attempt ended with this grpc-status: the reason text is built only when the checker counts it. */
  private passiveOutcome(grpcStatus: string | undefined): void {
    const outcome = this.passiveGrpc(grpcStatus);
    this.attemptOver(outcome, outcome === 'none' ? undefined : `grpc-status ${grpcStatus ?? 'missing'}`);
  }

  /** A non-200 :status, by passive.unhealthy.http_statuses (APISIX's passive http check). */
  private passiveHttp(status: number): ProbeOutcome {
    const passive = this.upstream.checker?.policy.passive;
    if (passive === undefined) return 'none';
    if (passive.unhealthyStatuses.has(status)) return 'http_failure';
    return passive.healthyStatuses.has(status) ? 'success' : 'none';
  }

  /** The call's grpc-status, by passive.unhealthy.grpc_statuses (default UNAVAILABLE); a missing one is a failure. */
  private passiveGrpc(grpcStatus: string | undefined): ProbeOutcome {
    const passive = this.upstream.checker?.policy.passive;
    if (passive === undefined) return 'none';
    if (grpcStatus === undefined) return 'http_failure';
    return passive.grpcStatuses.has(Number(grpcStatus)) ? 'http_failure' : 'success';
  }

  /** `grpcStatus`: what the client is answered (CANCELLED when it went first), for the plugins that wait for it. */
  private finish(grpcStatus: number): void {
    // Whatever ended the call ends its attempt for the balancer (a client reset, a deadline: nothing about health).
    this.attemptOver('none', '');
    const attempt = this.attempt;
    // The upstream finished first while the client was still sending (a bidi call ended by the server): release
    // the upstream stream's open half instead of leaving it to linger.
    if (attempt !== undefined && !this.requestEnded) {
      attempt.stop();
      attempt.up.reset(ErrorCode.CANCEL);
    }
    this.phase = Phase.Finished;
    this.replay = undefined;
    this.pending = undefined;
    if (this.deadlineTimer !== undefined) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    this.plugins?.finished(grpcStatus);
  }
}

/** The grpc-status of a final header list (trailers, or a trailers-only answer): it always carries one here. */
function endStatus(fields: string[]): number {
  return Number(fieldValue(fields, 'grpc-status') ?? GrpcStatus.UNKNOWN);
}

/** `host` folds into `:authority`, `te` is ours, `grpc-timeout` is re-stated with the time left (RFC 9113 §8.2.2). */
const DROPPED_REQUEST_FIELDS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host', 'te', 'grpc-timeout']);
const DROPPED_RESPONSE_FIELDS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings']);

/** Response headers (with `:status`) or trailers from upstream, minus what HTTP/2 forbids on a hop. */
function relayedFields(fields: string[], headers: boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    if (DROPPED_RESPONSE_FIELDS.has(name)) continue;
    if (name.charCodeAt(0) === 58 /* ':' */ && !(headers && name === ':status')) continue;
    out.push(name, fields[i + 1] as string);
  }
  return out;
}

/** Connect failures already charged to their node's checker (one dial's error is shared by the calls waiting on it). */
const COUNTED_DIALS = new WeakSet<object>();

function missingStatus(): UpstreamProtocolError {
  return new UpstreamProtocolError('stream ended without grpc-status', GrpcStatus.UNAVAILABLE);
}

function deadlinePassed(call: Call): void {
  call.onDeadline();
}

export type { ResetReasonValue };
