/**
 * Issue #17: protos written through the admin API reach the data plane compiled with their imports; one whose
 * types do not resolve (refused by the admin API, written to etcd by hand) is kept out of the compiled set with its
 * error, while the others
 * (and the routes) are unaffected; a changed import recompiles the proto that imports it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { putEtcdJson } from '../flow/child-gateway.ts';
import { startGateway, type GatewayFixture } from './gateway-fixture.ts';

describe('protos in the data plane', () => {
  let gw: GatewayFixture;

  before(async () => {
    gw = await startGateway();
  });

  after(async () => {
    await gw.close();
  });

  const put = async (id: string, content: string): Promise<void> => {
    const res = await gw.admin('PUT', `/protos/${id}`, { content });
    assert.ok(res.status === 200 || res.status === 201, JSON.stringify(res.body));
  };

  test('compiled with their imports; an unresolved type is kept out with its error; a changed import recompiles', async () => {
    await put('common', 'syntax = "proto3";\npackage common;\nmessage Id { string value = 1; }\n');
    await put('main', 'syntax = "proto3";\npackage shop;\nimport "common.proto";\nmessage Order { common.Id id = 1; }\n');
    // The admin API refuses a type no file defines (admin-protos.test.ts); etcd written by hand can still hold one.
    const refused = await gw.admin('PUT', '/protos/broken', { content: 'syntax = "proto3";\nmessage X { nowhere.Type t = 1; }\n' });
    assert.equal(refused.status, 400);
    await putEtcdJson(gw.etcd.endpoint, '/apisix/protos/broken', { content: 'syntax = "proto3";\nmessage X { nowhere.Type t = 1; }\n' });
    await gw.waitForSnapshot((s) => s.protos.get('main') !== undefined && s.protos.error('broken') !== undefined, 'protos compiled');
    const snapshot = gw.dataPlane.snapshots.current();
    assert.equal(snapshot.protos.get('main')?.root.lookupType('shop.Order').fields['id']?.resolvedType?.fullName, '.common.Id');
    assert.match(snapshot.protos.error('broken') ?? '', /nowhere\.Type/);
    const compiled = snapshot.protos.get('main');
    await put('common', 'syntax = "proto3";\npackage common;\nmessage Id { string value = 1; int64 n = 2; }\n');
    await gw.waitForSnapshot((s) => s.protos.get('main') !== compiled, 'main recompiled');
    assert.ok(gw.dataPlane.snapshots.current().protos.get('main')?.root.lookupType('common.Id').fields['n']);
  });
});
