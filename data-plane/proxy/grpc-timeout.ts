/**
 * The `grpc-timeout` header (PROTOCOL-HTTP2.md): `TimeoutValue TimeoutUnit`, a positive integer of at most 8 ASCII
 * digits and one of H (hours), M (minutes), S (seconds), m (milliseconds), u (microseconds), n (nanoseconds).
 *
 * A value that does not follow that grammar (`abc`, `1.5S`, nine digits, a duplicated header joined into a list) is
 * MALFORMED, not absent: the call is answered INTERNAL and nothing reaches the upstream, as gRPC servers do
 * (grpc-go's transport: `status.Error(codes.Internal, "malformed grpc-timeout: …")`; grpc-js's server:
 * `Status.INTERNAL, 'Invalid grpc-timeout value'`). Forwarding it verbatim would hand the upstream a header it
 * rejects the same way, or one a lenient parser reads differently from us (grpc-js matches `1.5S` as 5 s), so the
 * deadline the gateway enforces and the one the upstream sees could disagree.
 *
 * A well-formed value can exceed what a timer holds (`720H` is 2.6e9 ms, 99999999H is 3.6e14 ms): it stays a valid
 * deadline; forward.ts arms a clamped timer and re-arms it until the deadline is reached (timers.ts), and the time
 * left is forwarded in the finest unit that fits in 8 digits.
 */
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };
/** TimeoutValue is at most 8 digits: with its one-character unit, a header longer than this is malformed. */
const MAX_HEADER_LENGTH = 9;
const MAX_DIGITS_VALUE = 99_999_999;
/** Units for forwarding, finest first, with their length in milliseconds. */
const FORWARD_UNITS: readonly (readonly [string, number])[] = [
  ['m', 1],
  ['S', 1000],
  ['M', 60_000],
  ['H', 3_600_000],
];
const DIGITS = /^\d+$/;

/** What parseGrpcTimeout returns for a header that is present but does not follow the grammar. */
export const MALFORMED_TIMEOUT = -1;

/** Milliseconds (at least 1 for any value), undefined when absent, MALFORMED_TIMEOUT when malformed. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length < 2 || value.length > MAX_HEADER_LENGTH) return MALFORMED_TIMEOUT;
  const unit = UNIT_MS[value.charAt(value.length - 1)];
  const digits = value.slice(0, -1);
  if (unit === undefined || !DIGITS.test(digits)) return MALFORMED_TIMEOUT;
  return Math.max(1, Math.ceil(Number(digits) * unit));
}

/** The time left, for the upstream: in the finest unit whose value fits in 8 digits, rounded up. */
export function formatGrpcTimeout(ms: number): string {
  const left = Math.max(1, Math.ceil(ms));
  for (const [unit, unitMs] of FORWARD_UNITS) {
    const value = Math.ceil(left / unitMs);
    if (value <= MAX_DIGITS_VALUE) return `${value}${unit}`;
  }
  return `${MAX_DIGITS_VALUE}H`; // beyond 99999999H (11,000 years): the longest deadline the header can say
}
