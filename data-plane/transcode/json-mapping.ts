/**
 * The conversion between protobuf messages and JSON that `grpc-transcode` (APISIX's HTTP/JSON → gRPC plugin) uses:
 * an HTTP request's JSON body or query string into the method's input message, the upstream's output message back
 * into JSON. It follows the proto3 JSON mapping (https://protobuf.dev/programming-guides/json/) except where APISIX
 * (lua-protobuf) differs on purpose: output field names are the proto's own, not lowerCamelCase (input takes both),
 * and `pb_option` picks how enums, 64-bit integers and unset fields are written (parsePbOptions).
 *
 * Pure and synchronous; the work is in message-to-json.ts, json-to-message.ts, json-scalars.ts and the well-known
 * types' files. Every failure is a JsonMappingError: INVALID_ARGUMENT (400) for a request that does not fit, naming
 * the field path; INTERNAL (502) for a response that cannot be written as JSON.
 */
import { describe, InvalidConfiguration, JsonMappingError } from '../../shared/errors.ts';
import { loadProtobuf, type Protobuf } from '../../shared/proto-check.ts';
import { encodeMessage, fieldForKey } from './json-to-message.ts';
import { DEFAULT_JSON_OPTIONS, isScalar, setKey, type Decoded, type JsonOptions } from './json-scalars.ts';
import { renderMessage } from './message-to-json.ts';
import { scalarJsonType } from './well-known-json.ts';

export { DEFAULT_JSON_OPTIONS, MAX_NESTING, type JsonOptions } from './json-scalars.ts';

/** A message type of a compiled proto (data-plane/transcode/proto-registry.ts). */
export type MessageType = InstanceType<Protobuf['Type']>;

/**
 * What each `pb_option` value sets (APISIX's grpc-transcode schema lists these; a later one overrides an earlier one,
 * as lua-protobuf's pb.option() calls do). `use_default_metatable` puts lua-protobuf's defaults in a metatable, which
 * APISIX's JSON encoder does not walk: its JSON has only the fields set. The hooks switch lua-protobuf's decode
 * callbacks, of which this gateway has none.
 */
const PB_OPTIONS: Readonly<Record<string, Partial<JsonOptions>>> = {
  enum_as_name: { enums: 'name' },
  enum_as_value: { enums: 'value' },
  int64_as_string: { int64: 'string' },
  int64_as_number: { int64: 'number' },
  int64_as_hexstring: { int64: 'hexstring' },
  auto_default_values: { defaults: 'auto' },
  no_default_values: { defaults: 'none' },
  use_default_values: { defaults: 'all' },
  use_default_metatable: { defaults: 'none' },
  enable_hooks: {},
  disable_hooks: {},
};

/** A route's `pb_option` list as JsonOptions, each choice not in the list at its proto3 default. */
export function parsePbOptions(list: readonly string[]): JsonOptions {
  let options = DEFAULT_JSON_OPTIONS;
  for (const name of list) {
    const change = Object.hasOwn(PB_OPTIONS, name) ? PB_OPTIONS[name] : undefined;
    if (change === undefined) {
      throw new InvalidConfiguration(`pb_option: unknown option ${JSON.stringify(name)} (one of ${Object.keys(PB_OPTIONS).join(', ')})`);
    }
    options = { ...options, ...change };
  }
  return Object.freeze(options);
}

/** Protobuf bytes of `type` as JSON. Bytes that do not decode, or nest past MAX_NESTING: a JsonMappingError (502). */
export function messageToJson(type: MessageType, bytes: Uint8Array, options: JsonOptions = DEFAULT_JSON_OPTIONS): unknown {
  let message: Decoded;
  try {
    message = type.decode(bytes) as unknown as Decoded;
  } catch (err) {
    throw new JsonMappingError(`the response does not decode as ${type.fullName.slice(1)}: ${describe(err)}`, 'response');
  }
  return renderMessage(type, message, options, '', 0);
}

/**
 * A JSON value as protobuf bytes of `type`. Strict: `field "user.age": expected an integer, got "x"`. `options`
 * matters only for int64_as_hexstring, under which "0x…" strings are read too (what that option writes).
 */
export function jsonToMessage(type: MessageType, json: unknown, options: JsonOptions = DEFAULT_JSON_OPTIONS): Uint8Array {
  return encodeMessage(type, json, options, '', 0);
}

const DECIMAL = /^-?\d+$/;
const NUMBER_TEXT = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * HTTP query parameters as a JSON object for jsonToMessage: `a=1`, `user.name=x` for a nested message's field,
 * `ids=1&ids=2` for a repeated field. Each value is made the JSON its field's type takes where the text allows it
 * (numbers, true/false, an enum number); text that does not fit is passed on as a string, for jsonToMessage to refuse
 * with the field's path. A parameter that names no field, a map, or a message as a whole (save the well-known types
 * written as one string: Timestamp, Duration, FieldMask, the wrappers) is a JsonMappingError.
 */
export function queryToJson(type: MessageType, params: Iterable<[string, string]>, source = 'query parameter'): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  const objects = new Map<string, Record<string, unknown>>([['', root]]);
  for (const [key, raw] of params) setParameter(type, objects, key, raw, source);
  return root;
}

function setParameter(root: MessageType, objects: Map<string, Record<string, unknown>>, key: string, raw: string, source: string): void {
  const queryError = (name: string, problem: string): JsonMappingError => new JsonMappingError(`${source} ${JSON.stringify(name)}: ${problem}`);
  const pb = loadProtobuf();
  const names = key.split('.');
  let type = root;
  let path = '';
  for (const [i, name] of names.entries()) {
    const parent = objects.get(path);
    const field = fieldForKey(type, name);
    if (parent === undefined || field === undefined) throw queryError(key, `no field ${JSON.stringify(name)} in ${type.fullName.slice(1)}`);
    path = path === '' ? field.name : `${path}.${field.name}`;
    const inner = field.resolvedType;
    const known = Object.hasOwn(parent, field.name) ? parent[field.name] : undefined;
    if (i < names.length - 1) {
      if (!(inner instanceof pb.Type) || field.repeated || field.map || scalarJsonType(inner) !== undefined) {
        throw queryError(key, `"${path}" is not a message whose fields can be named`);
      }
      if (known === undefined) {
        const created: Record<string, unknown> = {};
        setKey(parent, field.name, created);
        objects.set(path, created);
      } else if (!objects.has(path)) throw queryError(key, `"${path}" is already given a value`);
      type = inner;
      continue;
    }
    const scalar = inner instanceof pb.Type ? scalarJsonType(inner) : inner instanceof pb.Enum ? 'enum' : field.type;
    if (field.map || scalar === undefined) throw queryError(key, `"${path}" is a ${field.map ? 'map' : 'message'}: name its fields ("${path}.<field>")`);
    const value = coerce(scalar, raw);
    if (field.repeated && Array.isArray(known)) known.push(value);
    else if (field.repeated) setKey(parent, field.name, [value]);
    else if (known !== undefined) throw queryError(key, `"${path}" is given more than once`);
    else setKey(parent, field.name, value);
  }
}

/** Query text as the JSON its type takes, when it can be: numbers, booleans, enum numbers; else the text itself. */
function coerce(scalar: string, raw: string): unknown {
  if (scalar === 'enum') return DECIMAL.test(raw) ? Number(raw) : raw;
  if (scalar === 'bool') return raw === 'true' ? true : raw === 'false' ? false : raw;
  if (scalar === 'float' || scalar === 'double') return NUMBER_TEXT.test(raw) ? Number(raw) : raw;
  // 64-bit integers stay text: JSON numbers lose precision past 2^53, and jsonToMessage reads decimal strings.
  if (isScalar(scalar) && ['int32', 'sint32', 'sfixed32', 'uint32', 'fixed32'].includes(scalar)) return DECIMAL.test(raw) ? Number(raw) : raw;
  return raw;
}
