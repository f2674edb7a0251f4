/**
 * Issue #17: `grpc-transcode` through the admin API, etcd and the data plane: HTTP/JSON (and query parameters, over
 * HTTP/1.1 and HTTP/2) to a real grpc-js upstream and back. The upstream echoes the request message, so every
 * field kind crosses JSON → protobuf → upstream → protobuf → JSON: every scalar type, int64 extremes as strings,
 * nested and repeated messages, maps, enums as names (and numbers in), oneof, Timestamp, Duration and wrappers.
 * Also path_template (path parameters), pb_option, gRPC errors as HTTP statuses with the status in the body (details decoded by
 * status_detail_type), the request refused with the field's path, the deadline, plugins first, and a server stream
 * as NDJSON delivered incrementally: the upstream sends its last message only after the HTTP client has read the
 * first line, so the test completes only if the first line left the gateway before the stream ended.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Metadata, Server, ServerCredentials, status as GrpcCode, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from '@grpc/grpc-js';
import { loadProtobuf } from '../../shared/proto-check.ts';
import { freePort } from '../helpers/ports.ts';
import { http1Request, http2Request } from '../helpers/grpc-web-raw.ts';
import { putRouteAndWait, startGateway, type GatewayFixture } from './gateway-fixture.ts';

const KITCHEN_PROTO = `syntax = "proto3";
package kitchen;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/wrappers.proto";

enum Color { COLOR_UNSPECIFIED = 0; RED = 1; GREEN = 2; }
message Inner { string label = 1; repeated int32 values = 2; }
message Everything {
  double f_double = 1; float f_float = 2; int32 f_int32 = 3; int64 f_int64 = 4; uint32 f_uint32 = 5; uint64 f_uint64 = 6;
  sint32 f_sint32 = 7; sint64 f_sint64 = 8; fixed32 f_fixed32 = 9; fixed64 f_fixed64 = 10; sfixed32 f_sfixed32 = 11;
  sfixed64 f_sfixed64 = 12; bool f_bool = 13; string f_string = 14; bytes f_bytes = 15;
  Inner inner = 16; repeated Inner inners = 17; map<string, int64> counts = 18; Color color = 19; repeated Color colors = 20;
  oneof choice { string name = 21; int32 number = 22; }
  google.protobuf.Timestamp at = 23; google.protobuf.Duration took = 24;
  google.protobuf.Int64Value maybe = 25; google.protobuf.StringValue note = 26;
}
message ErrorDetail { string reason = 1; }
service Kitchen {
  rpc Echo(Everything) returns (Everything);
  rpc Fail(Everything) returns (Everything);
  rpc Stream(Everything) returns (stream Everything);
}
`;

/** Every field set, written as the proto3 JSON mapping writes it: the echo must come back equal. */
const EVERYTHING = {
  f_double: 2.25,
  f_float: 1.5,
  f_int32: -7,
  f_int64: '9223372036854775807',
  f_uint32: 4294967295,
  f_uint64: '18446744073709551615',
  f_sint32: -2147483648,
  f_sint64: '-9223372036854775808',
  f_fixed32: 123,
  f_fixed64: '18446744073709551615',
  f_sfixed32: -5,
  f_sfixed64: '-1',
  f_bool: true,
  f_string: 'héllo ✓',
  f_bytes: Buffer.from([0, 1, 2, 250]).toString('base64'),
  inner: { label: 'in', values: [1, 2, 3] },
  inners: [
    { label: 'a', values: [] },
    { label: 'b', values: [9] },
  ],
  counts: { a: '1', b: '-2' },
  color: 'GREEN',
  colors: ['RED', 'GREEN'],
  name: 'chosen',
  at: '2026-12-07T10:00:20.021Z',
  took: '1.500s',
  maybe: '9007199254740993',
  note: 'wrapped',
};

const STATUS_DETAILS_BIN = 'grpc-status-details-bin';
/** The statuses a test may ask Fail for (`x-code`). */
const ASKABLE = new Map<string, GrpcCode>(
  [GrpcCode.NOT_FOUND, GrpcCode.PERMISSION_DENIED, GrpcCode.UNAUTHENTICATED, GrpcCode.RESOURCE_EXHAUSTED, GrpcCode.UNAVAILABLE, GrpcCode.INVALID_ARGUMENT, GrpcCode.FAILED_PRECONDITION].map((code) => [String(code), code]),
);

interface Kitchen {
  port: number;
  /** Resolved by the test once the first streamed line reached it: the upstream then sends its last message. */
  releaseLast: () => void;
  /** Echo calls received. */
  readonly echoes: number;
  close(): Promise<void>;
}

async function startKitchen(): Promise<Kitchen> {
  const pb = loadProtobuf();
  const status = pb.Root.fromJSON({
    nested: {
      Status: { fields: { code: { type: 'int32', id: 1 }, message: { type: 'string', id: 2 }, details: { rule: 'repeated', type: 'Any', id: 3 } } },
      Any: { fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } },
      ErrorDetail: { fields: { reason: { type: 'string', id: 1 } } },
    },
  });
  let release: () => void = () => undefined;
  let echoes = 0;
  const raw = { requestSerialize: (v: Buffer) => v, requestDeserialize: (v: Buffer) => v, responseSerialize: (v: Buffer) => v, responseDeserialize: (v: Buffer) => v };
  const server = new Server();
  server.addService(
    {
      Echo: { path: '/kitchen.Kitchen/Echo', requestStream: false, responseStream: false, ...raw },
      Fail: { path: '/kitchen.Kitchen/Fail', requestStream: false, responseStream: false, ...raw },
      Stream: { path: '/kitchen.Kitchen/Stream', requestStream: false, responseStream: true, ...raw },
    },
    {
      Echo: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        echoes++;
        const delay = Number(call.metadata.get('x-delay-ms')[0] ?? 0);
        const timer = setTimeout(() => callback(null, call.request), delay);
        call.on('cancelled', () => clearTimeout(timer));
      },
      Fail: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        const code = ASKABLE.get(String(call.metadata.get('x-code')[0] ?? '')) ?? GrpcCode.NOT_FOUND;
        const metadata = new Metadata();
        const detail = status.lookupType('ErrorDetail').encode({ reason: 'gone fishing' }).finish();
        const details = status.lookupType('Status').encode({ code, message: 'no such dish', details: [{ type_url: 'type.googleapis.com/kitchen.ErrorDetail', value: detail }] }).finish();
        metadata.set(STATUS_DETAILS_BIN, Buffer.from(details));
        callback({ code, details: 'no such dish', metadata });
      },
      Stream: (call: ServerWritableStream<Buffer, Buffer>) => {
        call.write(call.request);
        const failAfter = call.metadata.get('x-fail')[0] !== undefined;
        const last = new Promise<void>((resolve) => (release = resolve));
        void last.then(() => {
          call.write(call.request);
          if (failAfter) call.emit('error', { code: GrpcCode.ABORTED, details: 'burnt' });
          else call.end();
        });
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err === null ? resolve(p) : reject(err))));
  return {
    port,
    releaseLast: () => release(),
    get echoes() {
      return echoes;
    },
    close: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** An HTTP/1.1 POST whose answer is read line by line; `onFirstLine` runs when the first whole line came. */
function streamLines(address: string, path: string, body: string, headers: Record<string, string>, onFirstLine: () => void): Promise<{ status: number; type: string | undefined; lines: unknown[] }> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port: Number(port), method: 'POST', path, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      let told = false;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        if (!told && text.includes('\n')) {
          told = true;
          onFirstLine();
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], lines: text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('grpc-transcode', () => {
  let gw: GatewayFixture;
  let kitchen: Kitchen;

  const json = (body: Buffer): unknown => JSON.parse(body.toString('utf8'));

  before(async () => {
    gw = await startGateway();
    kitchen = await startKitchen();
    const res = await gw.admin('PUT', '/protos/kitchen', { content: KITCHEN_PROTO });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const upstream = { nodes: { [`127.0.0.1:${String(kitchen.port)}`]: 1 } };
    const route = (uri: string, method: string, extra: Record<string, unknown> = {}): unknown => ({
      uri,
      upstream,
      plugins: { 'grpc-transcode': { proto_id: 'kitchen', service: 'kitchen.Kitchen', method, ...extra } },
    });
    await putRouteAndWait(gw, 'echo', route('/kitchen/echo', 'Echo'));
    await putRouteAndWait(gw, 'echo-numbers', route('/kitchen/echo-numbers', 'Echo', { pb_option: ['int64_as_number', 'enum_as_value'] }));
    await putRouteAndWait(gw, 'fail', route('/kitchen/fail', 'Fail'));
    await putRouteAndWait(gw, 'fail-body', route('/kitchen/fail-body', 'Fail', { show_status_in_body: true, status_detail_type: 'kitchen.ErrorDetail' }));
    await putRouteAndWait(gw, 'slow', route('/kitchen/slow', 'Echo', { deadline: 100 }));
    await putRouteAndWait(gw, 'stream', route('/kitchen/stream', 'Stream'));
  });

  after(async () => {
    await kitchen.close();
    await gw.close();
  });

  test('every field kind crosses JSON → protobuf → upstream → JSON unchanged (proto3 JSON mapping)', async () => {
    const answer = await http1Request(gw.h2cAddress, { path: '/kitchen/echo', headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(EVERYTHING)) });
    assert.equal(answer.status, 200, answer.body.toString());
    assert.equal(answer.headers['content-type'], 'application/json');
    assert.deepEqual(json(answer.body), EVERYTHING);
  });

  test('enums given as numbers and camelCase names are read; unset fields come back with their defaults', async () => {
    const answer = await http1Request(gw.h2cAddress, { path: '/kitchen/echo', headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ color: 1, fString: 'camel', number: 4 })) });
    const out = json(answer.body) as Record<string, unknown>;
    assert.equal(out['color'], 'RED');
    assert.equal(out['f_string'], 'camel');
    assert.equal(out['number'], 4);
    assert.equal(out['name'], undefined, 'the other member of the oneof is not set');
    assert.equal(out['f_int64'], '0');
    assert.deepEqual(out['inners'], []);
    assert.deepEqual(out['counts'], {});
  });

  test('GET with query parameters over HTTP/2: nested and repeated fields, types coerced', async () => {
    const answer = await http2Request(gw.h2cAddress, { method: 'GET', path: '/kitchen/echo?f_int32=5&f_bool=true&inner.label=q&colors=RED&colors=2&f_int64=-3' });
    assert.equal(answer.status, 200, answer.body.toString());
    const out = json(answer.body) as Record<string, unknown>;
    assert.equal(out['f_int32'], 5);
    assert.equal(out['f_bool'], true);
    assert.deepEqual(out['inner'], { label: 'q', values: [] });
    assert.deepEqual(out['colors'], ['RED', 'GREEN']);
    assert.equal(out['f_int64'], '-3');
  });

  test('path_template fills fields from the path (over the query and the body); a path that does not fit is 404', async () => {
    const upstream = { nodes: { [`127.0.0.1:${String(kitchen.port)}`]: 1 } };
    const plugin = { proto_id: 'kitchen', service: 'kitchen.Kitchen', method: 'Echo', path_template: '/kitchen/items/{f_int32}/{inner.label}' };
    await putRouteAndWait(gw, 'echo-path', { uri: '/kitchen/items/*', upstream, plugins: { 'grpc-transcode': plugin } });
    const answer = await http1Request(gw.h2cAddress, { path: '/kitchen/items/42/caf%C3%A9?f_string=q&f_int32=1', headers: { 'content-type': 'application/json' }, body: Buffer.from('{"inner": {"values": [7]}}') });
    assert.equal(answer.status, 200, answer.body.toString());
    const out = json(answer.body) as Record<string, unknown>;
    assert.equal(out['f_int32'], 42, 'the path wins over the query');
    assert.equal(out['f_string'], 'q');
    assert.deepEqual(out['inner'], { label: 'café', values: [7] }, "the path's nested field merged with the body's");
    const misfit = await http1Request(gw.h2cAddress, { path: '/kitchen/items/42', headers: { 'content-type': 'application/json' }, body: Buffer.from('{}') });
    assert.equal(misfit.status, 404);
    const wrongType = await http1Request(gw.h2cAddress, { path: '/kitchen/items/forty/x', headers: { 'content-type': 'application/json' }, body: Buffer.from('{}') });
    assert.equal(wrongType.status, 400);
    assert.match(decodeURIComponent(String(wrongType.headers['grpc-message'])), /f_int32/);
    const refused = await gw.admin('PUT', '/routes/bad-template', { uri: '/x/*', upstream, plugins: { 'grpc-transcode': { ...plugin, path_template: '/x/{a}/{a}' } } });
    assert.equal(refused.status, 400);
  });

  test('pb_option int64_as_number and enum_as_value', async () => {
    const answer = await http1Request(gw.h2cAddress, { path: '/kitchen/echo-numbers', headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ f_int64: '42', color: 'GREEN' })) });
    const out = json(answer.body) as Record<string, unknown>;
    assert.equal(out['f_int64'], 42);
    assert.equal(out['color'], 2);
  });

  test("a body that does not fit the message is a 400 naming the field, and the upstream is not called", async () => {
    const before = kitchen.echoes;
    for (const body of ['{"f_int32": "seven"}', '{"nope": 1}', '{"f_int32": 2147483648}', 'not json', '[1]']) {
      const answer = await http1Request(gw.h2cAddress, { path: '/kitchen/echo', headers: { 'content-type': 'application/json' }, body: Buffer.from(body) });
      assert.equal(answer.status, 400, body);
      assert.equal(answer.headers['grpc-status'], String(GrpcCode.INVALID_ARGUMENT), body);
    }
    const named = await http1Request(gw.h2cAddress, { path: '/kitchen/echo', headers: { 'content-type': 'application/json' }, body: Buffer.from('{"inner": {"values": ["x"]}}') });
    assert.match(decodeURIComponent(String(named.headers['grpc-message'])), /inner\.values/);
    assert.equal(kitchen.echoes, before, 'no refused body reached the upstream');
  });

  test('gRPC errors become HTTP statuses (statuscodes.md); show_status_in_body decodes the details as status_detail_type', async () => {
    const plain = await http1Request(gw.h2cAddress, { path: '/kitchen/fail', headers: { 'content-type': 'application/json', 'x-code': String(GrpcCode.NOT_FOUND) }, body: Buffer.from('{}') });
    assert.equal(plain.status, 404);
    assert.equal(plain.headers['grpc-status'], String(GrpcCode.NOT_FOUND));
    assert.equal(decodeURIComponent(String(plain.headers['grpc-message'])), 'no such dish', 'percent-encoded, as gRPC sends it');
    for (const [code, httpStatus] of [
      [GrpcCode.PERMISSION_DENIED, 403],
      [GrpcCode.UNAUTHENTICATED, 401],
      [GrpcCode.RESOURCE_EXHAUSTED, 429],
      [GrpcCode.UNAVAILABLE, 503],
      [GrpcCode.INVALID_ARGUMENT, 400],
    ] as const) {
      const answer = await http1Request(gw.h2cAddress, { path: '/kitchen/fail', headers: { 'content-type': 'application/json', 'x-code': String(code) }, body: Buffer.from('{}') });
      assert.equal(answer.status, httpStatus, `gRPC ${String(code)}`);
    }
    const detailed = await http1Request(gw.h2cAddress, { path: '/kitchen/fail-body', headers: { 'content-type': 'application/json', 'x-code': String(GrpcCode.FAILED_PRECONDITION) }, body: Buffer.from('{}') });
    assert.equal(detailed.status, 400);
    assert.deepEqual(json(detailed.body), { code: GrpcCode.FAILED_PRECONDITION, message: 'no such dish', details: [{ reason: 'gone fishing' }] });
  });

  test('the deadline ends a slow call with 504; an unreachable upstream is 503', async () => {
    const slow = await http1Request(gw.h2cAddress, { path: '/kitchen/slow', headers: { 'content-type': 'application/json', 'x-delay-ms': '5000' }, body: Buffer.from('{}') });
    assert.equal(slow.status, 504);
    assert.equal(slow.headers['grpc-status'], String(GrpcCode.DEADLINE_EXCEEDED));
    const closed = await freePort();
    await putRouteAndWait(gw, 'nowhere', { uri: '/kitchen/nowhere', upstream: { nodes: { [`127.0.0.1:${String(closed)}`]: 1 } }, plugins: { 'grpc-transcode': { proto_id: 'kitchen', service: 'kitchen.Kitchen', method: 'Echo' } } });
    const unreachable = await http1Request(gw.h2cAddress, { path: '/kitchen/nowhere', headers: { 'content-type': 'application/json' }, body: Buffer.from('{}') });
    assert.equal(unreachable.status, 503);
  });

  test('an answer over max_resp_body_size is a 502, and a request body over the grpc-limits cap a 413', async () => {
    const upstream = { nodes: { [`127.0.0.1:${String(kitchen.port)}`]: 1 } };
    await putRouteAndWait(gw, 'echo-small', { uri: '/kitchen/small', upstream, plugins: { 'grpc-transcode': { proto_id: 'kitchen', service: 'kitchen.Kitchen', method: 'Echo', max_resp_body_size: 16 } } });
    const big = await http1Request(gw.h2cAddress, { path: '/kitchen/small', headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ f_string: 'x'.repeat(64) })) });
    assert.equal(big.status, 502);
    const small = await http1Request(gw.h2cAddress, { path: '/kitchen/small', headers: { 'content-type': 'application/json' }, body: Buffer.from('{"f_int32": 1}') });
    assert.equal(small.status, 200);
    await putRouteAndWait(gw, 'echo-capped', { uri: '/kitchen/capped', upstream, plugins: { 'grpc-limits': { max_request_message_bytes: 100 }, 'grpc-transcode': { proto_id: 'kitchen', service: 'kitchen.Kitchen', method: 'Echo' } } });
    const large = await http1Request(gw.h2cAddress, { path: '/kitchen/capped', headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ f_string: 'y'.repeat(500) })) });
    assert.equal(large.status, 413);
  });

  test('plugins run first: key-auth refuses with 401, limit-count with 429 once the quota is spent', async () => {
    const upstream = { nodes: { [`127.0.0.1:${String(kitchen.port)}`]: 1 } };
    const transcode = { proto_id: 'kitchen', service: 'kitchen.Kitchen', method: 'Echo' };
    await putRouteAndWait(gw, 'echo-auth', { uri: '/kitchen/auth', upstream, plugins: { 'key-auth': {}, 'grpc-transcode': transcode } });
    const refused = await http1Request(gw.h2cAddress, { path: '/kitchen/auth', headers: { 'content-type': 'application/json' }, body: Buffer.from('{}') });
    assert.equal(refused.status, 401);
    await putRouteAndWait(gw, 'echo-limited', { uri: '/kitchen/limited', upstream, plugins: { 'limit-count': { count: 2, time_window: 60, key_type: 'constant', key: 'all' }, 'grpc-transcode': transcode } });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await http1Request(gw.h2cAddress, { path: '/kitchen/limited', headers: { 'content-type': 'application/json' }, body: Buffer.from('{}') })).status);
    assert.deepEqual(statuses, [200, 200, 429]);
  });

  test('with the cors plugin, a preflight is answered and every answer carries its fields', async () => {
    await putRouteAndWait(gw, 'echo-cors', { uri: '/kitchen/cors', upstream: { nodes: { [`127.0.0.1:${String(kitchen.port)}`]: 1 } }, plugins: { cors: {}, 'grpc-transcode': { proto_id: 'kitchen', service: 'kitchen.Kitchen', method: 'Echo' } } });
    const preflight = await http1Request(gw.h2cAddress, { method: 'OPTIONS', path: '/kitchen/cors', headers: { origin: 'http://page.test', 'access-control-request-method': 'POST' } });
    assert.equal(preflight.status, 200);
    assert.equal(preflight.headers['access-control-allow-origin'], '*');
    assert.match(String(preflight.headers['access-control-allow-methods']), /POST/);
    const answer = await http1Request(gw.h2cAddress, { path: '/kitchen/cors', headers: { 'content-type': 'application/json', origin: 'http://page.test' }, body: Buffer.from('{"f_string":"x"}') });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['access-control-allow-origin'], '*');
    assert.equal((json(answer.body) as Record<string, unknown>)['f_string'], 'x');
  });

  test('a server stream is NDJSON, the first line delivered before the upstream sends its last message', async () => {
    const answer = await streamLines(gw.h2cAddress, '/kitchen/stream', JSON.stringify({ f_string: 'line' }), {}, () => kitchen.releaseLast());
    assert.equal(answer.status, 200);
    assert.equal(answer.type, 'application/x-ndjson');
    assert.equal(answer.lines.length, 2);
    for (const line of answer.lines) assert.equal((line as Record<string, unknown>)['f_string'], 'line');
  });

  test('a server stream that fails after a message ends with an error line', async () => {
    const answer = await streamLines(gw.h2cAddress, '/kitchen/stream', JSON.stringify({ f_string: 'x' }), { 'x-fail': '1' }, () => kitchen.releaseLast());
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.lines.at(-1), { error: { code: GrpcCode.ABORTED, message: 'burnt' } });
    assert.equal(answer.lines.length, 3);
  });
});
