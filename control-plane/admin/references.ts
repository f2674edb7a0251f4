/**
 * Reference integrity between resources (docs/admin-api.md, References). Objects point at others by id: a route's
 * `upstream_id`, `service_id` and `plugin_config_id`, a service's `upstream_id`, traffic-split's `upstream_id`s (in a
 * route, service or plugin config), a consumer's `group_id`, a proto's imports of other protos, and any upstream's `tls.client_cert_id` (inline in a
 * route or service, or an upstream object) naming an ssl object of `type: client`, and grpc-transcode's `proto_id`.
 *
 * - Writing a reference to an absent object is a 400 in APISIX's words (`failed to fetch upstream info by upstream
 *   id [X], response code: 404`); the referenced objects' revisions become preconditions of the write.
 * - Deleting an object still referenced is a 400 naming the first referrer (`can not delete this upstream, route
 *   [1] is still using it now`), unless `?force=true`. The scanned directories become preconditions of the delete.
 *
 * Both sides commit in etcd transactions guarded by what they read, so a write and a delete racing each other
 * cannot both succeed. APISIX checks deletes against its in-memory copy of the config and never checks ssl
 * deletes; here both are checked against etcd.
 */
import { AdminBadRequest } from '../../shared/errors.ts';
import type { ResourceType } from '../../shared/etcd-keys.ts';
import type { Precondition, ResourceStore } from '../store/resource-store.ts';
import { RESOURCE_KINDS, isJsonObject } from './resources.ts';
import { checkProtoText, compileProtoText, gatherProtoTexts, findTranscodeMethod } from '../../shared/proto-check.ts';

export interface Reference {
  type: ResourceType;
  id: string;
}

/** Which types may hold references to each type, in the order APISIX checks them (routes first). */
const REFERRER_TYPES: { readonly [K in ResourceType]: readonly ResourceType[] } = {
  routes: [],
  upstreams: ['routes', 'services', 'plugin_configs'],
  services: ['routes'],
  ssls: ['routes', 'services', 'upstreams'],
  consumers: [],
  consumer_groups: ['consumers'],
  global_rules: [],
  plugin_configs: ['routes'],
  plugin_metadata: [],
  protos: ['routes', 'services', 'plugin_configs', 'protos'],
};

/** The ids `value` (an object of `type`) points at. Ids may be stored as numbers; they are compared as text. */
export function referencesOf(type: ResourceType, value: unknown): Reference[] {
  if (!isJsonObject(value)) return [];
  const refs: Reference[] = [];
  const add = (target: ResourceType, id: unknown): void => {
    if (typeof id === 'string' || typeof id === 'number') refs.push({ type: target, id: String(id) });
  };
  if (type === 'upstreams') {
    add('ssls', clientCertId(value));
    return refs;
  }
  if (type === 'protos') {
    const content = value['content'];
    const parsed = typeof content === 'string' ? checkProtoText(content) : undefined;
    if (parsed !== undefined && typeof parsed !== 'string') for (const id of parsed.protoImports) add('protos', id);
    return refs;
  }
  if (type === 'consumers') {
    add('consumer_groups', value['group_id']);
    return refs;
  }
  if (type === 'routes') {
    add('services', value['service_id']);
    add('plugin_configs', value['plugin_config_id']);
  }
  if (type === 'routes' || type === 'services') {
    add('upstreams', value['upstream_id']);
    add('ssls', clientCertId(value['upstream']));
  }
  if (type === 'routes' || type === 'services' || type === 'plugin_configs') {
    for (const weighted of splitUpstreams(value['plugins'])) {
      add('upstreams', weighted['upstream_id']);
      add('ssls', clientCertId(weighted['upstream']));
    }
    add('protos', transcodeProtoId(value['plugins']));
  }
  return refs;
}

/** traffic-split's weighted upstreams in a `plugins` object. */
function splitUpstreams(plugins: unknown): Record<string, unknown>[] {
  if (!isJsonObject(plugins)) return [];
  const split = plugins['traffic-split'];
  if (!isJsonObject(split) || !Array.isArray(split['rules'])) return [];
  const out: Record<string, unknown>[] = [];
  for (const rule of split['rules'] as unknown[]) {
    if (!isJsonObject(rule) || !Array.isArray(rule['weighted_upstreams'])) continue;
    for (const weighted of rule['weighted_upstreams'] as unknown[]) if (isJsonObject(weighted)) out.push(weighted);
  }
  return out;
}

/** grpc-transcode's `proto_id` in a `plugins` object. */
function transcodeProtoId(plugins: unknown): unknown {
  if (!isJsonObject(plugins)) return undefined;
  const transcode = plugins['grpc-transcode'];
  return isJsonObject(transcode) ? transcode['proto_id'] : undefined;
}

function clientCertId(upstream: unknown): unknown {
  if (!isJsonObject(upstream)) return undefined;
  const tls = upstream['tls'];
  return isJsonObject(tls) ? tls['client_cert_id'] : undefined;
}

/** Throws the APISIX message for the first reference that does not resolve; else the referenced revisions. */
export async function checkReferences(store: ResourceStore, type: ResourceType, value: unknown, id = ''): Promise<Precondition[]> {
  const preconditions: Precondition[] = [];
  for (const ref of referencesOf(type, value)) {
    const singular = RESOURCE_KINDS[ref.type].singular;
    const target = await store.get(ref.type, ref.id);
    if (target === undefined) {
      throw new AdminBadRequest(`failed to fetch ${singular} info by ${singular} id [${ref.id}], response code: 404`);
    }
    // An upstream's client certificate must be an ssl object meant for that (apisix/upstream.lua).
    if (ref.type === 'ssls' && sslType(target.value) !== 'client') {
      throw new AdminBadRequest(`failed to fetch ssl info by ssl id [${ref.id}], wrong ssl type`);
    }
    preconditions.push({ kind: 'item', type: ref.type, id: ref.id, modRevision: target.modRevision });
  }
  await checkProtoUse(store, type, value, id);
  return preconditions;
}

/**
 * What the data plane would find when it compiles a proto (its types resolved across its imports) or builds a
 * grpc-transcode route (the service and method in the proto), checked at write time so that the mistake is a 400
 * now, not a route left out later with a log line.
 */
async function checkProtoUse(store: ResourceStore, type: ResourceType, value: unknown, ownId: string): Promise<void> {
  if (!isJsonObject(value)) return;
  const fetch = async (id: string): Promise<string | undefined> => {
    const item = await store.get('protos', id);
    const content = isJsonObject(item?.value) ? item.value['content'] : undefined;
    return typeof content === 'string' ? content : undefined;
  };
  if (type === 'protos') {
    const content = value['content'];
    const id = ownId;
    if (typeof content !== 'string') return;
    const texts = await gatherProtoTexts(id, content, fetch);
    const compiled = compileProtoText(id, (protoId) => texts.get(protoId));
    if (!compiled.ok) throw new AdminBadRequest(`invalid configuration: invalid proto content: ${compiled.error}`);
    return;
  }
  if (type !== 'routes' && type !== 'services' && type !== 'plugin_configs') return;
  const plugins = value['plugins'];
  const transcode = isJsonObject(plugins) ? plugins['grpc-transcode'] : undefined;
  if (!isJsonObject(transcode)) return;
  const protoId = String(transcode['proto_id']);
  const text = await fetch(protoId);
  if (text === undefined) return; // the reference check above refused it
  const texts = await gatherProtoTexts(protoId, text, fetch);
  const compiled = compileProtoText(protoId, (id) => texts.get(id));
  const found = compiled.ok ? findTranscodeMethod(compiled.root, protoId, String(transcode['service']), String(transcode['method'])) : compiled.error;
  if (typeof found === 'string') throw new AdminBadRequest(`failed to check the configuration of plugin grpc-transcode err: ${found}`);
}

export function sslType(value: unknown): string {
  const type = isJsonObject(value) ? value['type'] : undefined;
  return typeof type === 'string' ? type : 'server';
}

/** Words for the refusal; APISIX's differ per type (`can not delete this service directly, …`). */
export type RefusalMessage = (referrerType: ResourceType, referrerId: string) => string;

export function deleteRefusal(type: ResourceType): RefusalMessage {
  const what = type === 'services' ? 'this service directly' : `this ${RESOURCE_KINDS[type].singular}`;
  return (referrerType, referrerId) =>
    `can not delete ${what}, ${RESOURCE_KINDS[referrerType].singular} [${referrerId}] is still using it now`;
}

/**
 * Throws `refusal` for the first object that references `type`/`id`; otherwise returns the preconditions under
 * which that stays true until the guarded write commits: no referrer directory changed since it was scanned.
 */
export async function checkNoReferrers(
  store: ResourceStore,
  type: ResourceType,
  id: string,
  refusal: RefusalMessage,
): Promise<Precondition[]> {
  const preconditions: Precondition[] = [];
  for (const referrerType of REFERRER_TYPES[type]) {
    const listing = await store.list(referrerType);
    for (const item of listing.items) {
      if (referencesOf(referrerType, item.value).some((ref) => ref.type === type && ref.id === id)) {
        throw new AdminBadRequest(refusal(referrerType, item.id));
      }
    }
    preconditions.push({ kind: 'unchanged-since', type: referrerType, revision: listing.revision });
  }
  return preconditions;
}
