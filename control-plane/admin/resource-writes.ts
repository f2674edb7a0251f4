/**
 * PUT, POST and PATCH of any resource type, in APISIX's order (`check_conf` in apisix/admin/resource.lua):
 * body present, id, forbidden timestamps, the shared schema and its cross-field checks, then
 * the references against etcd; nothing is written unless all pass, and the write is one etcd transaction.
 *
 * Private keys are validated in clear and stored encrypted (shared/crypto.ts): a body may carry a key already
 * encrypted with the keyring (copied from etcd or from APISIX), and a PATCH decrypts the stored keys it keeps, so
 * every write re-checks the certificate pair and re-encrypts with the keyring's first entry.
 *
 * Timestamps (`inject_timestamp` in apisix/admin/utils.lua): `create_time` is kept across PUT and PATCH (set to now
 * when the stored object has none), `update_time` is always now. Clients may not send either, on any method:
 * APISIX lets a PATCH rewrite them, which makes them meaningless for auditing.
 */
import { decryptSecrets, encryptSecrets, type Keyring } from '../../shared/crypto.ts';
import { resourceKey } from '../../shared/etcd-keys.ts';
import { AdminBadRequest, InvalidConfiguration, KeyNotFound } from '../../shared/errors.ts';
import { validateResource } from '../../shared/validate.ts';
import type { Precondition, ResourceStore, StoredItem } from '../store/resource-store.ts';
import { mergePatch, setAtSubPath, splitSubPath } from './patch.ts';
import { checkNoReferrers, checkReferences, sslType, type RefusalMessage } from './references.ts';
import { parseJsonBody } from './request-body.ts';
import { RESOURCE_KINDS, isJsonObject, isValidId, publicValue, type ResourceKind } from './resources.ts';

export interface WriteDeps {
  store: ResourceStore;
  keyring: Keyring;
}

export interface WriteResponse {
  status: 200 | 201;
  body: { key: string; value: unknown };
}

/** The admin layer sets these itself; clients may not (`check_forbidden_properties`, note APISIX's two spaces). */
const FORBIDDEN_PROPERTIES: ReadonlySet<string> = new Set(['create_time', 'update_time']);

/** `PUT /apisix/admin/<type>/<id>`, or `PUT /apisix/admin/<type>` with the id in the body. */
export async function putResource(deps: WriteDeps, kind: ResourceKind, pathId: string | undefined, rawBody: unknown): Promise<WriteResponse> {
  const body = parseJsonBody(rawBody);
  if (!isJsonObject(body)) throw invalidConfiguration(kind, body);
  if (kind.idField === 'username') {
    // A consumer is named by its username (APISIX: `missing consumer name`); a URL name must agree with it.
    const username = body['username'];
    if (pathId !== undefined && username !== undefined && username !== pathId) throw new AdminBadRequest(`wrong ${kind.singular} name`);
    const name = pathId ?? username;
    if (name === undefined) throw new AdminBadRequest(`missing ${kind.singular} name`);
    if (typeof name !== 'string' || !isValidId(name)) throw invalidConfiguration(kind, { ...body, username: name });
    rejectForbidden(Object.keys(body));
    const plain = checked(deps, kind, { ...body, username: name });
    return write(deps, kind, name, () => plain);
  }
  const id = resolveId(kind, pathId, body);
  rejectForbidden(Object.keys(body));
  const plain = checked(deps, kind, { ...body, id });
  return write(deps, kind, id, () => plain);
}

/** `POST /apisix/admin/<type>`: the id is generated (20 digits from an etcd revision), a body id is refused. */
export async function postResource(deps: WriteDeps, kind: ResourceKind, rawBody: unknown): Promise<WriteResponse> {
  const body = parseJsonBody(rawBody);
  if (!isJsonObject(body)) throw invalidConfiguration(kind, body);
  if (Object.hasOwn(body, 'id')) throw new AdminBadRequest(`wrong ${kind.singular} id, do not need it`);
  rejectForbidden(Object.keys(body));
  // Validated before an id is drawn, so a refused body does not use one up.
  checked(deps, kind, body);
  const id = await deps.store.nextId();
  const plain = checked(deps, kind, { ...body, id });
  const response = await write(deps, kind, id, () => plain);
  return { ...response, status: 201 };
}

/** `PATCH /apisix/admin/<type>/<id>[/<sub/path>]`: merge into (or replace a field of) the stored object. */
export async function patchResource(
  deps: WriteDeps,
  kind: ResourceKind,
  id: string,
  subPath: string | undefined,
  rawBody: unknown,
): Promise<WriteResponse> {
  const body = parseJsonBody(rawBody);
  const segments = subPath === undefined ? undefined : splitSubPath(subPath);
  if (segments === undefined || segments.length === 0) {
    if (!isJsonObject(body)) throw invalidConfiguration(kind, body);
    rejectForbidden(Object.keys(body));
  } else {
    rejectForbidden(segments.slice(0, 1));
  }
  if (!isValidId(id)) throw new KeyNotFound(resourceKey(deps.store.prefix, kind.type, id));
  return write(deps, kind, id, (existing) => {
    if (existing === undefined || !isJsonObject(existing.value)) {
      throw new KeyNotFound(resourceKey(deps.store.prefix, kind.type, id));
    }
    const current = decryptSecrets(kind.type, existing.value, deps.keyring);
    if (!isJsonObject(current)) throw new KeyNotFound(resourceKey(deps.store.prefix, kind.type, id));
    const merged = segments === undefined || segments.length === 0 ? mergePatch(current, body) : setAtSubPath(current, segments, body);
    if (!isJsonObject(merged)) throw invalidConfiguration(kind, merged);
    const mergedId = merged['id'];
    if (mergedId !== undefined && idText(mergedId) !== id) throw new AdminBadRequest(`wrong ${kind.singular} id`);
    return checked(deps, kind, { ...merged, id });
  });
}

/**
 * The guarded write: `derive` turns what is stored into the validated object in clear; references are checked
 * against etcd and become preconditions; timestamps are set and private keys encrypted last.
 */
async function write(
  deps: WriteDeps,
  kind: ResourceKind,
  id: string,
  derive: (existing: StoredItem | undefined) => Record<string, unknown>,
): Promise<WriteResponse> {
  const result = await deps.store.put(kind.type, id, async (existing) => {
    const plain = derive(existing);
    const preconditions = await integrity(deps.store, kind, id, plain, existing);
    const now = Math.floor(Date.now() / 1000);
    // Only the body plus id and timestamps is stored: schema defaults are not written (APISIX 3.14+, §1.6).
    const stamped = { ...plain, create_time: createTimeOf(existing) ?? now, update_time: now };
    return { value: encryptSecrets(kind.type, stamped, deps.keyring), preconditions };
  });
  return {
    status: result.created ? 201 : 200,
    body: { key: resourceKey(deps.store.prefix, kind.type, id), value: publicValue(kind, result.value) },
  };
}

async function integrity(
  store: ResourceStore,
  kind: ResourceKind,
  id: string,
  value: Record<string, unknown>,
  existing: StoredItem | undefined,
): Promise<Precondition[]> {
  const preconditions = await checkReferences(store, kind.type, value, id);
  // A client certificate in use by upstreams must stay one: turning it into a server certificate breaks their mTLS.
  if (kind.type === 'ssls' && existing !== undefined && sslType(existing.value) === 'client' && sslType(value) !== 'client') {
    const refusal: RefusalMessage = (referrerType, referrerId) =>
      `can not change the type of this ssl, ${RESOURCE_KINDS[referrerType].singular} [${referrerId}] is still using it now`;
    preconditions.push(...(await checkNoReferrers(store, 'ssls', id, refusal)));
  }
  return preconditions;
}

/** Decrypts any private key the value carries, then validates it as it will be served. */
function checked(deps: WriteDeps, kind: ResourceKind, value: Record<string, unknown>): Record<string, unknown> {
  const plain = decryptSecrets(kind.type, value, deps.keyring);
  const result = validateResource(kind.type, plain, { atWrite: true });
  if (!result.ok) throw new InvalidConfiguration(result.error);
  return plain as Record<string, unknown>;
}

function rejectForbidden(fields: readonly string[]): void {
  for (const field of fields) {
    if (FORBIDDEN_PROPERTIES.has(field)) throw new AdminBadRequest(`the property is forbidden:  ${field}`);
  }
}

/** A body id as text, to compare with the URL's; an object or array never equals one (APISIX's tostring() neither). */
function idText(value: unknown): string | undefined {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' ? String(value) : undefined;
}

/** The URL id, which a body id must equal (compared as text, so `"id": 1` matches `/routes/1`), or the body id. */
function resolveId(kind: ResourceKind, pathId: string | undefined, body: Record<string, unknown>): string {
  const bodyId = body['id'];
  if (pathId !== undefined) {
    if (bodyId !== undefined && idText(bodyId) !== pathId) throw new AdminBadRequest(`wrong ${kind.singular} id`);
    return pathId;
  }
  if (bodyId === undefined) throw new AdminBadRequest(`missing ${kind.singular} id`);
  if (typeof bodyId === 'string' || (typeof bodyId === 'number' && Number.isInteger(bodyId))) return String(bodyId);
  throw invalidConfiguration(kind, body);
}

/** The schema's own message for a value already known to be invalid. */
function invalidConfiguration(kind: ResourceKind, value: unknown): InvalidConfiguration {
  const result = validateResource(kind.type, value);
  return new InvalidConfiguration(result.ok ? 'unexpected value' : result.error);
}

/** PUT replaces the object but keeps when it was created (`inject_timestamp` in apisix/admin/utils.lua). */
function createTimeOf(existing: StoredItem | undefined): number | undefined {
  if (existing === undefined || !isJsonObject(existing.value)) return undefined;
  const createTime = existing.value['create_time'];
  return typeof createTime === 'number' && Number.isInteger(createTime) ? createTime : undefined;
}
