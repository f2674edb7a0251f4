/**
 * The OTLP/JSON encoding of finished spans (OTLP spec, "JSON Protobuf Encoding"): an ExportTraceServiceRequest
 * in the proto3 JSON mapping with OTLP's exceptions: traceId/spanId/parentSpanId are lowercase hex, not base64;
 * enums are integers (kind 2 = SPAN_KIND_SERVER, status code 0 UNSET / 2 ERROR); 64-bit integers are decimal
 * strings (startTimeUnixNano, endTimeUnixNano, an attribute's intValue).
 *
 * Kept apart from the exporter's queueing so the wire shape can be read and tested on its own. Times arrive as
 * fractional Unix milliseconds (performance.timeOrigin + performance.now()); ms × 1e6 exceeds 2^53, so the
 * nanosecond string is built from the whole milliseconds and the rounded sub-millisecond nanoseconds, exactly,
 * with no exponent notation and no BigInt.
 */

export type AttributeValue = string | number | boolean;

export interface FinishedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  traceState: string | undefined;
  name: string;
  /** Unix time in milliseconds, fractional allowed (performance.timeOrigin + performance.now()). */
  startUnixMs: number;
  endUnixMs: number;
  attributes: readonly (readonly [string, AttributeValue])[];
  error: boolean;
  statusMessage?: string;
}

/** One AnyValue: exactly one of these is set. */
export interface EncodedAnyValue {
  stringValue?: string;
  intValue?: string;
  doubleValue?: number | string;
  boolValue?: boolean;
}

export interface EncodedKeyValue {
  key: string;
  value: EncodedAnyValue;
}

export interface EncodedScope {
  name: string;
  version?: string;
}

/** SPAN_KIND_SERVER: the gateway's span is the server side of the client's call. */
export const SPAN_KIND_SERVER = 2;
export const STATUS_CODE_UNSET = 0;
export const STATUS_CODE_ERROR = 2;

const NS_PER_MS = 1_000_000;
const NS_DIGITS_PER_MS = 6;

/** Unix milliseconds as an exact decimal count of nanoseconds; anything not a positive safe time is '0'. */
export function unixMsToNanos(ms: number): string {
  if (!(ms > 0 && ms <= Number.MAX_SAFE_INTEGER)) return '0';
  let whole = Math.floor(ms);
  let nanos = Math.round((ms - whole) * NS_PER_MS);
  if (nanos === NS_PER_MS) {
    whole++;
    nanos = 0;
  }
  if (whole === 0) return String(nanos);
  return String(whole) + String(nanos).padStart(NS_DIGITS_PER_MS, '0');
}

/** proto3 JSON for a double: a number, or the strings "NaN", "Infinity", "-Infinity" JSON cannot carry. */
function doubleValue(value: number): number | string {
  return Number.isFinite(value) ? value : String(value);
}

/** Safe integers as intValue (decimal string), other numbers as doubleValue, booleans as boolValue. */
export function encodeValue(value: AttributeValue): EncodedAnyValue {
  if (typeof value === 'string') return { stringValue: value };
  if (typeof value === 'boolean') return { boolValue: value };
  if (Number.isSafeInteger(value)) return { intValue: String(value) };
  return { doubleValue: doubleValue(value) };
}

function encodeAttributes(attributes: readonly (readonly [string, AttributeValue])[]): EncodedKeyValue[] {
  const out = new Array<EncodedKeyValue>(attributes.length);
  for (let i = 0; i < attributes.length; i++) {
    const [key, value] = attributes[i] as readonly [string, AttributeValue];
    out[i] = { key, value: encodeValue(value) };
  }
  return out;
}

/** The resource's attributes, encoded once per exporter. */
export function encodeResource(resource: Record<string, AttributeValue>): EncodedKeyValue[] {
  return encodeAttributes(Object.entries(resource));
}

/**
 * One span as its OTLP/JSON object, written as a string (no intermediate object graph: the exporter queues the
 * bytes). Strings that may come from a client go through JSON.stringify; keys and ids are safe as they are.
 */
export function encodeSpan(span: FinishedSpan): string {
  let json = `{"traceId":"${span.traceId}","spanId":"${span.spanId}"`;
  if (span.parentSpanId !== undefined) json += `,"parentSpanId":"${span.parentSpanId}"`;
  if (span.traceState !== undefined && span.traceState !== '') json += `,"traceState":${JSON.stringify(span.traceState)}`;
  json += `,"name":${JSON.stringify(span.name)},"kind":${SPAN_KIND_SERVER}`;
  json += `,"startTimeUnixNano":"${unixMsToNanos(span.startUnixMs)}","endTimeUnixNano":"${unixMsToNanos(span.endUnixMs)}","attributes":[`;
  const attributes = span.attributes;
  for (let i = 0; i < attributes.length; i++) {
    const [key, value] = attributes[i] as readonly [string, AttributeValue];
    json += `${i === 0 ? '' : ','}{"key":${JSON.stringify(key)},"value":${JSON.stringify(encodeValue(value))}}`;
  }
  // The spec sets a status message with the Error code only.
  const message = span.error && span.statusMessage !== undefined ? `,"message":${JSON.stringify(span.statusMessage)}` : '';
  return `${json}],"status":{"code":${span.error ? STATUS_CODE_ERROR : STATUS_CODE_UNSET}${message}}}`;
}

