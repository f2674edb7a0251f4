/**
 * Whether a call that lost an attempt gets another one, and where: a pure decision over numbers, so the rules are
 * tested on their own (test/data-plane/retry-policy.test.ts) and the call only carries them out.
 *
 * Rules (gRPC PROTOCOL-HTTP2.md, gRFC A6's "transparent retry", APISIX's retries and retry_timeout):
 * - Only attempts that the upstream never processed are retried: a failed connect, a stream it refused
 *   (REFUSED_STREAM) or never saw (above its GOAWAY's last-stream-id, or still waiting when the connection went).
 *   A reset or a lost connection after the request reached the upstream is never retried: it may have run.
 * - Never after the response started, never without the request bytes to replay, never past `retry_timeout` or the
 *   call's deadline.
 * - A refused stream is tried once more on the same node (a fresh connection if that one drains); after that, and
 *   after a failed connect, the next untried node, up to `retries` other nodes.
 * - An attempt that got no response headers within its timeout (`timeout.read`, or `timeout.send` while request
 *   bytes wait) goes to the next untried node, as nginx's `proxy_next_upstream timeout` does for APISIX: a hung
 *   node then costs a call its timeout, not the call. The request may have reached that node; a gRPC service
 *   whose methods must not run twice sets no `timeout` (or `retries: 0`) on its upstream.
 */
export type AttemptOutcome =
  /** The connection to the node could not be made. */
  | 'connect-failed'
  /** The upstream did not process the stream (REFUSED_STREAM, above GOAWAY's last-stream-id, never sent). */
  | 'refused'
  /** The connection went away while the stream was open (it may have been processed). */
  | 'lost'
  /** The upstream reset the stream, or sent something that is not a gRPC response. */
  | 'reset'
  /** No response headers within the attempt's timeout (`timeout.read` or `timeout.send`): the node may hang. */
  | 'timeout'
  /** Trailers arrived: the response is complete. */
  | 'complete';

export type RetryDecision = 'same-node' | 'next-node' | 'fail';

export interface RetryState {
  /** The request so far is still held for a replay, and the response has not started. */
  readonly replayable: boolean;
  readonly elapsedMs: number;
  /** 0 = no limit. */
  readonly retryTimeoutMs: number;
  /** Time left before the call's deadline; Infinity without one. */
  readonly deadlineLeftMs: number;
  /** A refused stream was already tried again on the same node. */
  readonly refusedRetried: boolean;
  /** Nodes tried so far, including the one that just failed. */
  readonly nodesTried: number;
  /** Other nodes a call may try (APISIX `retries`). */
  readonly retries: number;
}

export function decideRetry(outcome: AttemptOutcome, state: RetryState): RetryDecision {
  if (outcome !== 'connect-failed' && outcome !== 'refused' && outcome !== 'timeout') return 'fail';
  const allowed =
    state.replayable && (state.retryTimeoutMs === 0 || state.elapsedMs < state.retryTimeoutMs) && state.deadlineLeftMs > 0;
  if (!allowed) return 'fail';
  if (outcome === 'refused' && !state.refusedRetried) return 'same-node';
  return state.nodesTried <= state.retries ? 'next-node' : 'fail';
}
