/**
 * Log lines for limits that turn clients away, by kind: `note(kind, fields, message)` feeds one `limitedLog` per kind
 * (limited-log.ts), so each kind of refusal writes its first line at once and then at most one line per interval
 * with the count folded in. An attacker who trips a limit thousands of times a second cannot flood the log (nginx's
 * `limit_req_log_level` logs each refusal; Envoy counts them in stats and logs at debug level).
 */
import type { Logger } from '../../shared/logger.ts';
import { LIMITED_LOG_INTERVAL_MS, limitedLog, type LimitedLog } from './limited-log.ts';

export class RateLimitedLog {
  private readonly log: Logger;
  private readonly intervalMs: number;
  private readonly kinds = new Map<string, LimitedLog>();

  constructor(log: Logger, intervalMs = LIMITED_LOG_INTERVAL_MS) {
    this.log = log;
    this.intervalMs = intervalMs;
  }

  /** One refusal of this kind; `message` is the kind's line (the first one given for it is kept). */
  note(kind: string, fields: Record<string, unknown>, message: string): void {
    let line = this.kinds.get(kind);
    if (line === undefined) {
      line = limitedLog(this.log, message, this.intervalMs);
      this.kinds.set(kind, line);
    }
    line.hit({ ...fields, limit: kind });
  }

  /** Writes what is still counted and stops the timers. */
  close(): void {
    for (const line of this.kinds.values()) line.close();
    this.kinds.clear();
  }
}
