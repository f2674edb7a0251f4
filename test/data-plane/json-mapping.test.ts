/**
 * Issue #17's JSON mapping for `grpc-transcode`: protobuf messages to JSON and back as the proto3 JSON mapping has
 * it (https://protobuf.dev/programming-guides/json/), with APISIX's `pb_option` choices. A proto with every scalar
 * type, nested, repeated and map fields, a oneof, a proto3 `optional` and every well-known type protobufjs bundles is
 * compiled by the proto registry; each test checks the JSON text, the bytes as protobufjs decodes them, or the error.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ConfigItem } from '../../data-plane/config/config-state.ts';
import { jsonToMessage, messageToJson, parsePbOptions, queryToJson, MAX_NESTING, type JsonOptions, type MessageType } from '../../data-plane/transcode/json-mapping.ts';
import { ProtoRegistry } from '../../data-plane/transcode/proto-registry.ts';
import { InvalidConfiguration, JsonMappingError } from '../../shared/errors.ts';
import { GrpcStatus } from '../../shared/grpc-status.ts';
import { loadProtobuf } from '../../shared/proto-check.ts';
import type { ProtoConf } from '../../shared/schema/proto.ts';

const WELL_KNOWN = ['timestamp', 'duration', 'wrappers', 'struct', 'field_mask', 'empty', 'any'];
const PROTO = `syntax = "proto3";
package shop;
${WELL_KNOWN.map((name) => `import "google/protobuf/${name}.proto";`).join('\n')}
enum Color { COLOR_UNSPECIFIED = 0; RED = 1; GREEN = 2; }
message User { string name = 1; int32 age = 2; User friend = 3; }
message Scalars {
  double d = 1; float f = 2; int32 i32 = 3; int64 i64 = 4; uint32 u32 = 5; uint64 u64 = 6; sint32 s32 = 7; sint64 s64 = 8;
  fixed32 fx32 = 9; fixed64 fx64 = 10; sfixed32 sfx32 = 11; sfixed64 sfx64 = 12; bool b = 13; string s = 14; bytes by = 15;
  Color color = 16;
}
message Order {
  Scalars scalars = 1;
  User user = 2;
  repeated int64 ids = 3;
  repeated User users = 4;
  map<string, int32> counts = 5;
  map<bool, string> flags = 6;
  map<int64, User> by_id = 7;
  map<uint32, Color> colors = 8;
  oneof choice { string text = 9; int64 number = 10; User who = 11; }
  optional int32 maybe = 12;
  string display_name = 13;
  repeated Color palette = 14;
}
message Known {
  google.protobuf.Timestamp at = 1; google.protobuf.Duration took = 2;
  google.protobuf.Int32Value i32 = 3; google.protobuf.Int64Value i64 = 4; google.protobuf.UInt32Value u32 = 5;
  google.protobuf.UInt64Value u64 = 6; google.protobuf.FloatValue f = 7; google.protobuf.DoubleValue d = 8;
  google.protobuf.BoolValue b = 9; google.protobuf.StringValue s = 10; google.protobuf.BytesValue by = 11;
  google.protobuf.Struct meta = 12; google.protobuf.Value value = 13; google.protobuf.ListValue list = 14;
  google.protobuf.NullValue nothing = 15; google.protobuf.FieldMask mask = 16; google.protobuf.Empty empty = 17;
  google.protobuf.Any detail = 18; repeated google.protobuf.Timestamp times = 19;
}
`;

function compile(): { order: MessageType; scalars: MessageType; known: MessageType; user: MessageType } {
  const item: ConfigItem<ProtoConf> = Object.freeze({ id: 'shop', value: { id: 'shop', content: PROTO }, modRevision: '1' });
  const registry = new ProtoRegistry(new Map([['shop', item]]));
  const root = registry.get('shop')?.root;
  assert.ok(root !== undefined, registry.error('shop'));
  return { order: root.lookupType('shop.Order'), scalars: root.lookupType('shop.Scalars'), known: root.lookupType('shop.Known'), user: root.lookupType('shop.User') };
}

const { order: Order, scalars: Scalars, known: Known, user: User } = compile();
const AUTO = parsePbOptions([]);

/** JSON → bytes → JSON, as JSON text. */
function roundTrip(type: MessageType, json: unknown, options: JsonOptions = AUTO): string {
  return JSON.stringify(messageToJson(type, jsonToMessage(type, json, options), options));
}

/** The bytes as protobufjs reads them: 64-bit integers as decimal strings, bytes as base64, enums by name. */
function decoded(type: MessageType, bytes: Uint8Array): unknown {
  return type.toObject(type.decode(bytes), { longs: String, bytes: String, enums: String });
}

function mappingError(text: string | RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof JsonMappingError, `not a JsonMappingError: ${String(err)}`);
    if (typeof text === 'string') assert.equal(err.message, text);
    else assert.match(err.message, text);
    return true;
  };
}

describe('pb_option', () => {
  test('the proto3 mapping is the default, and each option sets its choice', () => {
    assert.deepEqual(parsePbOptions([]), { enums: 'name', int64: 'string', defaults: 'auto' });
    assert.deepEqual(parsePbOptions(['enum_as_value', 'int64_as_number', 'no_default_values']), { enums: 'value', int64: 'number', defaults: 'none' });
    assert.deepEqual(parsePbOptions(['int64_as_hexstring', 'use_default_values', 'disable_hooks']), { enums: 'name', int64: 'hexstring', defaults: 'all' });
  });

  test('a later option overrides an earlier one, and use_default_metatable writes only the fields set', () => {
    assert.equal(parsePbOptions(['enum_as_value', 'enum_as_name']).enums, 'name');
    assert.equal(parsePbOptions(['use_default_values', 'use_default_metatable']).defaults, 'none');
  });

  test('an unknown option is a configuration error', () => {
    assert.throws(() => parsePbOptions(['enum_as_nam']), (err) => err instanceof InvalidConfiguration && /unknown option "enum_as_nam"/.test(err.message));
  });
});

describe('scalars', () => {
  const full = {
    d: 1.5, f: 0.1, i32: -2147483648, i64: '9223372036854775807', u32: 4294967295, u64: '18446744073709551615', s32: -7,
    s64: '-9223372036854775808', fx32: 7, fx64: '18446744073709551615', sfx32: -8, sfx64: '-9223372036854775808', b: true,
    s: 'héllo', by: 'AQID/w==', color: 'GREEN',
  };

  test('every scalar type round-trips, 64-bit integers as decimal strings and floats at float precision', () => {
    assert.equal(roundTrip(Scalars, full), JSON.stringify(full));
  });

  test('the bytes written are the values protobufjs reads back', () => {
    assert.deepEqual(decoded(Scalars, jsonToMessage(Scalars, full)), { ...full, f: Math.fround(0.1) });
  });

  test('int64_as_number writes numbers and int64_as_hexstring hex strings, which it also reads', () => {
    const json = { i64: '-9223372036854775808', u64: '18446744073709551615', s64: '-31' };
    assert.equal(JSON.stringify(messageToJson(Scalars, jsonToMessage(Scalars, json), parsePbOptions(['int64_as_number', 'no_default_values']))), '{"i64":-9223372036854776000,"u64":18446744073709552000,"s64":-31}');
    const hex = parsePbOptions(['int64_as_hexstring', 'no_default_values']);
    assert.equal(roundTrip(Scalars, json, hex), '{"i64":"-0x8000000000000000","u64":"0xffffffffffffffff","s64":"-0x1f"}');
    assert.throws(() => jsonToMessage(Scalars, { i64: '0x1f' }), mappingError('field "i64": expected an integer, got "0x1f"'));
  });

  test('64-bit and 32-bit integers are read from numbers and decimal strings', () => {
    const bytes = jsonToMessage(Scalars, { i64: 42, u64: '7', i32: '-12', u32: 1e3 });
    assert.deepEqual(decoded(Scalars, bytes), { i64: '42', u64: '7', i32: -12, u32: 1000 });
  });

  test('NaN and the infinities are strings both ways, and numeric strings are read as numbers', () => {
    const json = { d: 'NaN', f: '-Infinity' };
    assert.equal(JSON.stringify(messageToJson(Scalars, jsonToMessage(Scalars, json), parsePbOptions(['no_default_values']))), '{"d":"NaN","f":"-Infinity"}');
    assert.deepEqual(decoded(Scalars, jsonToMessage(Scalars, { d: '2.5e3', f: 'Infinity' })), { d: 2500, f: Infinity });
  });

  test('bytes are read from URL-safe base64 without padding and written as standard base64', () => {
    assert.equal(JSON.stringify(messageToJson(Scalars, jsonToMessage(Scalars, { by: '-_8' }), parsePbOptions(['no_default_values']))), '{"by":"+/8="}');
  });

  test('an enum is read by name or number and written by name, or by number under enum_as_value', () => {
    const options = parsePbOptions(['no_default_values']);
    assert.equal(JSON.stringify(messageToJson(Scalars, jsonToMessage(Scalars, { color: 1 }), options)), '{"color":"RED"}');
    assert.equal(JSON.stringify(messageToJson(Scalars, jsonToMessage(Scalars, { color: 'GREEN' }), parsePbOptions(['enum_as_value', 'no_default_values']))), '{"color":2}');
  });

  test('an enum number with no name is kept and written as the number', () => {
    assert.equal(roundTrip(Scalars, { color: 99 }, parsePbOptions(['no_default_values'])), '{"color":99}');
  });

  test('proto3 fields at their default are not written to the wire', () => {
    assert.equal(jsonToMessage(Scalars, { d: 0, i64: '0', b: false, s: '', by: '', color: 'COLOR_UNSPECIFIED' }).length, 0);
  });
});

describe('scalar input errors name the field', () => {
  const cases: [string, unknown, string][] = [
    ['a string for an int32', { i32: 'x' }, 'field "i32": expected an integer, got "x"'],
    ['a fraction for an int32', { i32: 1.5 }, 'field "i32": expected an integer, got 1.5'],
    ['an int32 out of range', { i32: 2147483648 }, 'field "i32": 2147483648 is out of range for int32'],
    ['a negative uint32', { u32: -1 }, 'field "u32": -1 is out of range for uint32'],
    ['an int64 past its maximum', { i64: '9223372036854775808' }, 'field "i64": "9223372036854775808" is out of range for int64'],
    ['a uint64 past its maximum', { u64: '18446744073709551616' }, 'field "u64": "18446744073709551616" is out of range for uint64'],
    ['a negative fixed64', { fx64: '-1' }, 'field "fx64": "-1" is out of range for fixed64'],
    ['a float past FLT_MAX', { f: 3.5e38 }, 'field "f": 3.5e+38 is out of range for float'],
    ['text for a double', { d: 'one' }, 'field "d": expected a number, got "one"'],
    ['a string for a bool', { b: 'true' }, 'field "b": expected true or false, got "true"'],
    ['a number for a string', { s: 5 }, 'field "s": expected a string, got 5'],
    ['bytes that are not base64', { by: 'a*b=' }, 'field "by": expected a base64 string, got "a*b="'],
    ['base64 of an impossible length', { by: 'AAAAA' }, 'field "by": expected a base64 string, got "AAAAA"'],
    ['an unknown enum name', { color: 'BLUE' }, 'field "color": "BLUE" is not a value of enum shop.Color'],
    ['an unknown field', { colour: 'RED' }, 'field "colour": no such field in shop.Scalars'],
  ];
  for (const [what, json, message] of cases) {
    test(`${what} is refused`, () => {
      assert.throws(() => jsonToMessage(Scalars, json), mappingError(message));
    });
  }

  test('a refused request is INVALID_ARGUMENT and HTTP 400, and not a JSON object at the top is refused', () => {
    assert.throws(() => jsonToMessage(Scalars, [1]), (err) => {
      assert.ok(err instanceof JsonMappingError);
      assert.equal(err.message, 'expected a JSON object (shop.Scalars), got [1]');
      assert.equal(err.grpcStatus, GrpcStatus.INVALID_ARGUMENT);
      assert.equal(err.httpStatus, 400);
      return true;
    });
  });
});

describe('messages, repeated fields, maps and oneofs', () => {
  test('nested and repeated messages round-trip with the proto field names', () => {
    const json = { user: { name: 'ann', age: 30 }, ids: ['1', '-2'], users: [{ name: 'bo' }, { age: 2 }], display_name: 'x' };
    assert.equal(roundTrip(Order, json, parsePbOptions(['no_default_values'])), JSON.stringify({ ...json, users: [{ name: 'bo' }, { age: 2 }] }));
  });

  test('lowerCamelCase JSON names are read as well as the proto names', () => {
    assert.deepEqual(decoded(Order, jsonToMessage(Order, { displayName: 'x' })), { display_name: 'x' });
    assert.equal(roundTrip(Order, { byId: { '5': { name: 'e' } } }, parsePbOptions(['no_default_values'])), '{"by_id":{"5":{"name":"e"}}}');
  });

  test('one field given by both of its names is refused', () => {
    assert.throws(() => jsonToMessage(Order, { display_name: 'a', displayName: 'b' }), mappingError('field "displayName": the same field as "display_name"'));
  });

  test('maps round-trip with string, bool, int64 and uint32 keys, a false bool key included', () => {
    const json = { counts: { a: 1, b: 2 }, flags: { false: 'no', true: 'yes' }, by_id: { '-9223372036854775808': { name: 'min' } }, colors: { '4294967295': 'RED' } };
    assert.equal(roundTrip(Order, json, parsePbOptions(['no_default_values'])), JSON.stringify(json));
  });

  test('a map key "__proto__" stays an ordinary key', () => {
    const json: unknown = JSON.parse('{"counts":{"__proto__":7}}');
    const out = messageToJson(Order, jsonToMessage(Order, json), parsePbOptions(['no_default_values']));
    assert.equal(JSON.stringify(out), '{"counts":{"__proto__":7}}');
  });

  test('map keys that do not fit the key type are refused with the key in the path', () => {
    assert.throws(() => jsonToMessage(Order, { flags: { yes: 'a' } }), mappingError('field "flags[yes]": expected a map key "true" or "false", got "yes"'));
    assert.throws(() => jsonToMessage(Order, { colors: { '-1': 'RED' } }), mappingError('field "colors[-1]": "-1" is out of range for uint32'));
    assert.throws(() => jsonToMessage(Order, { counts: { a: null } }), mappingError('field "counts[a]": expected a value, got null'));
  });

  test('null is an unset field, an empty repeated field or an empty map', () => {
    assert.equal(jsonToMessage(Order, { user: null, ids: null, counts: null, text: null }).length, 0);
  });

  test('a repeated field takes an array and a map an object', () => {
    assert.throws(() => jsonToMessage(Order, { ids: '1' }), mappingError('field "ids": expected an array, got "1"'));
    assert.throws(() => jsonToMessage(Order, { ids: ['1', 'x'] }), mappingError('field "ids[1]": expected an integer, got "x"'));
    assert.throws(() => jsonToMessage(Order, { counts: [1] }), mappingError('field "counts": expected an object, got [1]'));
    assert.throws(() => jsonToMessage(Order, { user: 'ann' }), mappingError('field "user": expected an object, got "ann"'));
  });

  test('a nested error names the whole path', () => {
    assert.throws(() => jsonToMessage(Order, { user: { friend: { age: 'x' } } }), mappingError('field "user.friend.age": expected an integer, got "x"'));
    assert.throws(() => jsonToMessage(Order, { users: [{}, { nick: 'b' }] }), mappingError('field "users[1].nick": no such field in shop.User'));
  });

  test('only the oneof member set is written, and a second member is refused', () => {
    assert.equal(roundTrip(Order, { number: '0' }, parsePbOptions(['no_default_values'])), '{"number":"0"}');
    assert.equal(roundTrip(Order, { who: {}, text: null }, parsePbOptions(['no_default_values'])), '{"who":{}}');
    assert.throws(() => jsonToMessage(Order, { text: 'a', number: 1 }), mappingError('field "number": oneof "choice" already has "text"'));
  });

  test('of two oneof members on the wire, one is written', () => {
    const writer = loadProtobuf().Writer.create();
    writer.uint32((9 << 3) | 2).string('a').uint32(10 << 3).int64(5);
    const json = messageToJson(Order, writer.finish(), parsePbOptions(['no_default_values']));
    assert.equal(Object.keys(json as object).filter((key) => key === 'text' || key === 'number').length, 1);
  });

  test('a proto3 optional field set to its default is written, and left out when unset', () => {
    const options = parsePbOptions(['no_default_values']);
    assert.equal(roundTrip(Order, { maybe: 0 }, options), '{"maybe":0}');
    assert.deepEqual(decoded(Order, jsonToMessage(Order, { maybe: 0 })), { maybe: 0 });
    assert.equal(roundTrip(Order, {}, options), '{}');
  });
});

describe('unset fields under each pb_option', () => {
  const user = messageToJson.bind(null, User, jsonToMessage(User, {}));
  test('auto_default_values writes proto3 defaults and leaves out unset messages', () => {
    assert.equal(JSON.stringify(user(AUTO)), '{"name":"","age":0}');
    assert.equal(
      JSON.stringify(messageToJson(Order, new Uint8Array(0), AUTO)),
      '{"ids":[],"users":[],"counts":{},"flags":{},"by_id":{},"colors":{},"display_name":"","palette":[]}',
    );
    assert.equal(JSON.stringify(messageToJson(Scalars, new Uint8Array(0), AUTO)),
      '{"d":0,"f":0,"i32":0,"i64":"0","u32":0,"u64":"0","s32":0,"s64":"0","fx32":0,"fx64":"0","sfx32":0,"sfx64":"0","b":false,"s":"","by":"","color":"COLOR_UNSPECIFIED"}');
  });

  test('no_default_values writes only the fields set', () => {
    assert.equal(JSON.stringify(user(parsePbOptions(['no_default_values']))), '{}');
  });

  test('use_default_values writes every field, an unset message, oneof member or optional as null', () => {
    assert.equal(JSON.stringify(user(parsePbOptions(['use_default_values']))), '{"name":"","age":0,"friend":null}');
    assert.equal(
      JSON.stringify(messageToJson(Order, new Uint8Array(0), parsePbOptions(['use_default_values']))),
      '{"scalars":null,"user":null,"ids":[],"users":[],"counts":{},"flags":{},"by_id":{},"colors":{},"text":null,"number":null,"who":null,"maybe":null,"display_name":"","palette":[]}',
    );
  });
});

describe('well-known types', () => {
  const none = parsePbOptions(['no_default_values']);

  test('a Timestamp is RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, and is read with an offset', () => {
    assert.equal(roundTrip(Known, { at: '1972-01-01T10:00:20.021Z' }, none), '{"at":"1972-01-01T10:00:20.021Z"}');
    assert.equal(roundTrip(Known, { at: '1972-01-01T10:00:20.021+01:30' }, none), '{"at":"1972-01-01T08:30:20.021Z"}');
    assert.equal(roundTrip(Known, { times: ['0001-01-01T00:00:00Z', '9999-12-31T23:59:59.999999999Z', '1970-01-01T00:00:00.1234Z', '2000-02-29T12:00:00.000001Z'] }, none),
      '{"times":["0001-01-01T00:00:00Z","9999-12-31T23:59:59.999999999Z","1970-01-01T00:00:00.123400Z","2000-02-29T12:00:00.000001Z"]}');
    assert.deepEqual(decoded(Known, jsonToMessage(Known, { at: '1970-01-01T00:00:01.5Z' })), { at: { seconds: '1', nanos: 500000000 } });
  });

  test('a Timestamp that is not RFC 3339 or outside years 1 to 9999 is refused', () => {
    assert.throws(() => jsonToMessage(Known, { at: '1972-01-01 10:00:00Z' }), mappingError(/^field "at": expected an RFC 3339 timestamp/));
    assert.throws(() => jsonToMessage(Known, { at: '2001-02-29T00:00:00Z' }), mappingError('field "at": "2001-02-29T00:00:00Z" is not a valid date and time'));
    assert.throws(() => jsonToMessage(Known, { at: '0001-01-01T00:00:00+01:00' }), mappingError(/^field "at": Timestamp -62135600400s 0ns is outside/));
  });

  test('a Duration is seconds with an "s", negative ones included', () => {
    assert.equal(roundTrip(Known, { took: '1.000340012s' }, none), '{"took":"1.000340012s"}');
    assert.equal(roundTrip(Known, { took: '-1.5s' }, none), '{"took":"-1.500s"}');
    assert.equal(roundTrip(Known, { took: '-0.000001s' }, none), '{"took":"-0.000001s"}');
    assert.deepEqual(decoded(Known, jsonToMessage(Known, { took: '-1.5s' })), { took: { seconds: '-1', nanos: -500000000 } });
    assert.throws(() => jsonToMessage(Known, { took: '1.5' }), mappingError('field "took": expected a duration such as "1.5s", got "1.5"'));
    assert.throws(() => jsonToMessage(Known, { took: '315576000001s' }), mappingError('field "took": "315576000001s" is outside ±315576000000s'));
  });

  test('the wrappers are their bare values, a zero value included', () => {
    const json = { i32: 0, i64: '-9223372036854775808', u32: 4294967295, u64: '18446744073709551615', f: 0.25, d: 'NaN', b: false, s: '', by: 'AA==' };
    assert.equal(roundTrip(Known, json, none), JSON.stringify(json));
    assert.throws(() => jsonToMessage(Known, { i32: { value: 1 } }), mappingError('field "i32": expected an integer, got {"value":1}'));
  });

  test('Struct, Value and ListValue are any JSON, and a NullValue is null', () => {
    const json = { meta: { a: [1, 'two', true, null, { b: {} }], c: null }, value: [{ x: -0.5 }], list: [null, []] };
    assert.equal(roundTrip(Known, json, none), JSON.stringify(json));
    // NullValue is an enum with one value: a proto3 field of it is never on the wire, and is null by default.
    assert.equal(jsonToMessage(Known, { nothing: null }).length, 0);
    assert.equal(roundTrip(Known, { nothing: 'NULL_VALUE' }, parsePbOptions(['enum_as_value'])), '{"nothing":null,"times":[]}');
    assert.equal(roundTrip(Known, { value: null }, none), '{"value":null}');
    assert.deepEqual(decoded(Known, jsonToMessage(Known, { value: 'x' })), { value: { stringValue: 'x' } });
  });

  test('a FieldMask is comma-separated lowerCamelCase paths', () => {
    assert.equal(roundTrip(Known, { mask: 'user.displayName,ids' }, none), '{"mask":"user.displayName,ids"}');
    assert.deepEqual(decoded(Known, jsonToMessage(Known, { mask: 'user.displayName,ids' })), { mask: { paths: ['user.display_name', 'ids'] } });
    assert.throws(() => jsonToMessage(Known, { mask: 'display_name' }), mappingError(/^field "mask": FieldMask path "display_name" is not lowerCamelCase/));
  });

  test('Empty is {}', () => {
    assert.equal(roundTrip(Known, { empty: {} }, none), '{"empty":{}}');
  });

  test('an Any holds its message with "@type", or a well-known type in "value"', () => {
    const user = { detail: { '@type': 'type.googleapis.com/shop.User', name: 'ann', friend: { age: 3 } } };
    assert.equal(roundTrip(Known, user, none), JSON.stringify(user));
    const duration = { detail: { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '2s' } };
    assert.equal(roundTrip(Known, duration, none), JSON.stringify(duration));
    const nested = { detail: { '@type': 'type.googleapis.com/google.protobuf.Any', value: { '@type': 'type.googleapis.com/google.protobuf.Empty' } } };
    assert.equal(roundTrip(Known, nested, none), JSON.stringify(nested));
  });

  test('an Any of a type the proto does not define, or without "@type", is refused', () => {
    assert.throws(() => jsonToMessage(Known, { detail: { '@type': 'type.googleapis.com/shop.Nope' } }), mappingError('field "detail": "@type" "type.googleapis.com/shop.Nope" names no message type of this proto'));
    assert.throws(() => jsonToMessage(Known, { detail: { name: 'x' } }), mappingError('field "detail": an Any needs "@type"'));
    assert.throws(() => jsonToMessage(Known, { detail: { '@type': 'type.googleapis.com/shop.User', nick: 'x' } }), mappingError('field "detail.nick": no such field in shop.User'));
  });

  test('an Any on the wire whose type the proto does not define is a response error', () => {
    const any = Known.lookupTypeOrEnum('google.protobuf.Any');
    assert.ok(any instanceof loadProtobuf().Type);
    const bytes = Known.encode({ detail: any.create({ type_url: 'type.googleapis.com/other.Thing', value: new Uint8Array([8, 1]) }) }).finish();
    assert.throws(() => messageToJson(Known, bytes), (err) => err instanceof JsonMappingError && err.httpStatus === 502 && /names no message type/.test(err.message));
  });
});

describe('bounds and broken input', () => {
  function nestedUsers(levels: number): Record<string, unknown> {
    let json: Record<string, unknown> = { name: 'leaf' };
    for (let i = 1; i < levels; i++) json = { friend: json };
    return json;
  }

  test(`messages nested ${String(MAX_NESTING + 1)} levels deep are mapped, one level more is refused`, () => {
    assert.ok(jsonToMessage(User, nestedUsers(MAX_NESTING + 1)).length > 0);
    const path = Array.from({ length: MAX_NESTING + 1 }, () => 'friend').join('.');
    assert.throws(() => jsonToMessage(User, nestedUsers(MAX_NESTING + 2)), mappingError(`field "${path}": messages nested deeper than 100 levels`));
  });

  test('a hostile Struct nested 100000 levels deep fails with a mapping error, not a stack overflow', () => {
    let json: unknown = 1;
    for (let i = 0; i < 100_000; i++) json = { a: json };
    assert.throws(() => jsonToMessage(Known, { meta: json }), mappingError(/messages nested deeper than 100 levels$/));
  });

  test('a value nested too deep for JSON.stringify in the wrong place is still a mapping error', () => {
    const json: unknown = JSON.parse(`${'['.repeat(200_000)}${']'.repeat(200_000)}`);
    assert.throws(() => jsonToMessage(User, { name: json }), mappingError('field "name": expected a string, got […]'));
  });

  test('bytes nested past the bound, or that do not decode, are a response error', () => {
    const deep = jsonToMessage(User, nestedUsers(MAX_NESTING + 1));
    const writer = loadProtobuf().Writer.create();
    writer.uint32((3 << 3) | 2).bytes(deep);
    assert.throws(() => messageToJson(User, writer.finish()), (err) => err instanceof JsonMappingError && err.grpcStatus === GrpcStatus.INTERNAL);
    assert.throws(() => messageToJson(User, new Uint8Array([0x0a, 0x05, 0x61])), (err) => {
      assert.ok(err instanceof JsonMappingError);
      assert.match(err.message, /^the response does not decode as shop\.User: index out of range/);
      assert.equal(err.httpStatus, 502);
      assert.equal(err.publicMessage, 'the upstream response cannot be mapped to JSON');
      return true;
    });
  });
});

describe('query parameters', () => {
  test('names fields, nested fields and repeated fields, with values of their types', () => {
    const params = new URLSearchParams('display_name=x&user.name=ann&user.age=30&ids=1&ids=2&palette=RED&palette=2&maybe=0&scalars.b=true&scalars.d=1.5');
    const json = queryToJson(Order, params);
    assert.deepEqual(json, { display_name: 'x', user: { name: 'ann', age: 30 }, ids: ['1', '2'], palette: ['RED', 2], maybe: 0, scalars: { b: true, d: 1.5 } });
    assert.deepEqual(decoded(Order, jsonToMessage(Order, json)), { ...json, ids: ['1', '2'], palette: ['RED', 'GREEN'] });
  });

  test('takes JSON names and well-known types written as one string', () => {
    const json = queryToJson(Known, new URLSearchParams('at=1970-01-01T00:00:01Z&i32=5&b=false&took=2s'));
    assert.deepEqual(json, { at: '1970-01-01T00:00:01Z', i32: 5, b: false, took: '2s' });
    assert.deepEqual(queryToJson(Order, new URLSearchParams('displayName=y')), { display_name: 'y' });
  });

  test('text that does not fit the field is refused by jsonToMessage with the field path', () => {
    const json = queryToJson(Order, new URLSearchParams('user.age=x'));
    assert.throws(() => jsonToMessage(Order, json), mappingError('field "user.age": expected an integer, got "x"'));
  });

  test('a parameter that names no field, a message or a map, or a single field twice is refused', () => {
    assert.throws(() => queryToJson(Order, new URLSearchParams('user.nick=x')), mappingError('query parameter "user.nick": no field "nick" in shop.User'));
    assert.throws(() => queryToJson(Order, new URLSearchParams('user=x')), mappingError('query parameter "user": "user" is a message: name its fields ("user.<field>")'));
    assert.throws(() => queryToJson(Order, new URLSearchParams('counts=1')), mappingError('query parameter "counts": "counts" is a map: name its fields ("counts.<field>")'));
    assert.throws(() => queryToJson(Order, new URLSearchParams('display_name=a&displayName=b')), mappingError('query parameter "displayName": "display_name" is given more than once'));
    assert.throws(() => queryToJson(Order, new URLSearchParams('ids.x=1')), mappingError('query parameter "ids.x": "ids" is not a message whose fields can be named'));
  });
});
