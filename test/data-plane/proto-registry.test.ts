/**
 * Issue #17: the protos of a snapshot compiled with their imports (other protos by "<id>.proto", well-known types),
 * every type resolved; a proto that cannot be compiled is left out with its error while the others compile; and a
 * rebuilt registry keeps the compiled Root of a proto whose text and imports did not change.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ConfigItem } from '../../data-plane/config/config-state.ts';
import { ProtoRegistry } from '../../data-plane/transcode/proto-registry.ts';
import type { ProtoConf } from '../../shared/schema/proto.ts';

function item(id: string, content: string, modRevision = '1'): ConfigItem<ProtoConf> {
  return Object.freeze({ id, value: { id, content }, modRevision });
}

const COMMON = item('common', 'syntax = "proto3";\npackage common;\nmessage Id { string value = 1; }\n');
const MAIN = item(
  'main',
  'syntax = "proto3";\npackage shop;\nimport "common.proto";\nimport "google/protobuf/timestamp.proto";\n' +
    'message Order { common.Id id = 1; google.protobuf.Timestamp at = 2; }\nservice Orders { rpc Get (common.Id) returns (Order); }\n',
);
const BROKEN = item('broken', 'syntax = "proto3";\nmessage X { nowhere.Type t = 1; }\n');

describe('proto registry', () => {
  test('compiles a proto with its imports: types resolve across files and to the well-known types', () => {
    const registry = new ProtoRegistry(new Map([['common', COMMON], ['main', MAIN]]));
    const root = registry.get('main')?.root;
    assert.ok(root !== undefined, registry.error('main'));
    const order = root.lookupType('shop.Order');
    assert.equal(order.fields['id']?.resolvedType?.fullName, '.common.Id');
    assert.equal(order.fields['at']?.resolvedType?.fullName, '.google.protobuf.Timestamp');
    const get = root.lookupService('shop.Orders').methods['Get'];
    assert.equal(get?.resolvedResponseType?.fullName, '.shop.Order');
    assert.deepEqual(registry.get('main')?.items.map((i) => i.id), ['main', 'common']);
  });

  test('a proto that cannot compile is left out with its error; the others compile', () => {
    const registry = new ProtoRegistry(new Map([['broken', BROKEN], ['main', MAIN], ['lonely', item('lonely', 'syntax = "proto3";\nimport "gone.proto";\n')]]));
    assert.equal(registry.get('broken'), undefined);
    assert.match(registry.error('broken') ?? '', /no such Type or Enum 'nowhere.Type'/);
    assert.match(registry.error('lonely') ?? '', /import "gone.proto": no proto gone/);
    assert.match(registry.error('main') ?? '', /import "common.proto": no proto common/, 'main imports a proto that is not there');
    assert.equal(new ProtoRegistry(new Map([['common', COMMON]])).error('common'), undefined);
  });

  test('a rebuilt registry keeps what did not change, and recompiles a proto whose import changed', () => {
    const first = new ProtoRegistry(new Map([['common', COMMON], ['main', MAIN]]));
    const other = item('other', 'syntax = "proto3";\nmessage O {}\n');
    const second = new ProtoRegistry(new Map([['common', COMMON], ['main', MAIN], ['other', other]]), first);
    assert.equal(second.get('main'), first.get('main'), 'unchanged: the same compiled proto');
    const common2 = item('common', 'syntax = "proto3";\npackage common;\nmessage Id { string value = 1; int64 n = 2; }\n', '2');
    const third = new ProtoRegistry(new Map([['common', common2], ['main', MAIN], ['other', other]]), second);
    assert.notEqual(third.get('main'), second.get('main'), 'its import changed: compiled again');
    assert.ok(third.get('main')?.root.lookupType('common.Id').fields['n']);
    assert.equal(third.get('other'), second.get('other'));
  });
});
