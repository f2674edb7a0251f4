/**
 * The data plane skips what the admin API refuses (issue #11 cases 2 and 8): both validate with shared/validate.ts,
 * whose iterative shape check runs before ajv, so a value written straight into etcd (by anyone who can write etcd,
 * bypassing the admin API) nested 10,000 levels deep, carrying a `__proto__` key, a 3,000,000 s timeout or an
 * RSA-1024 certificate is logged and skipped like any invalid value, never thrown inside the snapshot build.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigStore, type RawKeyValue } from '../../data-plane/config/config-state.ts';
import { buildSnapshot } from '../../data-plane/config/snapshots.ts';
import { RESOURCE_TYPES } from '../../shared/etcd-keys.ts';
import { MAX_JSON_DEPTH } from '../../shared/json-bounds.ts';
import { silentLogger } from '../../shared/logger.ts';
import { validateResource } from '../../shared/validate.ts';
import { makeCert } from '../helpers/certs.ts';
import { nestedObjectText, routeWithMetadataText } from './admin-kit.ts';
import { opensslCert } from './admin-openssl-certs.ts';

const log = silentLogger();
const GOOD_UPSTREAM = '{"nodes":{"127.0.0.1:50051":1}}';

function kv(key: string, text: string, revision: number): RawKeyValue {
  return { key: Buffer.from(`/apisix/${key}`), value: Buffer.from(text), mod_revision: String(revision) };
}

describe('data plane: the admin API bounds apply to values read from etcd', () => {
  it('refuses a value nested 10,000 levels deep for every resource type without throwing', () => {
    for (const type of RESOURCE_TYPES) {
      const value = JSON.parse(`{"id":"1","deep":${nestedObjectText(10_000)}}`) as unknown;
      const result = validateResource(type, value);
      assert.equal(result.ok, false, type);
      assert.ok(result.error.startsWith(`nested deeper than ${MAX_JSON_DEPTH} levels`), `${type}: ${JSON.stringify(result)}`);
    }
  });

  it('skips deep, polluting, oversized and unservable values from etcd and applies the rest', async () => {
    const rsa1024 = await opensslCert('rsa1024');
    const ec = await makeCert({ sans: ['test.com'] });
    const store = new ConfigStore('/apisix', log);
    let revision = 1;
    const state = store.replaceAll(
      [
        kv('routes/good', '{"uri":"/good.Svc/Call","upstream_id":"ok"}', ++revision),
        kv('routes/deep', routeWithMetadataText(nestedObjectText(10_000)), ++revision),
        kv('routes/proto', routeWithMetadataText('{"__proto__":{"polluted":true}}'), ++revision),
        kv('routes/slow', '{"uri":"/slow.Svc/Call","upstream":{"nodes":{"127.0.0.1:1":1},"timeout":{"connect":3000000,"send":1,"read":1}}}', ++revision),
        kv('upstreams/ok', GOOD_UPSTREAM, ++revision),
        kv('upstreams/idle', '{"nodes":{"127.0.0.1:1":1},"keepalive_pool":{"idle_timeout":3000000}}', ++revision),
        kv('ssls/weak', JSON.stringify({ ...rsa1024, sni: 'weak.test' }), ++revision),
        kv('ssls/good', JSON.stringify({ ...ec, sni: 'test.com' }), ++revision),
      ],
      String(revision),
    );
    assert.deepEqual([...state.routes.keys()], ['good']);
    assert.deepEqual([...state.upstreams.keys()], ['ok']);
    assert.deepEqual([...state.ssls.keys()], ['good']);
    const snapshot = buildSnapshot(state, undefined, log);
    assert.ok(snapshot.targets.has('good'), 'the valid route was not applied');
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });
});
