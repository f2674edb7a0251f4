/**
 * Issue #17 (first step): protos through the admin API against a real etcd, in APISIX's shape
 * (`/apisix/admin/protos/<id>` with `content`): a .proto that parses is stored; one that does not is a 400 with
 * the parser's message, its line and the column of the offending token, and nothing is written; imports of
 * well-known types pass, imports of other protos by "<id>.proto" must exist, and a proto another imports cannot
 * be deleted.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { admin, adminFixtureEachTest, jsonOf } from './admin-fixture.ts';

const GREETER = `syntax = "proto3";
package helloworld;
import "google/protobuf/timestamp.proto";
service Greeter { rpc SayHello (HelloRequest) returns (HelloReply) {} }
message HelloRequest { string name = 1; google.protobuf.Timestamp at = 2; }
message HelloReply { string message = 1; }
`;

describe('admin API: protos', () => {
  const fixture = adminFixtureEachTest();

  const put = (id: string, content: string): ReturnType<typeof admin> =>
    admin(fixture().app, { method: 'PUT', url: `/apisix/admin/protos/${id}`, body: { content } });

  it('stores a proto that parses, importing a well-known type, and reads it back', async () => {
    const created = await put('1', GREETER);
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(jsonOf(created)['key'], '/apisix/protos/1');
    const got = jsonOf(await admin(fixture().app, { method: 'GET', url: '/apisix/admin/protos/1' }));
    assert.equal((got['value'] as { content: string }).content, GREETER);
  });

  it('refuses a syntax error with the line and column of the token, writing nothing', async () => {
    const res = await put('bad', 'syntax = "proto3";\nmessage A {\n  string x = 1\n}\n');
    assert.equal(res.statusCode, 400);
    assert.equal(jsonOf(res)['error_msg'], "invalid configuration: invalid proto content: line 4, column 1: illegal token '}', ';' expected");
    const junk = await put('bad', 'syntax = "proto3";\nmessage A { string x = 1; }\nthis is not proto\n');
    assert.equal(junk.statusCode, 400);
    assert.match(String(jsonOf(junk)['error_msg']), /invalid proto content: line 3, column 1: /);
    assert.equal((await admin(fixture().app, { method: 'GET', url: '/apisix/admin/protos/bad' })).statusCode, 404, 'nothing was written');
  });

  it('imports another proto by "<id>.proto", which must exist and cannot be deleted while imported', async () => {
    const missing = await put('2', 'syntax = "proto3";\nimport "common.proto";\nmessage B { common.Id id = 1; }\n');
    assert.equal(missing.statusCode, 400);
    assert.equal(jsonOf(missing)['error_msg'], 'failed to fetch proto info by proto id [common], response code: 404');
    assert.equal((await put('common', 'syntax = "proto3";\npackage common;\nmessage Id { string value = 1; }\n')).statusCode, 201);
    assert.equal((await put('2', 'syntax = "proto3";\nimport "common.proto";\nmessage B { common.Id id = 1; }\n')).statusCode, 201);
    const deleted = await admin(fixture().app, { method: 'DELETE', url: '/apisix/admin/protos/common' });
    assert.equal(deleted.statusCode, 400);
    assert.match(String(jsonOf(deleted)['error_msg']), /can not delete this proto, proto \[2\] is still using it now/);
  });

  it('refuses an import that is neither a well-known type nor another proto, and a well-known type protobufjs lacks', async () => {
    const path = await put('3', 'syntax = "proto3";\nimport "vendor/other.proto";\n');
    assert.equal(path.statusCode, 400);
    assert.match(String(jsonOf(path)['error_msg']), /import "vendor\/other.proto": a proto imports google\/protobuf\/\*.proto or another proto by "<id>.proto"/);
    const unknown = await put('3', 'syntax = "proto3";\nimport "google/protobuf/nothing.proto";\n');
    assert.equal(unknown.statusCode, 400);
    assert.match(String(jsonOf(unknown)['error_msg']), /not a well-known type protobufjs bundles/);
  });

  it("a route's grpc-transcode proto_id must exist, and the proto cannot be deleted while a route uses it", async () => {
    const route = (protoId: string): object => ({
      uri: '/hello',
      upstream: { nodes: { '127.0.0.1:1': 1 } },
      plugins: { 'grpc-transcode': { proto_id: protoId, service: 'helloworld.Greeter', method: 'SayHello' } },
    });
    const missing = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/routes/t', body: route('9') });
    assert.equal(missing.statusCode, 400);
    assert.equal(jsonOf(missing)['error_msg'], 'failed to fetch proto info by proto id [9], response code: 404');
    assert.equal((await put('9', GREETER)).statusCode, 201);
    assert.equal((await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/routes/t', body: route('9') })).statusCode, 201);
    const deleted = await admin(fixture().app, { method: 'DELETE', url: '/apisix/admin/protos/9' });
    assert.equal(deleted.statusCode, 400);
    assert.equal(jsonOf(deleted)['error_msg'], 'can not delete this proto, route [t] is still using it now');
  });

  it('grpc-transcode and grpc-web are refused in global rules and on consumers', async () => {
    const global = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/global_rules/1', body: { plugins: { 'grpc-web': {} } } });
    assert.equal(global.statusCode, 400);
    assert.match(String(jsonOf(global)['error_msg']), /grpc-web runs on routes/);
    const consumer = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/consumers', body: { username: 'web', plugins: { 'grpc-web': {} } } });
    assert.equal(consumer.statusCode, 400);
  });

  it('resolves types across imports at write time: a type no file defines is a 400, and nothing is written', async () => {
    const res = await put('lost', 'syntax = "proto3";\nmessage X { nowhere.Type t = 1; }\n');
    assert.equal(res.statusCode, 400);
    assert.match(String(jsonOf(res)['error_msg']), /invalid proto content: .*nowhere\.Type/);
    assert.equal((await admin(fixture().app, { method: 'GET', url: '/apisix/admin/protos/lost' })).statusCode, 404);
    assert.equal((await put('base', 'syntax = "proto3";\npackage base;\nmessage Id { string v = 1; }\n')).statusCode, 201);
    assert.equal((await put('uses', 'syntax = "proto3";\nimport "base.proto";\nmessage Y { base.Id id = 1; }\n')).statusCode, 201);
    const wrong = await put('wrong', 'syntax = "proto3";\nimport "base.proto";\nmessage Z { base.Missing m = 1; }\n');
    assert.equal(wrong.statusCode, 400);
  });

  it("a grpc-transcode route naming a service or method its proto does not define is a 400", async () => {
    assert.equal((await put('g', GREETER)).statusCode, 201);
    const route = (service: string, method: string): object => ({
      uri: '/hello',
      upstream: { nodes: { '127.0.0.1:1': 1 } },
      plugins: { 'grpc-transcode': { proto_id: 'g', service, method } },
    });
    const noService = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/routes/t', body: route('helloworld.Nope', 'SayHello') });
    assert.equal(noService.statusCode, 400);
    assert.equal(jsonOf(noService)['error_msg'], 'failed to check the configuration of plugin grpc-transcode err: proto g defines no service helloworld.Nope');
    const noMethod = await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/routes/t', body: route('helloworld.Greeter', 'Nope') });
    assert.equal(noMethod.statusCode, 400);
    assert.equal((await admin(fixture().app, { method: 'PUT', url: '/apisix/admin/routes/t', body: route('helloworld.Greeter', 'SayHello') })).statusCode, 201);
  });
});
