/**
 * The admin endpoints of every resource type in admin/resources.ts, with APISIX's v3 semantics and shapes
 * (docs/admin-api.md), declared per type (and per alias, hidden from the OpenAPI document) so each gets its own
 * documented schema:
 *
 *   GET    /apisix/admin/<type>                 list, with filters and paging (admin/list-query.ts)
 *   GET    /apisix/admin/<type>/<id>            one, or 404 `{"message":"Key not found"}`
 *   PUT    /apisix/admin/<type>[/<id>]          create (201) or replace (200)
 *   POST   /apisix/admin/<type>                 create with a generated id (201)
 *   PATCH  /apisix/admin/<type>/<id>[/<path>]   merge, or replace one field (admin/patch.ts)
 *   DELETE /apisix/admin/<type>/<id>            refused while referenced unless `?force=true`
 *
 * Anything else under /apisix/admin is `Unsupported resource type: X` for an unknown type and `not found` for an
 * unsupported method on a known one, as APISIX answers.
 */
import type { FastifyInstance } from 'fastify';
import type { Keyring } from '../../shared/crypto.ts';
import { resourceKey } from '../../shared/etcd-keys.ts';
import { AdminBadRequest, AdminMethodNotAllowed, AdminRouteNotFound, KeyNotFound } from '../../shared/errors.ts';
import type { ResourceStore, StoredItem } from '../store/resource-store.ts';
import { applyListQuery, parseListQuery } from './list-query.ts';
import { operationSchema, type Operation } from './openapi.ts';
import { checkNoReferrers, deleteRefusal } from './references.ts';
import { patchResource, postResource, putResource, type WriteDeps } from './resource-writes.ts';
import { KINDS, isJsonObject, isValidId, publicValue, resolveKind, type ResourceKind } from './resources.ts';

export interface ResourceRouteDeps {
  store: ResourceStore;
  keyring: Keyring;
}

interface IdParams {
  id: string;
}

interface SubPathParams extends IdParams {
  '*': string;
}

/** Admin path segments that are endpoints of their own, not resource types. */
const OTHER_ENDPOINTS: ReadonlySet<string> = new Set(['schema', 'openapi.json', 'plugins']);

export function registerResourceRoutes(app: FastifyInstance, deps: ResourceRouteDeps): void {
  for (const kind of KINDS) {
    for (const segment of [kind.type, ...kind.aliases]) registerKind(app, deps, kind, segment, segment !== kind.type);
  }
  const fallback = async (request: { params: unknown }): Promise<never> => {
    const type = isJsonObject(request.params) ? request.params['type'] : undefined;
    const segment = typeof type === 'string' ? type : '';
    if (OTHER_ENDPOINTS.has(segment)) throw new AdminRouteNotFound();
    resolveKind(segment);
    throw new AdminRouteNotFound();
  };
  app.all('/apisix/admin/:type', { schema: { hide: true } }, fallback);
  app.all('/apisix/admin/:type/*', { schema: { hide: true } }, fallback);
}

function registerKind(app: FastifyInstance, deps: ResourceRouteDeps, kind: ResourceKind, segment: string, hidden: boolean): void {
  const { store } = deps;
  const writes: WriteDeps = { store, keyring: deps.keyring };
  const base = `/apisix/admin/${segment}`;
  const schema = (operation: Operation): { schema: ReturnType<typeof operationSchema> } => ({
    schema: operationSchema(kind, operation, hidden),
  });

  app.get(base, schema('list'), async (request) => {
    const query = parseListQuery(request.query);
    const { items } = await store.list(kind.type);
    const { total, list } = applyListQuery(items, query);
    const views = list.map((item) => itemView(store, kind, item.id, item));
    // APISIX's empty list prints as `{"list":[],"total":0}`; the order of keys is kept for byte-for-byte parity.
    return views.length === 0 ? { list: views, total } : { total, list: views };
  });

  app.get<{ Params: IdParams }>(`${base}/:id`, schema('get'), async (request) => {
    const { id } = request.params;
    const item = isValidId(id) ? await store.get(kind.type, id) : undefined;
    if (item === undefined) throw new KeyNotFound(resourceKey(store.prefix, kind.type, id));
    return itemView(store, kind, id, item);
  });

  app.put<{ Params: IdParams }>(`${base}/:id`, schema('put'), async (request, reply) => {
    const result = await putResource(writes, kind, request.params.id, request.body);
    return reply.code(result.status).send(result.body);
  });

  // APISIX also takes the id from the body when the URL has none (`PUT /apisix/admin/routes` with `"id": "1"`).
  app.put(base, schema('putBodyId'), async (request, reply) => {
    const result = await putResource(writes, kind, undefined, request.body);
    return reply.code(result.status).send(result.body);
  });

  app.post(base, schema('post'), async (request, reply) => {
    if (kind.idField !== undefined || kind.noPost === true) throw new AdminMethodNotAllowed('POST', kind.singular);
    const result = await postResource(writes, kind, request.body);
    return reply.code(result.status).send(result.body);
  });

  app.patch<{ Params: IdParams }>(`${base}/:id`, schema('patch'), async (request) => {
    if (kind.idField !== undefined) throw new AdminMethodNotAllowed('PATCH', kind.singular);
    return (await patchResource(writes, kind, request.params.id, undefined, request.body)).body;
  });

  app.patch<{ Params: SubPathParams }>(`${base}/:id/*`, schema('patchSubPath'), async (request) => {
    if (kind.idField !== undefined) throw new AdminMethodNotAllowed('PATCH', kind.singular);
    return (await patchResource(writes, kind, request.params.id, request.params['*'], request.body)).body;
  });

  app.delete<{ Params: IdParams }>(`${base}/:id`, schema('delete'), async (request) => {
    const { id } = request.params;
    const key = resourceKey(store.prefix, kind.type, id);
    // Only the exact text `true` skips the check, as in APISIX (`?force=anyvalue` does not).
    const force = isJsonObject(request.query) && request.query['force'] === 'true';
    const check = force ? undefined : () => checkNoReferrers(store, kind.type, id, deleteRefusal(kind.type));
    const deleted = isValidId(id) && (await store.delete(kind.type, id, check));
    if (!deleted) throw new KeyNotFound(key);
    // `deleted` is a string in APISIX's v3 shape: etcd's deleted count as text.
    return { deleted: '1', key };
  });

  app.delete(base, schema('deleteNoId'), async () => {
    throw new AdminBadRequest(`missing ${kind.singular} id`);
  });
}

function itemView(store: ResourceStore, kind: ResourceKind, id: string, item: StoredItem): object {
  return {
    key: resourceKey(store.prefix, kind.type, id),
    value: publicValue(kind, item.value),
    createdIndex: item.createRevision,
    modifiedIndex: item.modRevision,
  };
}
