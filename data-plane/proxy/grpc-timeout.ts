/**
 * The `grpc-timeout` header (PROTOCOL-HTTP2.md): `TimeoutValue TimeoutUnit`, at most 8 ASCII digits and one of
 * H (hours), M (minutes), S (seconds), m (milliseconds), u (microseconds), n (nanoseconds).
 */
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };
const MAX_DIGITS_VALUE = 99_999_999;

/** Milliseconds (at least 1 for any positive value), or undefined when absent or malformed. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || value.length < 2 || value.length > 9) return undefined;
  const unit = UNIT_MS[value.charAt(value.length - 1)];
  const digits = value.slice(0, -1);
  if (unit === undefined || !/^\d+$/.test(digits)) return undefined;
  return Math.max(1, Math.ceil(Number(digits) * unit));
}

/** The time left, for the upstream: milliseconds while they fit in 8 digits, else seconds. */
export function formatGrpcTimeout(ms: number): string {
  const left = Math.max(1, Math.ceil(ms));
  return left <= MAX_DIGITS_VALUE ? `${left}m` : `${Math.ceil(left / 1000)}S`;
}
