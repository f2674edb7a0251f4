/**
 * What the admin-input security tests share (issue #11 case 8): the control-plane fixture with its real etcd, a
 * picture of everything etcd holds (keys, values and mod revisions) to prove a refused write changed nothing, and a
 * legitimate write run beside each attack to prove the API still works for everyone else.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { PREFIX, SEED_ROUTE, admin, jsonOf, startAdminFixture, type AdminFixture, type AdminRequest } from '../control-plane/admin-fixture.ts';

export type Json = Record<string, unknown>;

/** The seed route's URL, stored before each test when the fixture is asked to seed it. */
export const SEEDED_ROUTE_URL = '/apisix/admin/routes/1';

/**
 * Registers the hooks of one describe(): a fixture for the whole suite, and before each test an empty prefix (plus
 * the seed route at SEEDED_ROUTE_URL when `seedRoute`). Returns the fixture's getter, valid inside tests.
 */
export function useAdminFixture(options: { seedRoute: boolean }): () => AdminFixture {
  let fx: AdminFixture | undefined;
  const current = (): AdminFixture => {
    assert.ok(fx !== undefined, 'the admin fixture is used outside a test');
    return fx;
  };
  before(async () => {
    fx = await startAdminFixture();
  });
  after(async () => {
    await fx?.close();
  });
  beforeEach(async () => {
    await current().raw.delete().prefix(`${PREFIX}/`).exec();
    if (!options.seedRoute) return;
    const res = await admin(current().app, { method: 'PUT', url: SEEDED_ROUTE_URL, body: SEED_ROUTE });
    assert.equal(res.statusCode, 201, res.body);
  });
  return current;
}

/** Every key under the prefix with its value and mod revision, sorted: equal pictures mean nothing was written. */
export async function etcdPicture(fx: AdminFixture): Promise<string[]> {
  const response = await fx.raw.getAll().prefix(`${PREFIX}/`).exec();
  return response.kvs
    .map((kv) => `${kv.key.toString()} @${kv.mod_revision} ${kv.value.toString()}`)
    .sort();
}

/**
 * Sends `request`, asserts APISIX's 400 `{"error_msg": …}` containing `message`, and asserts etcd holds exactly what
 * it held before. Returns the error message for further checks.
 */
export async function assertRefused(fx: AdminFixture, request: AdminRequest, message: string): Promise<string> {
  const before = await etcdPicture(fx);
  const res = await admin(fx.app, request);
  assert.equal(res.statusCode, 400, res.body);
  const errorMsg = jsonOf(res)['error_msg'];
  assert.equal(typeof errorMsg, 'string', res.body);
  assert.ok(String(errorMsg).includes(message), `expected ${JSON.stringify(message)} in ${String(errorMsg)}`);
  assert.deepEqual(await etcdPicture(fx), before, 'a refused write changed etcd');
  return String(errorMsg);
}

/** The JSON object stored at `<prefix>/<key>` (e.g. `routes/1`); fails the test when the key is absent. */
export async function storedValue(fx: AdminFixture, key: string): Promise<Json> {
  const text = await fx.raw.get(`${PREFIX}/${key}`).string();
  assert.ok(text !== null, `nothing stored at ${key}`);
  return JSON.parse(text) as Json;
}

/** The seed route under a fresh id, written and read back: the API still serves a legitimate client. */
export async function assertLegitimatePutWorks(fx: AdminFixture, id = 'legit'): Promise<void> {
  const res: LightMyRequestResponse = await admin(fx.app, { method: 'PUT', url: `/apisix/admin/routes/${id}`, body: SEED_ROUTE });
  assert.ok(res.statusCode === 200 || res.statusCode === 201, res.body);
  assert.equal((await storedValue(fx, `routes/${id}`))['uri'], SEED_ROUTE['uri']);
}

/** `{"a":{"a":…{}}}` nested `levels` objects deep (levels ≥ 1), as text: JSON.stringify would overflow the stack. */
export function nestedObjectText(levels: number): string {
  return `${'{"a":'.repeat(levels - 1)}{}${'}'.repeat(levels - 1)}`;
}

/** A route body whose only node's `metadata` is `metadataText` (raw JSON text, spliced in as is). */
export function routeWithMetadataText(metadataText: string): string {
  return `{"uri":"/deep.Svc/Call","upstream":{"nodes":[{"host":"127.0.0.1","port":50051,"weight":1,"metadata":${metadataText}}]}}`;
}

/** Object.prototype has none of the fields an attacker tried to plant (checked after every pollution attempt). */
export function assertPrototypeClean(): void {
  const probe: Json = {};
  for (const field of ['nodes', 'polluted', 'upstream']) {
    assert.equal(probe[field], undefined, `Object.prototype.${field} was set`);
  }
}
