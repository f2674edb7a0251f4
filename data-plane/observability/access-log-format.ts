/**
 * The access log's line format: nginx `log_format` syntax (`$name`, `${name}`) over a CallRecord, as APISIX's
 * `nginx_config.http.access_log_format` with `access_log_format_escape` (default | json).
 *
 * The format is compiled once at start into literal parts and field readers, so a line costs string
 * concatenation only; an unknown variable is a configuration error thrown at compile time (nginx refuses to start
 * on `unknown "x" variable`), so a typo is caught at start rather than logged as '-' forever.
 *
 * Values follow nginx: an empty value prints '-' in text formats (nginx logs a missing value as '-'), but nothing
 * with escape=json; `default` escaping writes `"`, `\` and bytes < 0x20 or >= 0x7f as `\xHH` (uppercase hex, per
 * UTF-8 byte, ngx_http_log_escape); `json` escapes as JSON string content. Literals are never escaped. The time
 * variables are the call's end (startedAt + durationMs): nginx reads the clock in its log phase, after the request.
 */
import type { CallRecord } from './call-record.ts';

export type AccessLogEscape = 'json' | 'default';

/** A terminal-friendly text format (for `access_log_format: readable` style configuration). */
export const READABLE_ACCESS_LOG_FORMAT =
  '$time_iso8601 $remote_addr "$request" $status grpc=$grpc_status $request_time s upstream=$upstream_addr route=$route_id id=$request_id';

const MS_PER_SECOND = 1000;
const MINUTES_PER_HOUR = 60;
const SECONDS_DECIMALS = 3;
const SERVER_PROTOCOL = 'HTTP/2.0';
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const HEX = '0123456789ABCDEF';
/** The first code unit nginx's default escaping writes as \xHH above the control characters (DEL). */
const FIRST_HIGH_ESCAPED = 0x7f;
const FIRST_PRINTABLE = 0x20;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

interface Variable {
  read: (r: CallRecord) => string;
  /** Never empty and never needs escaping (numbers, times, constants): printed as read. */
  plain: boolean;
}

type Reader = (r: CallRecord) => string;

const endMs = (r: CallRecord): number => r.startedAt + r.durationMs;
const seconds = (ms: number): string => (ms / MS_PER_SECOND).toFixed(SECONDS_DECIMALS);

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** The local UTC offset of `d` as `+hh:mm` (ISO 8601) or `+hhmm` (Common Log Format). */
function offset(d: Date, separator: string): string {
  const east = -d.getTimezoneOffset();
  const abs = Math.abs(east);
  return (east >= 0 ? '+' : '-') + pad2(Math.floor(abs / MINUTES_PER_HOUR)) + separator + pad2(abs % MINUTES_PER_HOUR);
}

/** Formats a time to the second, remembering the last second formatted (nginx caches its time strings too). */
function perSecond(format: (d: Date) => string): (ms: number) => string {
  let second = NaN;
  let text = '';
  return (ms) => {
    const s = Math.floor(ms / MS_PER_SECOND);
    if (s !== second) {
      second = s;
      text = format(new Date(s * MS_PER_SECOND));
    }
    return text;
  };
}

const iso8601 = perSecond(
  (d) =>
    `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}T` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}${offset(d, ':')}`,
);

const commonLogTime = perSecond(
  (d) =>
    `${pad2(d.getDate())}/${MONTHS[d.getMonth()] as string}/${d.getFullYear()}:` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())} ${offset(d, '')}`,
);

const text = (read: Reader): Variable => ({ read, plain: false });
const plain = (read: Reader): Variable => ({ read, plain: true });

const VARIABLES: ReadonlyMap<string, Variable> = new Map([
  ['remote_addr', text((r) => r.remoteAddr)],
  ['remote_port', plain((r) => String(r.remotePort))],
  ['time_iso8601', plain((r) => iso8601(endMs(r)))],
  ['time_local', plain((r) => commonLogTime(endMs(r)))],
  ['msec', plain((r) => seconds(endMs(r)))],
  ['request_method', text((r) => r.method)],
  ['request_uri', text((r) => r.path)],
  ['uri', text((r) => r.path)],
  ['request', text((r) => `${r.method} ${r.path} ${SERVER_PROTOCOL}`)],
  ['host', text((r) => r.authority)],
  ['http_host', text((r) => r.authority)],
  ['scheme', text((r) => r.scheme)],
  ['server_protocol', plain(() => SERVER_PROTOCOL)],
  ['status', plain((r) => String(r.status))],
  ['upstream_addr', text((r) => (r.upstreamAddr === '' ? '-' : r.upstreamAddr))],
  ['request_time', plain((r) => seconds(r.durationMs))],
  ['upstream_response_time', plain((r) => (r.upstreamMs < 0 ? '-' : seconds(r.upstreamMs)))],
  ['bytes_sent', plain((r) => String(r.bytesSent))],
  ['body_bytes_sent', plain((r) => String(r.bytesSent))],
  ['request_length', plain((r) => String(r.bytesReceived))],
  // An answer that is not gRPC (a CORS preflight, grpc-web's 405/400, a 505 to HTTP/1.1) has none: '-'.
  ['grpc_status', plain((r) => (r.grpcStatus < 0 ? '-' : String(r.grpcStatus)))],
  ['grpc_message', text((r) => r.grpcMessage)],
  ['route_id', text((r) => r.routeId)],
  ['route_name', text((r) => r.routeName)],
  ['service_id', text((r) => r.serviceId)],
  ['consumer_name', text((r) => r.consumerName)],
  ['request_id', text((r) => r.requestId)],
  ['trace_id', text((r) => r.traceId)],
  ['span_id', text((r) => r.spanId)],
  ['http_user_agent', text((r) => r.userAgent)],
]);

/** nginx's default log escaping: `"`, `\`, controls and every byte of a non-ASCII character as `\xHH`. */
export function escapeNginx(value: string): string {
  let i = 0;
  for (; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < FIRST_PRINTABLE || c >= FIRST_HIGH_ESCAPED || c === QUOTE || c === BACKSLASH) break;
  }
  if (i === value.length) return value;
  let out = value.slice(0, i);
  for (const byte of Buffer.from(value.slice(i), 'utf8')) {
    out +=
      byte < FIRST_PRINTABLE || byte >= FIRST_HIGH_ESCAPED || byte === QUOTE || byte === BACKSLASH
        ? '\\x' + HEX.charAt(byte >> 4) + HEX.charAt(byte & 0xf)
        : String.fromCharCode(byte);
  }
  return out;
}

/** JSON string content (without the quotes): `"`, `\`, controls, and lone surrogates as JSON.stringify writes them. */
/** Control characters, quote, backslash, lone or paired surrogates: what JSON.stringify must rewrite or check. */
const NEEDS_JSON_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;

export function escapeJsonContent(value: string): string {
  // One compiled regular expression scans faster than a charCodeAt loop (0.6 µs per line in the profile).
  return NEEDS_JSON_ESCAPE.test(value) ? JSON.stringify(value).slice(1, -1) : value;
}

function reader(name: string, escape: AccessLogEscape): Reader {
  const variable = VARIABLES.get(name);
  if (variable === undefined) throw new Error(`access_log_format: unknown variable $${name}`);
  const read = variable.read;
  if (variable.plain) return read;
  if (escape === 'json') return (r) => escapeJsonContent(read(r));
  return (r) => {
    const value = read(r);
    return value === '' ? '-' : escapeNginx(value);
  };
}

const isNameChar = (c: string): boolean => /[A-Za-z0-9_]/.test(c);

/** Splits a format into literals[0] reader[0] literals[1] … reader[n-1] literals[n]. */
function parse(format: string, escape: AccessLogEscape): { literals: string[]; readers: Reader[] } {
  const literals: string[] = [];
  const readers: Reader[] = [];
  let literal = '';
  let i = 0;
  while (i < format.length) {
    const c = format.charAt(i);
    if (c !== '$') {
      literal += c;
      i++;
      continue;
    }
    let name: string;
    if (format[i + 1] === '{') {
      const close = format.indexOf('}', i + 2);
      if (close < 0) throw new Error(`access_log_format: unclosed \${ at offset ${i}`);
      name = format.slice(i + 2, close);
      i = close + 1;
    } else {
      let j = i + 1;
      while (j < format.length && isNameChar(format.charAt(j))) j++;
      name = format.slice(i + 1, j);
      i = j;
    }
    if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`access_log_format: invalid variable name "$${name}"`);
    literals.push(literal);
    readers.push(reader(name, escape));
    literal = '';
  }
  literals.push(literal);
  return { literals, readers };
}

/**
 * Writes one line into a buffer with room for it: the access log's fast path (access-log.ts writeRecord). The
 * default line is encoded straight into the log's chunk, byte by byte, with no intermediate string: formatting the
 * same line as a string and then encoding it cost twice as much (0.36 µs to build, 0.35 µs to flatten and encode).
 */
export interface LineEncoder {
  /** An upper bound of the line's UTF-8 length (without its newline). */
  maxBytes(r: CallRecord): number;
  /** Writes the line at `at` (the caller reserved maxBytes) and returns the offset after it. */
  encode(r: CallRecord, buf: Buffer, at: number): number;
}

/** JSON escapes at most 6 octets per UTF-16 unit (`\u001f`, or a lone surrogate); UTF-8 at most 3. */
const MAX_ESCAPED_OCTETS_PER_UNIT = 6;
/** Enough for any number written below (-1.7976931348623157e+308 is 23 characters). */
const MAX_NUMBER_OCTETS = 24;
const FIRST_NON_ASCII = 0x80;
const DIGIT_ZERO = 0x30;
const DOT = 0x2e;
const DECIMAL = 10;
/** Integers up to this are written digit by digit; beyond, as String(n) writes them. */
const MAX_SMALL_INTEGER = 2 ** 31 - 1;

/** Octets of an ASCII string the gateway made itself (an IP address, ip:port, hex ids): written as they are. */
function putAscii(buf: Buffer, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) buf[at++] = s.charCodeAt(i);
  return at;
}

/** JSON string content: ASCII that needs no escape is copied; the rest of the string goes through escapeJsonContent. */
function putJsonContent(buf: Buffer, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < FIRST_PRINTABLE || c >= FIRST_NON_ASCII || c === QUOTE || c === BACKSLASH) {
      return at + buf.write(escapeJsonContent(s.slice(i)), at, 'utf8');
    }
    buf[at++] = c;
  }
  return at;
}

/** A JSON number: small non-negative integers digit by digit, anything else as String() writes it; null if not finite. */
function putNumber(buf: Buffer, at: number, n: number): number {
  if (!Number.isFinite(n)) return putAscii(buf, at, 'null');
  if (n < 0 || n > MAX_SMALL_INTEGER || n !== Math.floor(n)) return putAscii(buf, at, String(n));
  if (n < DECIMAL) {
    buf[at] = DIGIT_ZERO + n;
    return at + 1;
  }
  let digits = 1;
  for (let v = n; v >= DECIMAL; v = Math.floor(v / DECIMAL)) digits++;
  for (let i = at + digits - 1, v = n; i >= at; i--, v = Math.floor(v / DECIMAL)) buf[i] = DIGIT_ZERO + (v % DECIMAL);
  return at + digits;
}

/** ms as JSON seconds rounded to the millisecond, written as String(Math.round(ms) / 1000) would (0, 0.1, 1.234). */
function putSeconds(buf: Buffer, at: number, ms: number): number {
  const whole = Math.round(ms);
  if (!(whole >= 0 && whole <= MAX_SMALL_INTEGER)) return putNumber(buf, at, whole / MS_PER_SECOND);
  at = putNumber(buf, at, Math.floor(whole / MS_PER_SECOND));
  let fraction = whole % MS_PER_SECOND;
  if (fraction === 0) return at;
  buf[at++] = DOT;
  for (let unit = MS_PER_SECOND / DECIMAL; fraction > 0; unit /= DECIMAL) {
    const digit = Math.floor(fraction / unit);
    buf[at++] = DIGIT_ZERO + digit;
    fraction -= digit * unit;
  }
  return at;
}

/**
 * A run of the line that depends on a few strings only (the method, path and authority; the route and service; the
 * user agent), kept as octets for the last strings it was made for: consecutive calls mostly share them (the same
 * string objects, from HPACK's tables), so the run is copied rather than escaped and encoded again.
 */
class Run {
  private a: string | undefined;
  private b: string | undefined;
  private c: string | undefined;
  private bytes: Buffer = Buffer.alloc(0);
  private readonly write: (buf: Buffer, at: number, a: string, b: string, c: string) => number;

  constructor(write: (buf: Buffer, at: number, a: string, b: string, c: string) => number) {
    this.write = write;
  }

  put(buf: Buffer, at: number, a: string, b: string, c: string): number {
    if (a !== this.a || b !== this.b || c !== this.c) {
      const end = this.write(buf, at, a, b, c);
      this.bytes = Buffer.from(buf.subarray(at, end));
      this.a = a;
      this.b = b;
      this.c = c;
      return end;
    }
    buf.set(this.bytes, at);
    return at + this.bytes.length;
  }
}

/** A constant run: TypedArray#set copies it faster than a loop over its characters. */
const lit = (text: string) => {
  const bytes = Buffer.from(text, 'latin1');
  return (buf: Buffer, at: number): number => {
    buf.set(bytes, at);
    return at + bytes.length;
  };
};
/** The time changes once a second (iso8601 returns the same string meanwhile); a connection's calls share its address. */
const TIME = new Run((buf, at, time, remoteAddr) => putAscii(buf, putAscii(buf, putAscii(buf, putAscii(buf, at, '{"time":"'), time), '","remote_addr":"'), remoteAddr));
const REQUEST = new Run((buf, at, method, path, authority) => {
  at = putJsonContent(buf, putAscii(buf, at, '","request_method":"'), method);
  at = putJsonContent(buf, putAscii(buf, at, '","request_uri":"'), path);
  at = putJsonContent(buf, putAscii(buf, at, '","host":"'), authority);
  return putAscii(buf, at, '","status":');
});
const GRPC_STATUS = lit(',"grpc_status":');
const GRPC_MESSAGE = lit(',"grpc_message":"');
const ROUTE = new Run((buf, at, routeId, serviceId, upstreamAddr) => {
  at = putJsonContent(buf, putAscii(buf, at, '","route_id":"'), routeId);
  at = putJsonContent(buf, putAscii(buf, at, '","service_id":"'), serviceId);
  return putAscii(buf, putAscii(buf, putAscii(buf, at, '","upstream_addr":"'), upstreamAddr), '","request_time":');
});
const UPSTREAM_TIME = lit(',"upstream_response_time":');
const BYTES_RECEIVED = lit(',"bytes_received":');
const BYTES_SENT = lit(',"bytes_sent":');
const REQUEST_ID = lit(',"request_id":"');
const TRACE_ID = lit('","trace_id":"');
const USER_AGENT = new Run((buf, at, userAgent) => putAscii(buf, putJsonContent(buf, putAscii(buf, at, '","user_agent":"'), userAgent), '"}'));
/** The line's constant octets and the iso8601 time: what maxBytes adds to the values' own. */
const CONSTANT_OCTETS = 400;
const NUMBER_FIELDS = 7;

/**
 * The default line: one JSON object (numbers as numbers, times in seconds, no upstream answer as null). The values
 * the gateway makes itself (a socket's IP address, ip:port, hex ids) need no escaping.
 */
export const DEFAULT_JSON_LINE: LineEncoder = {
  maxBytes(r) {
    const text = r.method.length + r.path.length + r.authority.length + r.grpcMessage.length + r.routeId.length + r.serviceId.length + r.requestId.length + r.userAgent.length;
    const raw = r.remoteAddr.length + r.upstreamAddr.length + r.traceId.length;
    return CONSTANT_OCTETS + NUMBER_FIELDS * MAX_NUMBER_OCTETS + raw + MAX_ESCAPED_OCTETS_PER_UNIT * text;
  },
  encode(r, buf, at) {
    at = TIME.put(buf, at, iso8601(endMs(r)), r.remoteAddr, '');
    at = putNumber(buf, REQUEST.put(buf, at, r.method, r.path, r.authority), r.status);
    at = GRPC_STATUS(buf, at);
    at = r.grpcStatus < 0 ? putAscii(buf, at, 'null') : putNumber(buf, at, r.grpcStatus); // null: an answer that is not gRPC
    at = putJsonContent(buf, GRPC_MESSAGE(buf, at), r.grpcMessage);
    at = putSeconds(buf, ROUTE.put(buf, at, r.routeId, r.serviceId, r.upstreamAddr), r.durationMs);
    at = UPSTREAM_TIME(buf, at);
    at = r.upstreamMs < 0 ? putAscii(buf, at, 'null') : putSeconds(buf, at, r.upstreamMs);
    at = putNumber(buf, BYTES_RECEIVED(buf, at), r.bytesReceived);
    at = putNumber(buf, BYTES_SENT(buf, at), r.bytesSent);
    at = putJsonContent(buf, REQUEST_ID(buf, at), r.requestId);
    at = putAscii(buf, TRACE_ID(buf, at), r.traceId);
    return USER_AGENT.put(buf, at, r.userAgent, '', '');
  },
};

/** The default line as a string (tests, and whatever wants one line rather than a log's chunk). */
function defaultJsonLine(r: CallRecord): string {
  const buf = Buffer.allocUnsafe(DEFAULT_JSON_LINE.maxBytes(r));
  return buf.toString('utf8', 0, DEFAULT_JSON_LINE.encode(r, buf, 0));
}

/**
 * Compiles `format` (undefined: the default JSON line) into a function returning one line without its newline.
 * A format starting with `{` is a JSON template and escapes as json unless `escape` says otherwise.
 * @throws on an unknown variable or a malformed `$` — a configuration error, meant to stop the start.
 */
export function compileAccessLogFormat(format: string | undefined, escape?: AccessLogEscape): (r: CallRecord) => string {
  if (format === undefined) return defaultJsonLine;
  const mode = escape ?? (format.trimStart().startsWith('{') ? 'json' : 'default');
  const { literals, readers } = parse(format, mode);
  const head = literals[0] ?? '';
  const count = readers.length;
  if (count === 0) return () => head;
  return (r) => {
    let line = head;
    // parse() gives one more literal than readers: every index here is in range.
    for (let i = 0; i < count; i++) line += (readers[i] as Reader)(r) + (literals[i + 1] as string);
    return line;
  };
}
