/**
 * A JSON value as protobuf bytes (the request side of `grpc-transcode`), checked field by field against the message
 * type, written with protobufjs's Writer. protobufjs's fromObject + encode is not used: it takes any value it can
 * coerce (a string for an int32, 1.5 for an int32, an unknown field ignored), and its encoder writes a bool map key
 * "false" as true (the key is a string, `w.bool("false")`).
 *
 * Each JSON key is the field's proto name or its lowerCamelCase JSON name (the proto3 JSON mapping: parsers accept
 * both); an unknown key, the same field twice, two members of one oneof or a value of the wrong type is a
 * JsonMappingError naming the path. null is the field's default (unset), except for google.protobuf.Value and
 * NullValue where it is the JSON null. Fields are written in field-number order, proto3 scalars without presence only
 * when not their default, repeated scalars packed unless the proto says otherwise (protobuf encoding guide).
 */
import type { Field, MapField, OneOf, Type, Writer } from 'protobufjs';
import { loadProtobuf } from '../../shared/proto-check.ts';
import {
  isRecord, isScalar, mappingError, MAX_NESTING, parseEnum, parseMapKey, parseScalar, SCALAR_WIRE_TYPES, show,
  type JsonOptions, type ParsedScalar,
} from './json-scalars.ts';
import { hasCustomJson, wellKnownFromJson } from './well-known-json.ts';

const WIRE_LEN = 2;
const WIRE_START_GROUP = 3;
const WIRE_END_GROUP = 4;
const WIRE_VARINT = 0;
const MAP_KEY = 1;
const MAP_VALUE = 2;

function tag(fieldNumber: number, wireType: number): number {
  return ((fieldNumber << 3) | wireType) >>> 0;
}

/** lowerCamelCase as protoc derives a field's JSON name (`json_name` when the proto sets one). */
function jsonName(field: Field): string {
  const option: unknown = field.options?.['json_name'];
  if (typeof option === 'string') return option;
  return field.name.replace(/_(.)/g, (_match, next: string) => next.toUpperCase());
}

const fieldsByKey = new WeakMap<Type, ReadonlyMap<string, Field>>();

/** A message's fields by every name JSON may give them; the proto name wins over another field's JSON name. */
export function fieldForKey(type: Type, key: string): Field | undefined {
  let byKey = fieldsByKey.get(type);
  if (byKey === undefined) {
    const map = new Map<string, Field>();
    for (const field of type.fieldsArray) map.set(jsonName(field), field);
    for (const field of type.fieldsArray) map.set(field.name, field);
    fieldsByKey.set(type, map);
    byKey = map;
  }
  return byKey.get(key);
}

/** null stands for a value (not for "unset") in a google.protobuf.Value and a NullValue. */
function nullIsValue(field: Field | MapField): boolean {
  const name = field.resolvedType?.fullName;
  return name === '.google.protobuf.Value' || name === '.google.protobuf.NullValue';
}

export function encodeMessage(type: Type, json: unknown, options: JsonOptions, path: string, depth: number): Uint8Array {
  const writer = loadProtobuf().Writer.create();
  writeMessage(type, json, writer, options, path, depth);
  return writer.finish();
}

function writeMessage(type: Type, json: unknown, writer: Writer, options: JsonOptions, path: string, depth: number): void {
  if (depth > MAX_NESTING) throw mappingError(path, `messages nested deeper than ${String(MAX_NESTING)} levels`);
  const nested = (inner: Type, value: unknown, at: string, level: number): Uint8Array => encodeMessage(inner, value, options, at, level);
  const object = hasCustomJson(type) ? wellKnownFromJson(type, json, path, depth, options, nested) : json;
  if (!isRecord(object)) {
    throw mappingError(path, `expected ${path === '' ? `a JSON object (${type.fullName.slice(1)})` : 'an object'}, got ${show(json)}`);
  }
  const given: { field: Field; value: unknown; path: string }[] = [];
  const keys = new Map<Field, string>();
  const oneofs = new Map<OneOf, string>();
  for (const key of Object.keys(object)) {
    const at = path === '' ? key : `${path}.${key}`;
    const field = fieldForKey(type, key);
    if (field === undefined) throw mappingError(at, `no such field in ${type.fullName.slice(1)}`);
    const earlier = keys.get(field);
    if (earlier !== undefined) throw mappingError(at, `the same field as "${earlier}"`);
    keys.set(field, key);
    const value = object[key];
    if (value === null && !(nullIsValue(field) && !field.repeated && !field.map)) continue;
    if (field.partOf !== null) {
      const other = oneofs.get(field.partOf);
      if (other !== undefined) throw mappingError(at, `oneof "${field.partOf.name}" already has "${other}"`);
      oneofs.set(field.partOf, key);
    }
    given.push({ field, value, path: at });
  }
  given.sort((a, b) => a.field.id - b.field.id);
  for (const { field, value, path: at } of given) writeField(field, value, writer, options, at, depth);
}

function writeField(field: Field, json: unknown, writer: Writer, options: JsonOptions, path: string, depth: number): void {
  const pb = loadProtobuf();
  if (field instanceof pb.MapField) {
    if (!isRecord(json)) throw mappingError(path, `expected an object, got ${show(json)}`);
    for (const key of Object.keys(json)) {
      const at = `${path}[${key}]`;
      const parsedKey = parseMapKey(field.keyType, key, at, options);
      writer.uint32(tag(field.id, WIRE_LEN)).fork();
      writer.uint32(tag(MAP_KEY, wireType(field.keyType)));
      parsedKey.write(writer);
      writeOne(field, MAP_VALUE, json[key], writer, options, at, depth);
      writer.ldelim();
    }
    return;
  }
  if (field.repeated) {
    if (!Array.isArray(json)) throw mappingError(path, `expected an array, got ${show(json)}`);
    const items: readonly unknown[] = json;
    if (field.packed && isScalarOrEnum(field) && field.type !== 'string' && field.type !== 'bytes') {
      if (items.length === 0) return;
      const parsed = items.map((item, i) => parseLeaf(field, item, options, `${path}[${String(i)}]`));
      writer.uint32(tag(field.id, WIRE_LEN)).fork();
      for (const value of parsed) value.write(writer);
      writer.ldelim();
      return;
    }
    items.forEach((item, i) => writeOne(field, field.id, item, writer, options, `${path}[${String(i)}]`, depth));
    return;
  }
  if (field.resolvedType instanceof pb.Type) {
    writeOne(field, field.id, json, writer, options, path, depth);
    return;
  }
  const parsed = parseLeaf(field, json, options, path);
  // proto3 implicit presence: a field at its default is not written (protobuf encoding guide, "Default values").
  if (!field.hasPresence && parsed.isDefault) return;
  writeLeaf(field, field.id, parsed, writer);
}

function isScalarOrEnum(field: Field): boolean {
  return isScalar(field.type) || field.resolvedType instanceof loadProtobuf().Enum;
}

function wireType(type: string): number {
  return isScalar(type) ? SCALAR_WIRE_TYPES[type] : WIRE_VARINT;
}

/** A scalar or enum value checked and ready to write. */
function parseLeaf(field: Field | MapField, json: unknown, options: JsonOptions, path: string): ParsedScalar {
  const type = field.resolvedType;
  if (type instanceof loadProtobuf().Enum) {
    const n = parseEnum(type, json, path);
    return { isDefault: n === 0, write: (w) => w.int32(n) };
  }
  if (!isScalar(field.type)) throw mappingError(path, `unresolved field type ${field.type}`);
  return parseScalar(field.type, json, path, options);
}

function writeLeaf(field: Field | MapField, fieldNumber: number, parsed: ParsedScalar, writer: Writer): void {
  writer.uint32(tag(fieldNumber, wireType(field.resolvedType instanceof loadProtobuf().Enum ? 'int32' : field.type)));
  parsed.write(writer);
}

/** One value with its tag: a singular field, a repeated field's element, or a map entry's value (field 2). */
function writeOne(field: Field | MapField, fieldNumber: number, json: unknown, writer: Writer, options: JsonOptions, path: string, depth: number): void {
  const pb = loadProtobuf();
  if (json === null && !nullIsValue(field)) throw mappingError(path, `expected a value, got null`);
  const type = field.resolvedType;
  if (!(type instanceof pb.Type)) {
    writeLeaf(field, fieldNumber, parseLeaf(field, json, options, path), writer);
  } else if (field instanceof pb.Field && field.delimited) {
    // A proto2 group / editions DELIMITED field: between start and end tags, not length-prefixed.
    writer.uint32(tag(fieldNumber, WIRE_START_GROUP));
    writeMessage(type, json, writer, options, path, depth + 1);
    writer.uint32(tag(fieldNumber, WIRE_END_GROUP));
  } else {
    writer.uint32(tag(fieldNumber, WIRE_LEN)).fork();
    writeMessage(type, json, writer, options, path, depth + 1);
    writer.ldelim();
  }
}
