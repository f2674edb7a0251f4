/**
 * A log line that an attacker cannot turn into a flood: `limitedLog(log, message)` gives a `hit(fields)` to call
 * each time a limit turns something away. The first hit of a quiet period is logged at once; hits in the next
 * `intervalMs` are only counted, and one line at the end of the interval reports how many there were (with the
 * fields of the last one), so at most one line per interval per message, and no event goes unreported. Like
 * nginx's `limit_conn_log_level` lines, but summarised: nginx writes one per refusal, which under attack is the
 * disk-filling second attack. The interval timer is unref'd: it never keeps a process alive.
 */
import type { Logger } from '../../shared/logger.ts';

/** One line per ten seconds per message, as issue #11 suggests: enough to see an attack, too few to hurt. */
export const LIMITED_LOG_INTERVAL_MS = 10_000;

export type LogFields = Record<string, unknown>;

export interface LimitedLog {
  /** One event; `fields` describe it (the last one's are logged with the count). */
  hit(fields?: LogFields): void;
  /** Events counted since the logger was made. */
  readonly total: number;
  /** Logs what is still counted and stops the timer. */
  close(): void;
}

export function limitedLog(log: Logger, message: string, intervalMs: number = LIMITED_LOG_INTERVAL_MS): LimitedLog {
  let pending = 0;
  let total = 0;
  let last: LogFields | undefined;
  let timer: NodeJS.Timeout | undefined;

  const flush = (): void => {
    if (pending === 0) {
      timer = undefined; // a quiet interval: the next hit is logged at once
      return;
    }
    log.warn({ ...last, count: pending, intervalMs }, message);
    pending = 0;
    timer?.refresh();
  };

  return {
    hit(fields) {
      total += 1;
      if (timer === undefined) {
        log.warn({ ...fields, count: 1 }, message);
        timer = setTimeout(flush, intervalMs);
        timer.unref();
        return;
      }
      pending += 1;
      last = fields;
    },
    get total() {
      return total;
    },
    close() {
      clearTimeout(timer);
      if (pending > 0) log.warn({ ...last, count: pending, intervalMs }, message);
      pending = 0;
      timer = undefined;
    },
  };
}
