/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): reading and writing the `traceparent` header
 * (`00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>`), drawing new trace and span ids, and the length and
 * character check a vendor may apply to `tracestate` before passing it on.
 *
 * This runs on every traced call, so it is written for cost: the parser walks the header with charCodeAt and
 * allocates only the two id slices of its result; ids are hex-encoded slices of one pooled random buffer that is
 * refilled with crypto.randomFillSync when used up (one syscall per 256 trace ids instead of one per id).
 *
 * Parsing follows the spec's rules to the letter: lowercase hex only, version `ff` invalid, version `00` exactly
 * 55 characters, all-zero trace-id or parent-id invalid. A higher version is read by its first 55 characters when it
 * is exactly that long or the 56th character is `-` (section 4.3, "Versioning of traceparent"); what follows is
 * ignored. An invalid header means "no parent": the caller starts a new trace.
 */
import { randomFillSync } from 'node:crypto';

export interface TraceParent {
  /** 32 lowercase hex characters, not all zero. */
  traceId: string;
  /** 16 lowercase hex characters, not all zero: the caller's span. */
  parentId: string;
  /** The `sampled` bit (0x01) of trace-flags. */
  sampled: boolean;
}

/** Length of a version-00 traceparent: 2 + 1 + 32 + 1 + 16 + 1 + 2. */
export const TRACEPARENT_LENGTH = 55;
/** The spec's advice for the longest tracestate a vendor must propagate (32 list members, section 3.3.1.1). */
export const MAX_TRACESTATE_LENGTH = 512;

const TRACE_ID_BYTES = 16;
const SPAN_ID_BYTES = 8;
const TRACE_ID_START = 3;
const TRACE_ID_END = TRACE_ID_START + TRACE_ID_BYTES * 2; // 35
const PARENT_ID_START = TRACE_ID_END + 1; // 36
const PARENT_ID_END = PARENT_ID_START + SPAN_ID_BYTES * 2; // 52
const FLAGS_START = PARENT_ID_END + 1; // 53
const FLAG_SAMPLED = 0x01;
const INVALID_VERSION = 0xff;

const DASH = 0x2d; // '-'
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const LOWER_A = 0x61;
const LOWER_F = 0x66;
const PRINTABLE_FIRST = 0x20; // space
const PRINTABLE_LAST = 0x7e; // '~'
const HTAB = 0x09; // optional whitespace around list members (RFC 9110 OWS)

/** Value of one lowercase hex digit, or -1 for anything else (uppercase included, as the spec requires). */
function hexValue(code: number): number {
  if (code >= DIGIT_0 && code <= DIGIT_9) return code - DIGIT_0;
  if (code >= LOWER_A && code <= LOWER_F) return code - LOWER_A + 10;
  return -1;
}

/** True when value[start, end) is lowercase hex and not all zeros. */
function nonZeroHex(value: string, start: number, end: number): boolean {
  let any = 0;
  for (let i = start; i < end; i++) {
    const digit = hexValue(value.charCodeAt(i));
    if (digit < 0) return false;
    any |= digit;
  }
  return any !== 0;
}

/** The parsed header, or undefined when it is absent or invalid (then the call starts a new trace). */
export function parseTraceparent(value: string | undefined): TraceParent | undefined {
  if (value === undefined || value.length < TRACEPARENT_LENGTH) return undefined;
  const v0 = hexValue(value.charCodeAt(0));
  const v1 = hexValue(value.charCodeAt(1));
  if (v0 < 0 || v1 < 0) return undefined;
  const version = v0 * 16 + v1;
  if (version === INVALID_VERSION) return undefined;
  if (version === 0) {
    if (value.length !== TRACEPARENT_LENGTH) return undefined;
  } else if (value.length > TRACEPARENT_LENGTH && value.charCodeAt(TRACEPARENT_LENGTH) !== DASH) {
    return undefined;
  }
  if (
    value.charCodeAt(2) !== DASH ||
    value.charCodeAt(TRACE_ID_END) !== DASH ||
    value.charCodeAt(PARENT_ID_END) !== DASH
  ) {
    return undefined;
  }
  if (!nonZeroHex(value, TRACE_ID_START, TRACE_ID_END) || !nonZeroHex(value, PARENT_ID_START, PARENT_ID_END)) {
    return undefined;
  }
  const f0 = hexValue(value.charCodeAt(FLAGS_START));
  const f1 = hexValue(value.charCodeAt(FLAGS_START + 1));
  if (f0 < 0 || f1 < 0) return undefined;
  return {
    traceId: value.slice(TRACE_ID_START, TRACE_ID_END),
    parentId: value.slice(PARENT_ID_START, PARENT_ID_END),
    sampled: ((f0 * 16 + f1) & FLAG_SAMPLED) !== 0,
  };
}

/** A version-00 traceparent naming `spanId` as the parent of the next hop. */
export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

/** Random bytes drawn ahead; a multiple of both id sizes, so an id never straddles a refill. */
const POOL_BYTES = 65_536;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let poolOffset = POOL_BYTES;

const ZERO_TRACE_ID = '0'.repeat(TRACE_ID_BYTES * 2);
const ZERO_SPAN_ID = '0'.repeat(SPAN_ID_BYTES * 2);

function randomHex(bytes: number): string {
  if (poolOffset + bytes > POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const start = poolOffset;
  poolOffset += bytes;
  return pool.toString('hex', start, poolOffset);
}

/** 32 random lowercase hex characters, never all zero (the spec's invalid value). */
export function newTraceId(): string {
  let id = randomHex(TRACE_ID_BYTES);
  while (id === ZERO_TRACE_ID) id = randomHex(TRACE_ID_BYTES);
  return id;
}

/** 16 random lowercase hex characters, never all zero. */
/**
 * A new trace id and span id for a call that starts a trace, from one read of the pool (one hex conversion
 * instead of two). Neither is all zeros (§3.2.2.3, §3.2.2.4).
 */
export function newTraceAndSpanIds(): { traceId: string; spanId: string } {
  const hex = randomHex(TRACE_ID_BYTES + SPAN_ID_BYTES);
  let traceId = hex.slice(0, TRACE_ID_BYTES * 2);
  let spanId = hex.slice(TRACE_ID_BYTES * 2);
  while (traceId === ZERO_TRACE_ID) traceId = randomHex(TRACE_ID_BYTES);
  while (spanId === ZERO_SPAN_ID) spanId = randomHex(SPAN_ID_BYTES);
  return { traceId, spanId };
}

export function newSpanId(): string {
  let id = randomHex(SPAN_ID_BYTES);
  while (id === ZERO_SPAN_ID) id = randomHex(SPAN_ID_BYTES);
  return id;
}

/**
 * Whether a tracestate value may be passed on: at most MAX_TRACESTATE_LENGTH characters of printable ASCII (tabs
 * allowed as the list's optional whitespace). The spec lets a vendor drop a tracestate it cannot propagate; the
 * list members themselves are not parsed, since this gateway adds no entry of its own.
 */
export function validTracestate(value: string): boolean {
  if (value.length > MAX_TRACESTATE_LENGTH) return false;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if ((code < PRINTABLE_FIRST || code > PRINTABLE_LAST) && code !== HTAB) return false;
  }
  return true;
}
