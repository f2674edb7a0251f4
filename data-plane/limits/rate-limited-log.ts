/**
 * Log lines for limits that turn clients away: one line per kind of refusal per interval, with the number of
 * refusals folded into it, so an attacker who trips a limit thousands of times a second cannot flood the log
 * (nginx's `limit_req_log_level` logs each refusal; Envoy counts them in stats and logs at debug level).
 */
import type { Logger } from '../../shared/logger.ts';

/** At most one line per kind this often. */
export const LOG_INTERVAL_MS = 10_000;

export class RateLimitedLog {
  private readonly log: Logger;
  private readonly intervalMs: number;
  /** Per kind: when its last line was written and how many notes were suppressed since. */
  private readonly kinds = new Map<string, { at: number; suppressed: number }>();

  constructor(log: Logger, intervalMs = LOG_INTERVAL_MS) {
    this.log = log;
    this.intervalMs = intervalMs;
  }

  /** Writes `message` at warn level unless a line of this kind was written within the interval. */
  note(kind: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    const last = this.kinds.get(kind);
    if (last !== undefined && now - last.at < this.intervalMs) {
      last.suppressed++;
      return;
    }
    this.log.warn({ ...fields, limit: kind, suppressedSinceLastLine: last?.suppressed ?? 0 }, message);
    this.kinds.set(kind, { at: now, suppressed: 0 });
  }
}
