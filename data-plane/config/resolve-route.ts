/**
 * What a route means once its references are followed (APISIX `handle_upstream` and `merge_service_route`): the
 * upstream it sends calls to (inline, by `upstream_id`, or inherited from its service, the route's own winning),
 * the service's hosts when the route sets none, the plugins (the route's own over its plugin config's, by
 * `plugin_config_id`, over its service's), and the
 * client certificate a `grpcs` upstream presents (inline, or an ssl object of `type: client` by
 * `tls.client_cert_id`).
 *
 * A reference to an object that is not (or no longer) in etcd does not drop the route: its calls are answered with
 * the status APISIX's HTTP answer maps to (missing upstream: 502 → UNAVAILABLE; missing service: 404 →
 * UNIMPLEMENTED; missing plugin config: 503 → UNAVAILABLE), so a half-applied change is visible instead of silently routing elsewhere.
 *
 * Every object looked up on the way is recorded (found or not), so a later build can tell by identity whether the
 * resolution would come out the same: the route item and every recorded lookup unchanged means the same answer.
 */
import type { PluginsConf } from '../../shared/schema/plugins.ts';
import type { RouteConf } from '../../shared/schema/route.ts';
import type { UpstreamConf } from '../../shared/schema/upstream.ts';
import type { ClientCertificate } from '../upstream/client-certificate.ts';
import type { ConfigItem, ConfigState } from './config-state.ts';

export type ResolvedRoute =
  | {
      ok: true;
      route: RouteConf;
      upstream: UpstreamConf;
      /** Identity of the upstream for sharing one balancer among routes: `upstreams/<id>` or `route/<id>`. */
      upstreamKey: string;
      /** etcd revision of the upstream object (or of the route/service carrying it inline). */
      upstreamRevision: string;
      clientCert: ClientCertificate | undefined;
    }
  | { ok: false; route: RouteConf; reason: 'upstream' | 'service' | 'plugin_config'; detail: string };

/** The maps a route's references point into. */
type ReferencedType = 'services' | 'upstreams' | 'ssls' | 'plugin_configs' | 'plugin_metadata' | 'protos';

/** One object a resolution looked up: in which map, under which id, and the item found (undefined: absent). */
export interface Lookup {
  readonly type: ReferencedType;
  readonly id: string;
  readonly found: ConfigItem<unknown> | undefined;
}

/** True when every lookup would find the same item (by identity) in `state`: the resolution would not change. */
export function lookupsHold(lookups: readonly Lookup[], state: ConfigState): boolean {
  for (const lookup of lookups) {
    if (state[lookup.type].get(lookup.id) !== lookup.found) return false;
  }
  return true;
}

/** `lookups`, when given, receives every object the resolution looked up, in order. */
export function resolveRoute(id: string, route: RouteConf, modRevision: string, state: ConfigState, lookups?: Lookup[]): ResolvedRoute {
  let effective = route;
  let upstreamSource: { upstream?: UpstreamConf; upstream_id?: string | number } = route;
  let sourceKey = `route/${id}`;
  let sourceRevision = modRevision;
  if (route.service_id !== undefined) {
    const serviceId = String(route.service_id);
    const service = state.services.get(serviceId);
    lookups?.push({ type: 'services', id: serviceId, found: service });
    if (service === undefined) {
      return { ok: false, route, reason: 'service', detail: `service ${serviceId} not found` };
    }
    effective = mergeService(route, service.value);
    if (route.upstream === undefined && route.upstream_id === undefined) {
      upstreamSource = service.value;
      sourceKey = `service/${service.id}`;
      sourceRevision = service.modRevision;
    }
  }
  if (route.plugin_config_id !== undefined) {
    // APISIX's merge order: the route's own plugins, then its plugin config's, then its service's.
    const configId = String(route.plugin_config_id);
    const config = state.plugin_configs.get(configId);
    lookups?.push({ type: 'plugin_configs', id: configId, found: config });
    if (config === undefined) return { ok: false, route: effective, reason: 'plugin_config', detail: `plugin config ${configId} not found` };
    effective = { ...effective, plugins: { ...effective.plugins, ...config.value.plugins, ...route.plugins } };
  }
  const resolved = resolveUpstreamRef(upstreamSource, sourceKey, sourceRevision, state, lookups);
  if (!resolved.ok) return { ok: false, route: effective, reason: 'upstream', detail: resolved.detail };
  return { ...resolved, route: effective };
}

export type ResolvedUpstreamRef =
  | { ok: true; upstream: UpstreamConf; upstreamKey: string; upstreamRevision: string; clientCert: ClientCertificate | undefined }
  | { ok: false; detail: string };

/**
 * An upstream given inline (by the object `sourceKey` names, at `sourceRevision`) or by `upstream_id`, with the
 * client certificate a `grpcs` upstream presents: for a route, its service, and traffic-split's weighted upstreams.
 */
export function resolveUpstreamRef(
  source: { upstream?: UpstreamConf | undefined; upstream_id?: string | number | undefined },
  sourceKey: string,
  sourceRevision: string,
  state: ConfigState,
  lookups?: Lookup[],
): ResolvedUpstreamRef {
  let upstream = source.upstream;
  let upstreamKey = sourceKey;
  let upstreamRevision = sourceRevision;
  if (upstream === undefined && source.upstream_id !== undefined) {
    const upstreamId = String(source.upstream_id);
    const item = state.upstreams.get(upstreamId);
    lookups?.push({ type: 'upstreams', id: upstreamId, found: item });
    if (item === undefined) return { ok: false, detail: `upstream ${upstreamId} not found` };
    upstream = item.value;
    upstreamKey = `upstreams/${item.id}`;
    upstreamRevision = item.modRevision;
  }
  if (upstream === undefined) return { ok: false, detail: 'no upstream configured' };

  let clientCert: ClientCertificate | undefined;
  const tls = upstream.tls;
  if (tls?.client_cert !== undefined && tls.client_key !== undefined) {
    clientCert = { id: `inline@${upstreamKey}#${upstreamRevision}`, cert: tls.client_cert, key: tls.client_key };
  } else if (tls?.client_cert_id !== undefined) {
    const sslId = String(tls.client_cert_id);
    const ssl = state.ssls.get(sslId);
    lookups?.push({ type: 'ssls', id: sslId, found: ssl });
    if (ssl === undefined || ssl.value.type !== 'client') return { ok: false, detail: `ssl ${sslId} is not a client certificate` };
    clientCert = { id: `ssl/${ssl.id}#${ssl.modRevision}`, cert: ssl.value.cert, key: ssl.value.key };
  }
  return { ok: true, upstream, upstreamKey, upstreamRevision, clientCert };
}

/** The service's hosts and plugins under the route's own (apisix/plugin.lua merge_service_route). */
function mergeService(route: RouteConf, service: { hosts?: string[]; plugins?: PluginsConf }): RouteConf {
  const merged: RouteConf = { ...route };
  if (route.host === undefined && route.hosts === undefined && service.hosts !== undefined) merged.hosts = service.hosts;
  if (service.plugins !== undefined) merged.plugins = { ...service.plugins, ...route.plugins };
  return merged;
}
