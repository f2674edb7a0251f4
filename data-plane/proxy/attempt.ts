/**
 * One attempt of a call: one upstream stream on one pooled connection (Envoy's UpstreamRequest). It relays what the
 * upstream stream says to its call and reports how it ended as a typed outcome (retry-policy.ts); it owns the
 * attempt's timers: `timeout.read` (no frame either way on the stream for that long) and `timeout.send` (request
 * DATA waiting for the upstream's window that long). The call decides everything else.
 */
import { ErrorCode, ResetReason, type Http2Stream, type ResetReasonValue, type StreamHandler } from '../http2/connection.ts';
import type { ClientConnection } from '../http2/client-connection.ts';
import { clampDelay } from '../timers.ts';
import type { Call } from './call.ts';
import type { AttemptOutcome } from './retry-policy.ts';

export class Attempt implements StreamHandler {
  readonly call: Call;
  readonly up: Http2Stream;
  readonly conn: ClientConnection;
  /** Response headers arrived (a later header block is the trailers). */
  responded = false;
  done = false;
  private lastActivity = 0;
  private readTimer: NodeJS.Timeout | undefined;
  private sendTimer: NodeJS.Timeout | undefined;

  constructor(call: Call, conn: ClientConnection, fields: string[], endStream: boolean) {
    this.call = call;
    this.conn = conn;
    this.up = conn.request(fields, this, endStream);
    const readMs = call.upstream.readTimeoutMs;
    if (readMs > 0) {
      this.lastActivity = Date.now();
      this.readTimer = setTimeout(readTimedOut, clampDelay(readMs), this);
    }
  }

  /** Request bytes for the upstream. */
  send(data: Buffer, end: boolean): void {
    if (this.done) return;
    this.up.sendData(data, end);
    if (this.up.pendingBytes > 0 && this.sendTimer === undefined && this.call.upstream.sendTimeoutMs > 0) {
      this.sendTimer = setTimeout(sendTimedOut, clampDelay(this.call.upstream.sendTimeoutMs), this);
    }
  }

  /** Resets the upstream stream (CANCEL) and stops. */
  cancel(): void {
    if (this.done) return;
    this.stop();
    this.up.reset(ErrorCode.CANCEL);
  }

  stop(): void {
    this.done = true;
    if (this.readTimer !== undefined) clearTimeout(this.readTimer);
    if (this.sendTimer !== undefined) clearTimeout(this.sendTimer);
    this.readTimer = this.sendTimer = undefined;
  }

  // ---- StreamHandler (the upstream stream) -------------------------------------------------------------------

  onHeaders(_up: Http2Stream, fields: string[], endStream: boolean): void {
    if (this.done) return;
    this.touch();
    if (!this.responded) {
      this.responded = true;
      if (endStream) this.stop();
      this.call.attemptResponse(this, fields, endStream);
    } else {
      this.stop();
      this.call.attemptTrailers(this, fields);
    }
  }

  onData(up: Http2Stream, data: Buffer, endStream: boolean): void {
    if (this.done) {
      up.consume(data.length);
      return;
    }
    this.touch();
    if (endStream) this.stop();
    this.call.attemptData(this, data, endStream);
  }

  onReset(_up: Http2Stream, code: number, reason: ResetReasonValue): void {
    if (this.done) return;
    this.stop();
    let outcome: AttemptOutcome;
    if (reason === ResetReason.UNPROCESSED || (reason === ResetReason.PEER && code === ErrorCode.REFUSED_STREAM && !this.responded)) outcome = 'refused';
    else if (reason === ResetReason.LOST) outcome = 'lost';
    else outcome = 'reset';
    this.call.attemptEnded(this, outcome, code, reason === ResetReason.PROTOCOL);
  }

  onSent(_up: Http2Stream, bytes: number): void {
    this.touch();
    if (this.sendTimer !== undefined && this.up.pendingBytes === 0) {
      clearTimeout(this.sendTimer);
      this.sendTimer = undefined;
    }
    this.call.requestSent(this, bytes);
  }

  private touch(): void {
    if (this.readTimer !== undefined) this.lastActivity = Date.now();
  }

  onReadTimer(): void {
    this.readTimer = undefined;
    if (this.done) return;
    const readMs = this.call.upstream.readTimeoutMs;
    const idle = Date.now() - this.lastActivity;
    if (idle < readMs) {
      this.readTimer = setTimeout(readTimedOut, clampDelay(readMs - idle), this);
      return;
    }
    this.call.attemptTimedOut(this, 'read');
  }

  onSendTimer(): void {
    this.sendTimer = undefined;
    if (!this.done) this.call.attemptTimedOut(this, 'send');
  }
}

function readTimedOut(attempt: Attempt): void {
  attempt.onReadTimer();
}
function sendTimedOut(attempt: Attempt): void {
  attempt.onSendTimer();
}
