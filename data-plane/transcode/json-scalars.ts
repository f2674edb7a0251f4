/**
 * The scalar values of the proto3 JSON mapping (https://protobuf.dev/programming-guides/json/), both ways, for
 * json-mapping.ts: a JSON value checked against a field's type and made ready to write (int32 and friends as JSON
 * numbers or decimal strings in range, 64-bit integers as strings or numbers checked with BigInt, floats with
 * "NaN"/"Infinity"/"-Infinity", bytes as standard or URL-safe base64, enums by name or number), and a decoded value
 * made JSON (64-bit integers per `pb_option`, floats at float precision, bytes as standard base64). Also the options
 * both directions share and the errors they raise, which name the field path.
 */
import type { Enum, Writer } from 'protobufjs';
import { JsonMappingError } from '../../shared/errors.ts';

/** How values are written as JSON: APISIX's `pb_option` list, parsed once per route (json-mapping.ts). */
export interface JsonOptions {
  /** `enum_as_name` (the proto3 mapping) or `enum_as_value`. */
  readonly enums: 'name' | 'value';
  /** `int64_as_string` (the proto3 mapping), `int64_as_number` or `int64_as_hexstring` (`"0x1f"`, `"-0x1f"`). */
  readonly int64: 'string' | 'number' | 'hexstring';
  /** `auto_default_values`, `no_default_values` or `use_default_values`: see json-mapping.ts. */
  readonly defaults: 'auto' | 'none' | 'all';
}

export const DEFAULT_JSON_OPTIONS: JsonOptions = Object.freeze({ enums: 'name', int64: 'string', defaults: 'auto' });

/**
 * Messages nested deeper than this are refused both ways: protoc's default recursion limit, which protobufjs's decoder
 * applies too (util.recursionLimit), so JSON is bounded as tightly as the wire format. Each level costs a few stack
 * frames: hostile nesting fails with this error long before the stack runs out.
 */
export const MAX_NESTING = 100;

/** Each scalar type and its wire type (protobuf encoding guide: VARINT 0, I64 1, LEN 2, I32 5). */
export const SCALAR_WIRE_TYPES = {
  double: 1, float: 5, int32: 0, uint32: 0, sint32: 0, fixed32: 5, sfixed32: 5,
  int64: 0, uint64: 0, sint64: 0, fixed64: 1, sfixed64: 1, bool: 0, string: 2, bytes: 2,
} as const;
export type Scalar = keyof typeof SCALAR_WIRE_TYPES;

export function isScalar(type: string): type is Scalar {
  return Object.hasOwn(SCALAR_WIRE_TYPES, type);
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const UINT32_MAX = 2 ** 32 - 1;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
/** FLT_MAX: a finite JSON number beyond it does not fit a float field (the spec's conformance suite refuses it). */
const FLOAT_MAX = 3.4028234663852886e38;
/** Significant digits that always single out a float32 (FLT_DECIMAL_DIG). */
const FLOAT_DIGITS = 9;
const SHOWN_CHARS = 64;

const DECIMAL = /^-?\d+$/;
const HEX = /^(-?)0x([0-9a-fA-F]+)$/;
const NUMBER_TEXT = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
/** Standard or URL-safe base64 (RFC 4648 §4 and §5), padded or not (the spec accepts both alphabets). */
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
const NON_FINITE: Readonly<Record<string, number>> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

export type Direction = 'request' | 'response';

/** `field "user.age": expected an integer, got "x"`; at the top of the message, the problem alone. */
export function mappingError(path: string, problem: string, direction: Direction = 'request'): JsonMappingError {
  return new JsonMappingError(path === '' ? problem : `field "${path}": ${problem}`, direction);
}

/**
 * A JSON value as an error message shows it: JSON text, cut short. JSON.parse reads arrays nested far deeper than
 * JSON.stringify can write (it recurses): such a value is shown as `[…]` rather than failing with a RangeError.
 */
export function show(value: unknown): string {
  let text: string;
  try {
    text = value === undefined ? 'nothing' : JSON.stringify(value);
  } catch {
    text = Array.isArray(value) ? '[…]' : '{…}';
  }
  return text.length > SHOWN_CHARS ? `${text.slice(0, SHOWN_CHARS)}…` : text;
}

export function isRecord(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/** A message as protobufjs decodes it: a field is set when it is an own property (the defaults are on the prototype). */
export type Decoded = Readonly<Record<string, unknown>>;

/** Field `name` of a decoded message, undefined when it was not on the wire. */
export function fieldValue(message: Decoded, name: string): unknown {
  return Object.hasOwn(message, name) ? message[name] : undefined;
}

/** The member of `oneof` that is set: protobufjs's virtual oneof property (on the prototype) names it. */
export function oneofChoice(message: Decoded, oneofName: string): string | undefined {
  const chosen = message[oneofName];
  return typeof chosen === 'string' ? chosen : undefined;
}

/** A scalar's default (proto3: zero, false, empty), in the shape protobufjs decodes it. */
export function scalarDefault(scalar: Scalar): unknown {
  if (scalar === 'bool') return false;
  if (scalar === 'string') return '';
  return scalar === 'bytes' ? new Uint8Array(0) : 0;
}

/** Sets a key that comes from data (a map key, a Struct key) as an own property, `__proto__` included. */
export function setKey(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** A value checked against its field's type, ready to be written; `isDefault` for proto3's implicit presence. */
export interface ParsedScalar {
  readonly isDefault: boolean;
  write(writer: Writer): void;
}

export function parseScalar(scalar: Scalar, json: unknown, path: string, options: JsonOptions): ParsedScalar {
  switch (scalar) {
    case 'int32': case 'sint32': case 'sfixed32': {
      const n = parseInt32(json, path, INT32_MIN, INT32_MAX, scalar);
      return { isDefault: n === 0, write: (w) => (scalar === 'int32' ? w.int32(n) : scalar === 'sint32' ? w.sint32(n) : w.sfixed32(n)) };
    }
    case 'uint32': case 'fixed32': {
      const n = parseInt32(json, path, 0, UINT32_MAX, scalar);
      return { isDefault: n === 0, write: (w) => (scalar === 'uint32' ? w.uint32(n) : w.fixed32(n)) };
    }
    case 'int64': case 'sint64': case 'sfixed64': case 'uint64': case 'fixed64': {
      const unsigned = scalar === 'uint64' || scalar === 'fixed64';
      const v = parseInt64(json, path, unsigned, options.int64 === 'hexstring', scalar);
      const long = { low: Number(BigInt.asIntN(32, v)), high: Number(BigInt.asIntN(32, v >> 32n)), unsigned };
      return { isDefault: v === 0n, write: (w) => w[scalar](long) };
    }
    case 'float': case 'double': {
      const n = parseFloating(json, path, scalar);
      return { isDefault: Object.is(n, 0), write: (w) => (scalar === 'float' ? w.float(n) : w.double(n)) };
    }
    case 'bool': {
      if (typeof json !== 'boolean') throw mappingError(path, `expected true or false, got ${show(json)}`);
      return { isDefault: !json, write: (w) => w.bool(json) };
    }
    case 'string': {
      if (typeof json !== 'string') throw mappingError(path, `expected a string, got ${show(json)}`);
      return { isDefault: json === '', write: (w) => w.string(json) };
    }
    case 'bytes': {
      const bytes = parseBase64(json, path);
      return { isDefault: bytes.length === 0, write: (w) => w.bytes(bytes) };
    }
  }
}

/** A map key (always a JSON string) as its key type: `"true"`/`"false"` for bool, decimal for integers. */
export function parseMapKey(keyType: string, key: string, path: string, options: JsonOptions): ParsedScalar {
  if (keyType === 'bool') {
    if (key !== 'true' && key !== 'false') throw mappingError(path, `expected a map key "true" or "false", got ${show(key)}`);
    return parseScalar('bool', key === 'true', path, options);
  }
  if (!isScalar(keyType)) throw mappingError(path, `a map key cannot be a ${keyType}`);
  return parseScalar(keyType, key, path, options);
}

/** An enum by value name or by number (proto3 enums are open: an unnamed number is kept). NullValue takes null. */
export function parseEnum(type: Enum, json: unknown, path: string): number {
  if (json === null && type.fullName === '.google.protobuf.NullValue') return 0;
  if (typeof json === 'string') {
    const value = Object.hasOwn(type.values, json) ? type.values[json] : undefined;
    if (value === undefined) throw mappingError(path, `${show(json)} is not a value of enum ${type.fullName.slice(1)}`);
    return value;
  }
  if (typeof json === 'number') return parseInt32(json, path, INT32_MIN, INT32_MAX, 'enum');
  throw mappingError(path, `expected an enum name or number, got ${show(json)}`);
}

function parseInt32(json: unknown, path: string, min: number, max: number, typeName: string): number {
  const n = typeof json === 'string' && DECIMAL.test(json) ? Number(json) : json;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw mappingError(path, `expected an integer, got ${show(json)}`);
  if (n < min || n > max) throw mappingError(path, `${show(json)} is out of range for ${typeName}`);
  return n;
}

/** A 64-bit integer from a JSON number or a decimal string (hex too under int64_as_hexstring), range checked. */
function parseInt64(json: unknown, path: string, unsigned: boolean, hex: boolean, typeName: string): bigint {
  let v: bigint | undefined;
  if (typeof json === 'number' && Number.isInteger(json)) v = BigInt(json);
  else if (typeof json === 'string' && DECIMAL.test(json)) v = BigInt(json);
  else if (typeof json === 'string' && hex) {
    const match = HEX.exec(json);
    if (match !== null) v = (match[1] === '-' ? -1n : 1n) * BigInt(`0x${match[2] ?? ''}`);
  }
  if (v === undefined) throw mappingError(path, `expected an integer, got ${show(json)}`);
  if (unsigned ? v < 0n || v > UINT64_MAX : v < INT64_MIN || v > INT64_MAX) throw mappingError(path, `${show(json)} is out of range for ${typeName}`);
  return v;
}

function parseFloating(json: unknown, path: string, typeName: 'float' | 'double'): number {
  let n: number | undefined;
  if (typeof json === 'number') n = json;
  else if (typeof json === 'string') n = Object.hasOwn(NON_FINITE, json) ? NON_FINITE[json] : NUMBER_TEXT.test(json) ? Number(json) : undefined;
  if (n === undefined) throw mappingError(path, `expected a number, got ${show(json)}`);
  if (typeof json === 'string' && Object.hasOwn(NON_FINITE, json)) return n;
  // A finite number past the type's range (JSON.parse reads 1e400 as Infinity): refused, not stored as infinity.
  if (!Number.isFinite(n) || (typeName === 'float' && Math.abs(n) > FLOAT_MAX)) throw mappingError(path, `${show(json)} is out of range for ${typeName}`);
  return n;
}

function parseBase64(json: unknown, path: string): Uint8Array {
  if (typeof json !== 'string') throw mappingError(path, `expected a base64 string, got ${show(json)}`);
  const unpadded = json.replace(/=+$/, '');
  const padded = unpadded.length !== json.length;
  if (!BASE64.test(json) || unpadded.length % 4 === 1 || (padded && json.length % 4 !== 0)) {
    throw mappingError(path, `expected a base64 string, got ${show(json)}`);
  }
  return Buffer.from(unpadded.replaceAll('-', '+').replaceAll('_', '/'), 'base64');
}

// ---- decoded values to JSON -------------------------------------------------------------------------------------

/** A decoded 64-bit value: protobufjs gives a Long (`{low, high, unsigned}`), or a number without long.js. */
export function toBigInt(value: unknown, unsigned: boolean): bigint | undefined {
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (!isRecord(value) || typeof value['low'] !== 'number' || typeof value['high'] !== 'number') return undefined;
  const bits = (BigInt(value['high'] >>> 0) << 32n) | BigInt(value['low'] >>> 0);
  return unsigned ? bits : BigInt.asIntN(64, bits);
}

export function format64(value: bigint, options: JsonOptions): string | number {
  if (options.int64 === 'number') return Number(value);
  if (options.int64 === 'hexstring') return value < 0n ? `-0x${(-value).toString(16)}` : `0x${value.toString(16)}`;
  return value.toString();
}

/** The shortest decimal that reads back as the same float32 (0.1f is 0.1, not 0.10000000149011612). */
function shortestFloat(n: number): number {
  for (let digits = 1; digits <= FLOAT_DIGITS; digits++) {
    const candidate = Number(n.toPrecision(digits));
    if (Math.fround(candidate) === n) return candidate;
  }
  return n;
}

export function formatScalar(scalar: Scalar, value: unknown, path: string, options: JsonOptions): unknown {
  switch (scalar) {
    case 'int32': case 'sint32': case 'sfixed32': case 'uint32': case 'fixed32':
      if (typeof value === 'number') return value;
      break;
    case 'int64': case 'sint64': case 'sfixed64': case 'uint64': case 'fixed64': {
      const v = toBigInt(value, scalar === 'uint64' || scalar === 'fixed64');
      if (v !== undefined) return format64(v, options);
      break;
    }
    case 'float': case 'double':
      if (typeof value !== 'number') break;
      if (!Number.isFinite(value)) return String(value);
      return scalar === 'float' ? shortestFloat(value) : value;
    case 'bool':
      if (typeof value === 'boolean') return value;
      break;
    case 'string':
      if (typeof value === 'string') return value;
      break;
    case 'bytes':
      if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
      break;
  }
  throw mappingError(path, `decoded a ${typeof value} for a ${scalar} field`, 'response');
}

/** An enum number as JSON: its name (unless `enum_as_value`), the number when it has no name; NullValue is null. */
export function formatEnum(type: Enum, value: unknown, path: string, options: JsonOptions): unknown {
  if (type.fullName === '.google.protobuf.NullValue') return null;
  if (typeof value !== 'number') throw mappingError(path, `decoded a ${typeof value} for enum ${type.fullName.slice(1)}`, 'response');
  return options.enums === 'name' ? (type.valuesById[value] ?? value) : value;
}
