/**
 * The well-known types whose JSON is not the JSON of their fields (the proto3 JSON mapping's table of well-known
 * types): the wrappers as their bare value, Struct / Value / ListValue as any JSON, FieldMask as one string of
 * lowerCamelCase paths, Any as its message's JSON plus "@type" (or with the JSON in "value" when that message is one
 * of these types itself), Timestamp and Duration (well-known-time.ts). Empty needs nothing: {} is its fields' JSON.
 *
 * protobufjs bundles these types with camelCase field names (`nullValue`, not `null_value`), so their fields are found
 * here by number, never by name. Nested messages go back to the caller (`render`, `encode`), one level deeper.
 */
import type { Field, Type } from 'protobufjs';
import { describe } from '../../shared/errors.ts';
import { loadProtobuf } from '../../shared/proto-check.ts';
import {
  fieldValue, formatScalar, isRecord, isScalar, mappingError, oneofChoice, parseScalar, scalarDefault, setKey, show, toBigInt,
  type Decoded, type Direction, type JsonOptions,
} from './json-scalars.ts';
import { formatDuration, formatTimestamp, parseDuration, parseTimestamp, type SecondsAndNanos } from './well-known-time.ts';

const PACKAGE = '.google.protobuf.';
const ANY = `${PACKAGE}Any`;
const TIMESTAMP = `${PACKAGE}Timestamp`;
const DURATION = `${PACKAGE}Duration`;
const FIELD_MASK = `${PACKAGE}FieldMask`;
const STRUCT = `${PACKAGE}Struct`;
const VALUE = `${PACKAGE}Value`;
const LIST_VALUE = `${PACKAGE}ListValue`;
const WRAPPERS = ['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map((name) => `${PACKAGE}${name}Value`);
const CUSTOM_JSON = new Set([ANY, TIMESTAMP, DURATION, FIELD_MASK, STRUCT, VALUE, LIST_VALUE, ...WRAPPERS]);

/** google.protobuf.Value's fields by number (struct.proto), one per JSON type. */
const VALUE_FIELD = { null: 1, number: 2, string: 3, bool: 4, struct: 5, list: 6 } as const;
/** The part of a type URL after its last "/" is the type's full name (any.proto). */
const TYPE_NAME = /^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$/;
const CAMEL_PATH = /^[A-Za-z]\w*(?:\.[A-Za-z]\w*)*$/;

export type RenderNested = (type: Type, message: Decoded, path: string, depth: number) => unknown;
export type EncodeNested = (type: Type, json: unknown, path: string, depth: number) => Uint8Array;

export function hasCustomJson(type: Type): boolean {
  return CUSTOM_JSON.has(type.fullName);
}

/**
 * The scalar type whose JSON a well-known type takes, when that JSON is one scalar: a wrapper's value type, "string"
 * for Timestamp, Duration, FieldMask (and Value, read from text); undefined for the others. For query parameters.
 */
export function scalarJsonType(type: Type): string | undefined {
  if (WRAPPERS.includes(type.fullName)) return fieldAt(type, 1).type;
  return [TIMESTAMP, DURATION, FIELD_MASK, VALUE].includes(type.fullName) ? 'string' : undefined;
}

function fieldAt(type: Type, id: number): Field {
  const field = type.fieldsById[id];
  if (field === undefined) throw new Error(`${type.fullName} has no field ${String(id)}: not the well-known type protobufjs bundles`);
  return field;
}

function nestedType(field: Field): Type {
  const type = field.resolvedType;
  if (!(type instanceof loadProtobuf().Type)) throw new Error(`${field.fullName} is not a message field`);
  return type;
}

/** The message an Any's type URL names, looked up in the Root the Any belongs to. */
function resolveAny(any: Type, typeUrl: unknown, path: string, direction: Direction): Type {
  const url = typeof typeUrl === 'string' ? typeUrl : '';
  const name = url.slice(url.lastIndexOf('/') + 1);
  if (!url.includes('/') || !TYPE_NAME.test(name)) {
    throw mappingError(path, `"@type" must be a type URL such as "type.googleapis.com/pkg.Message", got ${show(typeUrl)}`, direction);
  }
  const found = any.root.lookup(`.${name}`);
  if (!(found instanceof loadProtobuf().Type)) throw mappingError(path, `"@type" ${show(url)} names no message type of this proto`, direction);
  return found;
}

// ---- protobuf to JSON -------------------------------------------------------------------------------------------

export function wellKnownToJson(type: Type, message: Decoded, path: string, depth: number, options: JsonOptions, render: RenderNested): unknown {
  const first = fieldAt(type, 1);
  const value = fieldValue(message, first.name);
  switch (type.fullName) {
    case TIMESTAMP:
      return formatTimestamp(secondsAndNanos(type, message), path);
    case DURATION:
      return formatDuration(secondsAndNanos(type, message), path);
    case FIELD_MASK:
      return (Array.isArray(value) ? value : []).map((p) => camelPath(p, path)).join(',');
    case STRUCT: {
      const out: Record<string, unknown> = {};
      const entries = isRecord(value) ? value : {};
      for (const key of Object.keys(entries)) {
        const entry = entries[key];
        setKey(out, key, render(nestedType(first), isRecord(entry) ? entry : {}, `${path}.${key}`, depth + 1));
      }
      return out;
    }
    case LIST_VALUE:
      return (Array.isArray(value) ? value : []).map((entry: unknown, i) =>
        render(nestedType(first), isRecord(entry) ? entry : {}, `${path}[${String(i)}]`, depth + 1));
    case VALUE:
      return valueToJson(type, message, path, depth, render);
    case ANY:
      return anyToJson(type, message, path, depth, render);
  }
  if (!isScalar(first.type)) throw new Error(`${type.fullName} is not a wrapper type`);
  return formatScalar(first.type, value ?? scalarDefault(first.type), path, options);
}

function secondsAndNanos(type: Type, message: Decoded): SecondsAndNanos {
  const seconds = toBigInt(fieldValue(message, fieldAt(type, 1).name) ?? 0, false) ?? 0n;
  const nanos = fieldValue(message, fieldAt(type, 2).name);
  return { seconds, nanos: typeof nanos === 'number' ? nanos : 0 };
}

/** A FieldMask path (`user.display_name`) in lowerCamelCase (`user.displayName`): only if it reads back the same. */
function camelPath(snake: unknown, path: string): string {
  const text = typeof snake === 'string' ? snake : '';
  const camel = text.replace(/_([a-z])/g, (_match, letter: string) => letter.toUpperCase());
  if (!CAMEL_PATH.test(camel) || camel.includes('_') || snakePath(camel) !== text) {
    throw mappingError(path, `FieldMask path ${show(snake)} has no lowerCamelCase form`, 'response');
  }
  return camel;
}

function snakePath(camel: string): string {
  return camel.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

function valueToJson(type: Type, message: Decoded, path: string, depth: number, render: RenderNested): unknown {
  const oneof = type.oneofsArray[0];
  const chosen = oneof === undefined ? undefined : oneofChoice(message, oneof.name);
  const field = chosen === undefined ? undefined : type.fields[chosen];
  if (field === undefined) return null;
  const value = fieldValue(message, field.name);
  switch (field.id) {
    case VALUE_FIELD.number:
      // JSON has no NaN or Infinity: the spec makes serializing them an error.
      if (typeof value === 'number' && !Number.isFinite(value)) throw mappingError(path, `a Value cannot hold ${String(value)} in JSON`, 'response');
      return value;
    case VALUE_FIELD.string: case VALUE_FIELD.bool:
      return value;
    case VALUE_FIELD.struct: case VALUE_FIELD.list:
      return render(nestedType(field), isRecord(value) ? value : {}, path, depth + 1);
  }
  return null;
}

function anyToJson(type: Type, message: Decoded, path: string, depth: number, render: RenderNested): unknown {
  const typeUrl = fieldValue(message, fieldAt(type, 1).name);
  const bytes = fieldValue(message, fieldAt(type, 2).name);
  const value = bytes instanceof Uint8Array ? bytes : new Uint8Array(0);
  if ((typeUrl === undefined || typeUrl === '') && value.length === 0) return {};
  const inner = resolveAny(type, typeUrl, path, 'response');
  let decoded: Decoded;
  try {
    decoded = inner.decode(value) as unknown as Decoded;
  } catch (err) {
    throw mappingError(path, `the Any's value does not decode as ${inner.fullName.slice(1)}: ${describe(err)}`, 'response');
  }
  const json = render(inner, decoded, path, depth + 1);
  if (hasCustomJson(inner) || !isRecord(json)) return { '@type': typeUrl, value: json };
  return { '@type': typeUrl, ...json };
}

// ---- JSON to protobuf -------------------------------------------------------------------------------------------

/** The fields (by name, as json-to-message.ts writes them) that stand for `json` of a well-known type. */
export function wellKnownFromJson(type: Type, json: unknown, path: string, depth: number, options: JsonOptions, encode: EncodeNested): Record<string, unknown> {
  const first = fieldAt(type, 1);
  switch (type.fullName) {
    case TIMESTAMP: case DURATION: {
      const { seconds, nanos } = type.fullName === TIMESTAMP ? parseTimestamp(json, path) : parseDuration(json, path);
      return { [first.name]: seconds.toString(), [fieldAt(type, 2).name]: nanos };
    }
    case FIELD_MASK:
      if (typeof json !== 'string') throw mappingError(path, `expected a string of comma-separated field paths, got ${show(json)}`);
      return { [first.name]: json === '' ? [] : json.split(',').map((p) => snakeFromCamel(p, path)) };
    case STRUCT:
      if (!isRecord(json)) throw mappingError(path, `expected an object, got ${show(json)}`);
      return { [first.name]: json };
    case LIST_VALUE:
      if (!Array.isArray(json)) throw mappingError(path, `expected an array, got ${show(json)}`);
      return { [first.name]: json };
    case VALUE:
      return { [fieldAt(type, valueFieldFor(json, path)).name]: json };
    case ANY:
      return anyFromJson(type, json, path, depth, encode);
  }
  if (!isScalar(first.type)) throw new Error(`${type.fullName} is not a wrapper type`);
  parseScalar(first.type, json, path, options);
  return { [first.name]: json };
}

function snakeFromCamel(camel: string, path: string): string {
  if (!CAMEL_PATH.test(camel) || camel.includes('_')) throw mappingError(path, `FieldMask path ${show(camel)} is not lowerCamelCase field names joined by "."`);
  return snakePath(camel);
}

function valueFieldFor(json: unknown, path: string): number {
  if (json === null) return VALUE_FIELD.null;
  if (Array.isArray(json)) return VALUE_FIELD.list;
  switch (typeof json) {
    case 'number': return VALUE_FIELD.number;
    case 'string': return VALUE_FIELD.string;
    case 'boolean': return VALUE_FIELD.bool;
    case 'object': return VALUE_FIELD.struct;
  }
  throw mappingError(path, `expected a JSON value, got ${show(json)}`);
}

function anyFromJson(type: Type, json: unknown, path: string, depth: number, encode: EncodeNested): Record<string, unknown> {
  if (!isRecord(json)) throw mappingError(path, `expected an object with "@type", got ${show(json)}`);
  const keys = Object.keys(json);
  if (keys.length === 0) return {};
  if (!Object.hasOwn(json, '@type')) throw mappingError(path, 'an Any needs "@type"');
  const typeUrl = json['@type'];
  const inner = resolveAny(type, typeUrl, path, 'request');
  let bytes: Uint8Array;
  if (hasCustomJson(inner)) {
    const extra = keys.find((key) => key !== '@type' && key !== 'value');
    if (extra !== undefined) throw mappingError(`${path}.${extra}`, `no such field in an Any of ${inner.fullName.slice(1)} (its JSON goes in "value")`);
    if (!Object.hasOwn(json, 'value')) throw mappingError(path, `an Any of ${inner.fullName.slice(1)} needs "value"`);
    bytes = encode(inner, json['value'], `${path}.value`, depth + 1);
  } else {
    const fields: Record<string, unknown> = {};
    for (const key of keys) if (key !== '@type') setKey(fields, key, json[key]);
    bytes = encode(inner, fields, path, depth + 1);
  }
  return { [fieldAt(type, 1).name]: typeUrl, [fieldAt(type, 2).name]: Buffer.from(bytes).toString('base64') };
}
