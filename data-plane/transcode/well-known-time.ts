/**
 * google.protobuf.Timestamp and Duration as the proto3 JSON mapping writes them (timestamp.proto, duration.proto):
 * an RFC 3339 date-time in UTC (`1972-01-01T10:00:20.021Z`) and a decimal count of seconds with an `s`
 * (`1.000340012s`, `-1.500s`), both with 0, 3, 6 or 9 fractional digits on output and any 1 to 9 on input. Pure text
 * to and from `{seconds, nanos}`; the range checks are the ones the two protos define.
 */
import { mappingError, show, type Direction } from './json-scalars.ts';

export interface SecondsAndNanos {
  readonly seconds: bigint;
  readonly nanos: number;
}

/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range timestamp.proto allows. */
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;
/** ±10,000 years: the range duration.proto allows. */
const MAX_DURATION_SECONDS = 315_576_000_000n;
const NANOS_PER_SECOND = 1_000_000_000;
const NANOS_PER_MILLI = 1_000_000;
const NANOS_PER_MICRO = 1_000;
const MILLIS_PER_SECOND = 1000;
const SECONDS_PER_MINUTE = 60;
const MINUTES_PER_HOUR = 60;
const HOURS_PER_DAY = 24;
const NANO_DIGITS = 9;
/** `YYYY-MM-DDTHH:MM:SS` of Date#toISOString, before its milliseconds. */
const ISO_SECONDS_LENGTH = 19;

/**
 * RFC 3339 §5.6 `date-time`: upper-case T and Z only (the spec's conformance suite refuses lower case), 1 to 9
 * fractional digits, `Z` or a numeric offset.
 */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|([+-])(\d{2}):(\d{2}))$/;
const DURATION = /^(-)?(\d{1,12})(?:\.(\d{1,9}))?s$/;

/** Nanoseconds as `.021`, `.000340`, `.000340012`: the fewest of 0, 3, 6 or 9 digits that keep them. */
function fraction(nanos: number): string {
  if (nanos === 0) return '';
  const digits = String(nanos).padStart(NANO_DIGITS, '0');
  if (nanos % NANOS_PER_MILLI === 0) return `.${digits.slice(0, 3)}`;
  if (nanos % NANOS_PER_MICRO === 0) return `.${digits.slice(0, 6)}`;
  return `.${digits}`;
}

export function formatTimestamp({ seconds, nanos }: SecondsAndNanos, path: string, direction: Direction = 'response'): string {
  if (seconds < MIN_TIMESTAMP_SECONDS || seconds > MAX_TIMESTAMP_SECONDS || !Number.isInteger(nanos) || nanos < 0 || nanos >= NANOS_PER_SECOND) {
    const problem = `Timestamp ${seconds.toString()}s ${String(nanos)}ns is outside 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z`;
    throw mappingError(path, problem, direction);
  }
  const iso = new Date(Number(seconds) * MILLIS_PER_SECOND).toISOString();
  return `${iso.slice(0, ISO_SECONDS_LENGTH)}${fraction(nanos)}Z`;
}

export function parseTimestamp(json: unknown, path: string): SecondsAndNanos {
  const match = typeof json === 'string' ? RFC3339.exec(json) : null;
  if (match === null) throw mappingError(path, `expected an RFC 3339 timestamp such as "1972-01-01T10:00:20.021Z", got ${show(json)}`);
  const part = (index: number): number => Number(match[index] ?? '0');
  const [year, month, day, hour, minute, second] = [part(1), part(2), part(3), part(4), part(5), part(6)] as const;
  const [offsetSign, offsetHours, offsetMinutes] = [match[8], part(9), part(10)] as const;
  const date = new Date(0);
  // setUTCFullYear, not Date.UTC: Date.UTC reads the years 0 to 99 as 1900 to 1999.
  date.setUTCFullYear(year, month - 1, day);
  const validDate = date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
  const validTime = hour < HOURS_PER_DAY && minute < MINUTES_PER_HOUR && second < SECONDS_PER_MINUTE;
  const validOffset = offsetHours < HOURS_PER_DAY && offsetMinutes < MINUTES_PER_HOUR;
  if (!validDate || !validTime || !validOffset) throw mappingError(path, `${show(json)} is not a valid date and time`);
  const offset = (offsetSign === '-' ? -1 : 1) * (offsetHours * MINUTES_PER_HOUR + offsetMinutes);
  const timeOfDay = (hour * MINUTES_PER_HOUR + minute - offset) * SECONDS_PER_MINUTE + second;
  const seconds = BigInt(date.getTime() / MILLIS_PER_SECOND) + BigInt(timeOfDay);
  const nanos = Number((match[7] ?? '').padEnd(NANO_DIGITS, '0'));
  formatTimestamp({ seconds, nanos }, path, 'request');
  return { seconds, nanos };
}

export function formatDuration({ seconds, nanos }: SecondsAndNanos, path: string): string {
  const sameSign = seconds === 0n || nanos === 0 || seconds < 0n === nanos < 0;
  if (seconds < -MAX_DURATION_SECONDS || seconds > MAX_DURATION_SECONDS || !Number.isInteger(nanos) || Math.abs(nanos) >= NANOS_PER_SECOND || !sameSign) {
    throw mappingError(path, `Duration ${seconds.toString()}s ${String(nanos)}ns is outside ±315576000000s or mixes signs`, 'response');
  }
  const negative = seconds < 0n || nanos < 0;
  const whole = negative ? -seconds : seconds;
  return `${negative ? '-' : ''}${whole.toString()}${fraction(Math.abs(nanos))}s`;
}

export function parseDuration(json: unknown, path: string): SecondsAndNanos {
  const match = typeof json === 'string' ? DURATION.exec(json) : null;
  if (match === null) throw mappingError(path, `expected a duration such as "1.5s", got ${show(json)}`);
  const [, minus, whole, frac] = match;
  const sign = minus === '-' ? -1 : 1;
  const seconds = BigInt(sign) * BigInt(whole ?? '0');
  if (seconds < -MAX_DURATION_SECONDS || seconds > MAX_DURATION_SECONDS) throw mappingError(path, `${show(json)} is outside ±315576000000s`);
  const nanos = frac === undefined ? 0 : sign * Number(frac.padEnd(NANO_DIGITS, '0'));
  return { seconds, nanos: nanos === 0 ? 0 : nanos };
}
