/**
 * The admin endpoints of every resource type in admin/resources.ts, with APISIX's v3 semantics and shapes
 * (apisix-compat §2.3): `GET /apisix/admin/<type>[/<id>]`, `PUT /apisix/admin/<type>[/<id>]`,
 * `DELETE /apisix/admin/<type>/<id>`. A PUT is checked in APISIX's order (`check_conf` in
 * apisix/admin/resource.lua): body present, id, forbidden timestamps, then the shared schema; nothing is written
 * unless all pass. POST and PATCH are later additions to this file.
 */
import type { FastifyInstance } from 'fastify';
import { resourceKey } from '../../shared/etcd-keys.ts';
import { AdminBadRequest, InvalidConfiguration, KeyNotFound } from '../../shared/errors.ts';
import { validateResource } from '../../shared/validate.ts';
import type { ResourceStore, StoredItem } from '../store/resource-store.ts';
import { parseJsonBody } from './request-body.ts';
import { isJsonObject, isValidId, publicValue, resolveKind, type ResourceKind } from './resources.ts';

interface TypeParams {
  type: string;
}

interface ItemParams extends TypeParams {
  id: string;
}

/** The admin layer sets these itself; clients may not (`check_forbidden_properties`, note APISIX's two spaces). */
const FORBIDDEN_PROPERTIES = ['create_time', 'update_time'] as const;

export function registerResourceRoutes(app: FastifyInstance, store: ResourceStore): void {
  app.get<{ Params: TypeParams }>('/apisix/admin/:type', async (request) => {
    return listResources(store, resolveKind(request.params.type));
  });

  app.get<{ Params: ItemParams }>('/apisix/admin/:type/:id', async (request) => {
    const kind = resolveKind(request.params.type);
    const { id } = request.params;
    const item = isValidId(id) ? await store.get(kind.type, id) : undefined;
    if (item === undefined) throw new KeyNotFound(resourceKey(store.prefix, kind.type, id));
    return itemView(store, kind, id, item);
  });

  app.put<{ Params: ItemParams }>('/apisix/admin/:type/:id', async (request, reply) => {
    const kind = resolveKind(request.params.type);
    const result = await putResource(store, kind, request.params.id, request.body);
    return reply.code(result.status).send(result.body);
  });

  // APISIX also takes the id from the body when the URL has none (`PUT /apisix/admin/routes` with `"id": "1"`).
  app.put<{ Params: TypeParams }>('/apisix/admin/:type', async (request, reply) => {
    const kind = resolveKind(request.params.type);
    const result = await putResource(store, kind, undefined, request.body);
    return reply.code(result.status).send(result.body);
  });

  app.delete<{ Params: ItemParams }>('/apisix/admin/:type/:id', async (request) => {
    const kind = resolveKind(request.params.type);
    const { id } = request.params;
    const key = resourceKey(store.prefix, kind.type, id);
    const deleted = isValidId(id) && (await store.delete(kind.type, id));
    if (!deleted) throw new KeyNotFound(key);
    // `deleted` is a string in APISIX's v3 shape: etcd's deleted count as text.
    return { deleted: '1', key };
  });

  app.delete<{ Params: TypeParams }>('/apisix/admin/:type', async (request) => {
    const kind = resolveKind(request.params.type);
    throw new AdminBadRequest(`missing ${kind.singular} id`);
  });
}

async function listResources(store: ResourceStore, kind: ResourceKind): Promise<object> {
  const items = await store.list(kind.type);
  const list = items.map((item) => itemView(store, kind, item.id, item));
  // APISIX's empty list prints as `{"list":[],"total":0}`; the order of keys is kept for byte-for-byte parity.
  return list.length === 0 ? { list, total: 0 } : { total: list.length, list };
}

function itemView(store: ResourceStore, kind: ResourceKind, id: string, item: StoredItem): object {
  return {
    key: resourceKey(store.prefix, kind.type, id),
    value: publicValue(kind, item.value),
    createdIndex: item.createRevision,
    modifiedIndex: item.modRevision,
  };
}

interface PutResponse {
  status: 200 | 201;
  body: { key: string; value: unknown };
}

async function putResource(
  store: ResourceStore,
  kind: ResourceKind,
  pathId: string | undefined,
  rawBody: unknown,
): Promise<PutResponse> {
  const body = parseJsonBody(rawBody);
  if (!isJsonObject(body)) throw invalidConfiguration(kind, body);
  const id = resolveId(kind, pathId, body);
  for (const property of FORBIDDEN_PROPERTIES) {
    if (Object.hasOwn(body, property)) throw new AdminBadRequest(`the property is forbidden:  ${property}`);
  }
  // The path id wins and is stored as a string, as APISIX's `conf.id = id`; the schema then checks its pattern.
  const candidate: Record<string, unknown> = { ...body, id };
  const checked = validateResource(kind.type, candidate, { atWrite: true });
  if (!checked.ok) throw new InvalidConfiguration(checked.error);

  const now = Math.floor(Date.now() / 1000);
  // Only the body plus id and timestamps is stored: schema defaults are not written (APISIX 3.14+, §1.6).
  const result = await store.put(kind.type, id, (existing) => ({
    ...candidate,
    create_time: createTimeOf(existing) ?? now,
    update_time: now,
  }));
  return {
    status: result.created ? 201 : 200,
    body: { key: resourceKey(store.prefix, kind.type, id), value: publicValue(kind, result.value) },
  };
}

/** The URL id, which a body id must equal (compared as text, so `"id": 1` matches `/routes/1`), or the body id. */
function resolveId(kind: ResourceKind, pathId: string | undefined, body: Record<string, unknown>): string {
  const bodyId = body['id'];
  if (pathId !== undefined) {
    if (bodyId !== undefined && String(bodyId) !== pathId) throw new AdminBadRequest(`wrong ${kind.singular} id`);
    return pathId;
  }
  if (bodyId === undefined) throw new AdminBadRequest(`missing ${kind.singular} id`);
  if (typeof bodyId === 'string' || (typeof bodyId === 'number' && Number.isInteger(bodyId))) return String(bodyId);
  throw invalidConfiguration(kind, body);
}

/** The schema's own message for a value already known to be invalid. */
function invalidConfiguration(kind: ResourceKind, value: unknown): InvalidConfiguration {
  const checked = validateResource(kind.type, value);
  return new InvalidConfiguration(checked.ok ? 'unexpected value' : checked.error);
}

/** PUT replaces the object but keeps when it was created (`inject_timestamp` in apisix/admin/utils.lua). */
function createTimeOf(existing: StoredItem | undefined): number | undefined {
  if (existing === undefined || !isJsonObject(existing.value)) return undefined;
  const createTime = existing.value['create_time'];
  return typeof createTime === 'number' && Number.isInteger(createTime) ? createTime : undefined;
}
