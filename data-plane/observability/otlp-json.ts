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


/** What the gateway's SERVER span is made of: a call's observation (call-observation.ts) as it ends. */
export interface ServerSpanSource {
  readonly traceId: string;
  readonly spanId: string;
  /** '' when the call came without a parent. */
  readonly parentSpanId: string;
  /** '' when none. */
  readonly traceState: string;
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly remoteAddr: string;
  readonly route: { readonly routeId: string; readonly routeName: string; readonly serviceId: string } | undefined;
  /** '' when no node was tried. */
  readonly nodeHost: string;
  readonly nodePort: number;
  readonly status: number;
  readonly grpcStatus: number;
  readonly grpcMessage: string;
  /** '' when request ids are off. */
  readonly requestId: string;
}

const stringAttribute = (key: string, value: string): string => `{"key":"${key}","value":{"stringValue":${JSON.stringify(value)}}}`;
const intAttribute = (key: string, value: number): string => `{"key":"${key}","value":${JSON.stringify(encodeValue(value))}}`;

/**
 * A part of the span made for the last keys it was asked with (compared by identity, then by value for strings),
 * and made again only when they change: consecutive spans mostly share them.
 */
/** No key yet: unequal to anything a caller passes. */
const UNSET = Symbol('unset');

class Part {
  private a: unknown = UNSET;
  private b: unknown = UNSET;
  private c: unknown = UNSET;
  private text = '';
  private readonly make: (a: never, b: never, c: never) => string;

  constructor(make: (a: never, b: never, c: never) => string) {
    this.make = make;
  }

  get(a: unknown, b?: unknown, c?: unknown): string {
    if (a !== this.a || b !== this.b || c !== this.c) {
      this.text = (this.make as (a: unknown, b: unknown, c: unknown) => string)(a, b, c);
      this.a = a;
      this.b = b;
      this.c = c;
    }
    return this.text;
  }
}

/**
 * The gateway's SERVER span for one call, as encodeSpan would write it with OpenTelemetry's RPC attributes
 * (rpc.*, http.*, url.path, server.address, client.address), the route's and the node's, and the request id. The
 * parts that depend on the method, the route or the node are made once and reused while consecutive spans share
 * them: a span costs ~1 µs instead of the ~6 µs of building attribute objects and stringifying each.
 */
export class ServerSpanEncoder {
  private readonly call = new Part((method: string, path: string, authority: string) => {
    const slash = path.lastIndexOf('/');
    return (
      `"name":${JSON.stringify(path)},"kind":${SPAN_KIND_SERVER},"attributes":[${stringAttribute('rpc.system', 'grpc')}` +
      `,${stringAttribute('rpc.service', slash > 0 ? path.slice(1, slash) : '')},${stringAttribute('rpc.method', path.slice(slash + 1))}` +
      `,${stringAttribute('http.request.method', method)},${stringAttribute('url.path', path)},${stringAttribute('server.address', authority)}`
    );
  });
  private readonly client = new Part((remoteAddr: string) => `,${stringAttribute('client.address', remoteAddr)}`);
  private readonly route = new Part((route: ServerSpanSource['route']) =>
    route === undefined ? '' : `,${stringAttribute('apisix.route_id', route.routeId)},${stringAttribute('apisix.route_name', route.routeName)},${stringAttribute('apisix.service_id', route.serviceId)}`,
  );
  private readonly node = new Part((host: string, port: number) =>
    host === '' ? '' : `,${stringAttribute('server.upstream.address', host)},${intAttribute('server.upstream.port', port)}`,
  );

  /** `statusMessage` is the error status's message (used only when `error`). */
  encode(s: ServerSpanSource, startUnixMs: number, endUnixMs: number, error: boolean, statusMessage: string): string {
    let json = `{"traceId":"${s.traceId}","spanId":"${s.spanId}"`;
    if (s.parentSpanId !== '') json += `,"parentSpanId":"${s.parentSpanId}"`;
    if (s.traceState !== '') json += `,"traceState":${JSON.stringify(s.traceState)}`;
    json += `,"startTimeUnixNano":"${unixMsToNanos(startUnixMs)}","endTimeUnixNano":"${unixMsToNanos(endUnixMs)}",`;
    json += this.call.get(s.method, s.path, s.authority);
    json += `,{"key":"rpc.grpc.status_code","value":{"intValue":"${s.grpcStatus}"}},{"key":"http.response.status_code","value":{"intValue":"${s.status}"}}`;
    json += this.client.get(s.remoteAddr) + this.route.get(s.route) + this.node.get(s.nodeHost, s.nodePort);
    if (s.requestId !== '') json += `,${stringAttribute('http.request.header.x_request_id', s.requestId)}`;
    return `${json}],"status":{"code":${error ? `${STATUS_CODE_ERROR},"message":${JSON.stringify(statusMessage)}` : STATUS_CODE_UNSET}}}`;
  }
}
