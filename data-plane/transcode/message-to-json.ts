/**
 * A decoded protobuf message as JSON (the response side of `grpc-transcode`). protobufjs decodes the bytes; this walks
 * the result by the message's fields, because protobufjs 7.6's toObject does not follow the proto3 JSON mapping:
 * Timestamp, wrappers and the other well-known types come out as their fields, and an int64 map key as the 8-byte
 * hash protobufjs keys such maps by.
 *
 * Field names are the proto's own (`keepCase`), as APISIX's lua-protobuf writes them. Which unset fields appear is
 * `pb_option`'s choice (JsonOptions.defaults): `auto` writes proto3's implicit-presence fields with their default
 * (0, "", false, [], {}, the enum's zero name) and leaves out an unset message, oneof member or `optional` field;
 * `none` writes only what was on the wire; `all` writes every field, an unset one that has presence as null.
 */
import type { Field, MapField, Type } from 'protobufjs';
import { loadProtobuf } from '../../shared/proto-check.ts';
import {
  fieldValue, formatEnum, formatScalar, isRecord, isScalar, mappingError, MAX_NESTING, oneofChoice, scalarDefault, setKey,
  type Decoded, type JsonOptions,
} from './json-scalars.ts';
import { hasCustomJson, wellKnownToJson } from './well-known-json.ts';

const HASH_BYTES = 8;
const BITS_PER_BYTE = 8n;

export function renderMessage(type: Type, message: Decoded, options: JsonOptions, path: string, depth: number): unknown {
  if (depth > MAX_NESTING) throw mappingError(path, `messages nested deeper than ${String(MAX_NESTING)} levels`, 'response');
  const nested = (inner: Type, value: Decoded, at: string, level: number): unknown => renderMessage(inner, value, options, at, level);
  if (hasCustomJson(type)) return wellKnownToJson(type, message, path, depth, options, nested);
  const pb = loadProtobuf();
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    const at = path === '' ? field.name : `${path}.${field.name}`;
    let value = fieldValue(message, field.name);
    // A oneof member protobufjs decoded but that is not the oneof's choice (two members on the wire) is unset.
    if (field.partOf !== null && oneofChoice(message, field.partOf.name) !== field.name) value = undefined;
    if (field instanceof pb.MapField) {
      const entries = isRecord(value) ? Object.keys(value) : [];
      if (entries.length > 0 || options.defaults !== 'none') out[field.name] = renderMap(field, isRecord(value) ? value : {}, options, at, depth);
    } else if (field.repeated) {
      const items: unknown[] = Array.isArray(value) ? value : [];
      if (items.length > 0 || options.defaults !== 'none') {
        out[field.name] = items.map((item, i) => renderValue(field, item, options, `${at}[${String(i)}]`, depth));
      }
    } else if (value !== undefined && value !== null) {
      out[field.name] = renderValue(field, value, options, at, depth);
    } else if (hasPresence(field)) {
      if (options.defaults === 'all') out[field.name] = null;
    } else if (options.defaults !== 'none') {
      out[field.name] = renderValue(field, isScalar(field.type) ? scalarDefault(field.type) : 0, options, at, depth);
    }
  }
  return out;
}

/**
 * Whether an unset field is absent rather than its default. protobufjs's Field#hasPresence says no for a proto3
 * message field, which has presence in every syntax (protobuf's field presence guide).
 */
function hasPresence(field: Field): boolean {
  return field.resolvedType instanceof loadProtobuf().Type || field.hasPresence;
}

/** One value of a field (a repeated field's element, a map's value) as JSON. */
function renderValue(field: Field | MapField, value: unknown, options: JsonOptions, path: string, depth: number): unknown {
  const pb = loadProtobuf();
  const type = field.resolvedType;
  // A map entry without its value decodes as null: the value's default, an empty message.
  if (type instanceof pb.Type) return renderMessage(type, isRecord(value) ? value : {}, options, path, depth + 1);
  if (type instanceof pb.Enum) return formatEnum(type, value, path, options);
  if (!isScalar(field.type)) throw mappingError(path, `unresolved field type ${field.type}`, 'response');
  return formatScalar(field.type, value, path, options);
}

function renderMap(field: MapField, entries: Decoded, options: JsonOptions, path: string, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const unsigned = field.keyType === 'uint64' || field.keyType === 'fixed64';
  const long = unsigned || field.keyType === 'int64' || field.keyType === 'sint64' || field.keyType === 'sfixed64';
  for (const key of Object.keys(entries)) {
    // protobufjs keys a 64-bit map by the value's 8 bytes as a string (util.longToHash), or "0" for an absent key.
    const name = long && key.length === HASH_BYTES ? fromHash(key, unsigned).toString() : key;
    setKey(out, name, renderValue(field, entries[key], options, `${path}[${name}]`, depth));
  }
  return out;
}

function fromHash(hash: string, unsigned: boolean): bigint {
  let bits = 0n;
  for (let i = HASH_BYTES - 1; i >= 0; i--) bits = (bits << BITS_PER_BYTE) | BigInt(hash.charCodeAt(i));
  return unsigned ? bits : BigInt.asIntN(64, bits);
}
