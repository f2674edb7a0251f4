/**
 * Flow-control windows of the gateway's own HTTP/2 engine (RFC 9113 §5.2, §6.9). Two kinds, both plain numbers in
 * small objects the connection and each stream own:
 *
 * - A send window: what the peer lets us send. DATA may only go out while it is positive; WINDOW_UPDATE raises it
 *   and may never take it past 2^31 − 1 (§6.9.1: FLOW_CONTROL_ERROR, on the stream or the connection); a change of
 *   the peer's SETTINGS_INITIAL_WINDOW_SIZE moves every stream's window by the difference, which may make it
 *   negative (§6.9.2).
 * - A receive window: what we let the peer send. Every DATA frame's whole length (padding included, §6.9.1) is taken
 *   from it; a peer that sends more than we allowed is in FLOW_CONTROL_ERROR. We give credit back once the bytes are
 *   consumed (handed on to the other leg and written), in one WINDOW_UPDATE when at least half the window is owed, so
 *   that a fast stream costs few frames and a reader that stops reading stops the sender: this is how backpressure
 *   crosses the gateway end to end without buffering more than a window.
 */
import { ErrorCode, type FrameError } from './frame.ts';
import { MAX_WINDOW_SIZE } from './settings.ts';

export class SendWindow {
  /** Bytes we may still send; negative after the peer lowered SETTINGS_INITIAL_WINDOW_SIZE. */
  size: number;

  constructor(size: number) {
    this.size = size;
  }

  /** A WINDOW_UPDATE's increment; an error when it would pass 2^31 − 1 (§6.9.1). */
  grow(increment: number): FrameError | undefined {
    if (this.size + increment > MAX_WINDOW_SIZE) {
      return { code: ErrorCode.FLOW_CONTROL_ERROR, connection: false, reason: `window of ${this.size} + ${increment} passes 2^31 - 1` };
    }
    this.size += increment;
    return undefined;
  }

  /** How many bytes of `wanted` may go out now (0 while the window is not positive). */
  allowance(wanted: number): number {
    return this.size <= 0 ? 0 : Math.min(wanted, this.size);
  }

  spend(bytes: number): void {
    this.size -= bytes;
  }

  /** §6.9.2: the peer changed SETTINGS_INITIAL_WINDOW_SIZE from `before` to `after`; stream windows move by the difference. */
  resize(before: number, after: number): FrameError | undefined {
    return this.grow(after - before);
  }
}

export class ReceiveWindow {
  /** The window we advertised and keep restoring (SETTINGS_INITIAL_WINDOW_SIZE, or the connection's size). */
  readonly target: number;
  /** Bytes the peer may still send. */
  private available: number;
  /** Bytes received and consumed since the last WINDOW_UPDATE: credit owed to the peer. */
  private owed = 0;

  /**
   * A window of `target` bytes. The connection window starts at 65,535 whatever SETTINGS say (§6.9.2): the
   * connection raises it with one WINDOW_UPDATE of the difference as it starts, then holds it as this object.
   */
  constructor(target: number) {
    this.target = target;
    this.available = target;
  }

  /** Bytes the peer may still send before it must wait for us. */
  get remaining(): number {
    return this.available;
  }

  /** A DATA frame of `length` bytes arrived; an error when the peer sent more than it was allowed (§6.9.1). */
  receive(length: number): FrameError | undefined {
    if (length > this.available) {
      return { code: ErrorCode.FLOW_CONTROL_ERROR, connection: false, reason: `DATA of ${length} bytes with ${this.available} left in the window` };
    }
    this.available -= length;
    return undefined;
  }

  /**
   * `bytes` of received DATA were consumed. Returns the increment to send in a WINDOW_UPDATE now, or 0 while less
   * than half the target is owed (fewer frames on fast streams; §6.9 leaves the policy to the receiver).
   */
  consume(bytes: number): number {
    this.owed += bytes;
    if (this.owed * 2 < this.target && this.available > 0) return 0;
    const increment = Math.min(this.owed, this.target - this.available);
    this.owed = 0;
    if (increment <= 0) return 0;
    this.available += increment;
    return increment;
  }
}
