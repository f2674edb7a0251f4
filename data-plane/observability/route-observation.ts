/**
 * What the observability code needs to know about a matched route, worked out once per route build and cached on
 * the router's entry (entries are immutable: a changed route is a new entry), so a call only reads fields:
 *
 * - labels as APISIX's prometheus exporter writes them: `route` and `service` are ids, or names with `prefer_name`
 *   (plugin_attr or the route's `prometheus` plugin); `matched_uri` is the route's uri pattern that matched (never
 *   the client's path, which is unbounded), `matched_host` its host pattern;
 * - whether the route counts calls per gRPC method (`prometheus.grpc_method_metrics`);
 * - the route's own trace sampler (`opentelemetry.sampler`), undefined to use plugin_attr's.
 */
import type { RouteEntry } from '../routing/router.ts';
import { compileSampler, type Sampler } from './sampler.ts';

export interface RouteObservation {
  readonly routeId: string;
  readonly routeName: string;
  readonly serviceId: string;
  /** The `route` and `service` label values. */
  readonly routeLabel: string;
  readonly serviceLabel: string;
  /** The key prefix of this route's call series (route, service and, when fixed, uri and host). */
  readonly key: string;
  /** The uri pattern when the route has one; undefined: pick from `uris` per call. */
  readonly matchedUri: string | undefined;
  readonly uris: readonly string[];
  readonly matchedHost: string | undefined;
  readonly hosts: readonly string[];
  readonly methodMetrics: boolean;
  readonly sampler: Sampler | undefined;
}

const cache = new WeakMap<object, RouteObservation>();

export function observeRoute(entry: RouteEntry<unknown>, preferName: boolean): RouteObservation {
  let found = cache.get(entry);
  if (found === undefined) {
    found = build(entry, preferName);
    cache.set(entry, found);
  }
  return found;
}

function build(entry: RouteEntry<unknown>, globalPreferName: boolean): RouteObservation {
  const route = entry.route;
  const plugins = route.plugins;
  const preferName = plugins?.prometheus?.prefer_name ?? globalPreferName;
  const routeName = route.name ?? '';
  const serviceId = route.service_id === undefined ? '' : String(route.service_id);
  const routeLabel = preferName && routeName !== '' ? routeName : entry.id;
  const uris = route.uri !== undefined ? [route.uri] : (route.uris ?? []);
  const hosts = route.host !== undefined ? [route.host] : (route.hosts ?? []);
  const matchedUri = uris.length <= 1 ? (uris[0] ?? '') : undefined;
  const matchedHost = hosts.length <= 1 ? (hosts[0] ?? '') : undefined;
  const otel = plugins?.opentelemetry;
  return {
    routeId: entry.id,
    routeName,
    serviceId,
    routeLabel,
    serviceLabel: serviceId,
    key: `${routeLabel}\u0001${serviceId}\u0001${matchedUri ?? ''}\u0001${matchedHost ?? ''}`,
    matchedUri,
    uris,
    matchedHost,
    hosts,
    methodMetrics: plugins?.prometheus?.grpc_method_metrics === true,
    sampler: otel?.sampler === undefined ? undefined : compileSampler(otel.sampler),
  };
}

/** The route's uri pattern this path matched (exact, or a `*` prefix), for a route with several. */
export function matchedUriOf(route: RouteObservation, path: string): string {
  if (route.matchedUri !== undefined) return route.matchedUri;
  for (const uri of route.uris) {
    if (uri.endsWith('*') ? path.startsWith(uri.slice(0, -1)) : path === uri) return uri;
  }
  return '';
}

/** The route's host pattern this authority matched (exact, or `*.suffix`), for a route with several. */
export function matchedHostOf(route: RouteObservation, authority: string): string {
  if (route.matchedHost !== undefined) return route.matchedHost;
  const colon = authority.lastIndexOf(':');
  const host = (colon > 0 && !authority.endsWith(']') ? authority.slice(0, colon) : authority).toLowerCase();
  for (const pattern of route.hosts) {
    if (pattern.startsWith('*.') ? host.endsWith(pattern.slice(1)) : host === pattern.toLowerCase()) return pattern;
  }
  return '';
}
