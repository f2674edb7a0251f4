/**
 * The data plane's Prometheus metrics (issue #14): APISIX's names and labels where they mean the same thing, so
 * APISIX dashboards and alerts keep working, plus the gRPC status APISIX lacks (apache/apisix#10462: every gRPC
 * call is an HTTP 200 there).
 *
 *   <prefix>http_status{code,route,matched_uri,matched_host,service,consumer,node}   counter
 *   <prefix>http_latency{type=request|upstream|apisix,route,service,consumer,node}   histogram, ms, APISIX's buckets
 *   <prefix>bandwidth{type=ingress|egress,route,service,consumer,node}               counter, bytes
 *   <prefix>grpc_status{grpc_code,route,service,node}                                 counter, grpc_code = OK, …
 *   <prefix>grpc_method_status{route,grpc_service,grpc_method,grpc_code}              counter (routes that ask)
 *   <prefix>grpc_method_latency{route,grpc_service,grpc_method}                       histogram (routes that ask)
 *   <prefix>http_requests_total, etcd_reachable, etcd_modify_indexes{key}, nginx_http_current_connections{state},
 *   node_info{hostname,version}, upstream_status{name,ip,port}, access_log_lines{state}, opentelemetry_spans{state},
 *   metric_overflow_calls{metric}
 *
 * Calls are added up in series.ts's records, with one lookup per call; a scrape turns the records into
 * prom-client metric values (`get()`), and prom-client formats them and, with worker processes, sums them over
 * the workers (its AggregatorRegistry, each metric saying how it aggregates), so N calls are N counts whichever
 * worker served them. Calls the gateway ends itself (no route, deadline, no node, limits) count with the status
 * it sent and `node=""`. `upstream` latency is observed only for calls an upstream answered; `apisix` latency is
 * request minus upstream, as APISIX computes it.
 */
import { hostname } from 'node:os';
import { Registry } from 'prom-client';
import type { MetricsConfig } from '../../shared/config-observability.ts';
import { GrpcStatus } from '../../shared/grpc-status.ts';
import { CallSeries, Histogram, MethodSeries, OVERFLOW_LABEL, SeriesFamily } from './series.ts';
import { matchedHostOf, matchedUriOf, type RouteObservation } from './route-observation.ts';

/** What a scrape reads besides the call counters (each worker has its own). */
export interface MetricSources {
  etcd(): { reachable: boolean; indexes: Readonly<Record<string, number>> };
  connections(): { active: number; writing: number; waiting: number; accepted: number; handled: number };
  upstreams(): readonly { name: string; nodes: readonly { ip: string; port: number; status: string }[] }[];
  accessLog(): { written: number; dropped: number } | undefined;
  spans(): { exported: number; dropped: number; failed: number } | undefined;
}

type Aggregator = 'sum' | 'min' | 'max' | 'first';
interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}
interface MetricData {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  values: MetricValue[];
  aggregator: Aggregator;
}

/** A metric prom-client's Registry formats and its AggregatorRegistry sums: values computed at scrape time. */
class ScrapedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: MetricData['type'];
  readonly aggregator: Aggregator;
  private readonly read: () => MetricValue[];

  constructor(name: string, help: string, type: MetricData['type'], aggregator: Aggregator, read: () => MetricValue[]) {
    this.name = name;
    this.help = help;
    this.type = type;
    this.aggregator = aggregator;
    this.read = read;
  }

  get(): MetricData {
    return { name: this.name, help: this.help, type: this.type, values: this.read(), aggregator: this.aggregator };
  }
}

const GRPC_CODE_NAMES: readonly string[] = (() => {
  const names: string[] = [];
  for (const [name, code] of Object.entries(GrpcStatus)) names[code] = name;
  return names;
})();

/** grpc-status 0 (OK) to 16 (UNAUTHENTICATED). */
const GRPC_CODE_COUNT = 17;

export function grpcCodeName(code: number): string {
  if (code < 0) return ''; // an answer that is not gRPC (a CORS preflight, an HTTP error of grpc-web or transcoding)
  return GRPC_CODE_NAMES[code] ?? String(code);
}

export class CallMetrics {
  readonly config: MetricsConfig;
  private readonly bounds: readonly number[];
  private readonly calls: SeriesFamily<CallSeries>;
  private readonly methods: SeriesFamily<MethodSeries>;
  private total = 0;
  /** record()'s shortcut: per route (weakly: an old build's routes go with it), per node host, per grpc-status. */
  private readonly byRoute = new WeakMap<RouteObservation, Map<string, (CallSeries | undefined)[]>>();
  private readonly unrouted = new Map<string, (CallSeries | undefined)[]>();

  constructor(config: MetricsConfig) {
    this.config = config;
    this.bounds = config.buckets;
    this.calls = new SeriesFamily(config.maxLabelSets);
    this.methods = new SeriesFamily(config.maxLabelSets);
  }

  /**
   * One finished call. `route` undefined: no route matched. `upstreamMs` -1: no upstream answered. `node` ''
   * when the gateway ended the call before any node.
   */
  record(route: RouteObservation | undefined, path: string, authority: string, consumer: string, node: string, status: number, grpcStatus: number, requestMs: number, upstreamMs: number, ingress: number, egress: number): void {
    this.total++;
    // The common case (HTTP 200, a route with one uri and host, no consumer) skips building a key: the route's own map by node,
    // then an array by grpc-status. A node's host string is the same object on every call, so its hash is cached.
    let slots: (CallSeries | undefined)[] | undefined;
    let series: CallSeries | undefined;
    if (status === 200 && consumer === '' && grpcStatus >= 0 && grpcStatus < GRPC_CODE_COUNT && (route === undefined || (route.matchedUri !== undefined && route.matchedHost !== undefined))) {
      let byNode = route === undefined ? this.unrouted : this.byRoute.get(route);
      if (byNode === undefined) {
        byNode = new Map();
        this.byRoute.set(route as RouteObservation, byNode);
      }
      slots = byNode.get(node);
      if (slots === undefined) {
        slots = new Array<CallSeries | undefined>(GRPC_CODE_COUNT).fill(undefined);
        byNode.set(node, slots);
      }
      series = slots[grpcStatus];
    }
    if (series === undefined) {
      series = this.callSeries(route, path, authority, consumer, node, status, grpcStatus);
      if (slots !== undefined) slots[grpcStatus] = series;
    }
    series.count++;
    series.request.observe(this.bounds, requestMs);
    if (upstreamMs >= 0) {
      series.upstream.observe(this.bounds, upstreamMs);
      series.apisix.observe(this.bounds, Math.max(0, requestMs - upstreamMs));
    } else {
      series.apisix.observe(this.bounds, requestMs);
    }
    series.ingress += ingress;
    series.egress += egress;
    if (route !== undefined && route.methodMetrics) this.recordMethod(route, path, grpcStatus, requestMs);
  }

  /** The record of this call's label set, made (or the family's overflow record) the first time it is seen. */
  private callSeries(route: RouteObservation | undefined, path: string, authority: string, consumer: string, node: string, status: number, grpcStatus: number): CallSeries {
    const routeKey = route === undefined ? '' : route.key;
    const uri = route === undefined || route.matchedUri !== undefined ? '' : matchedUriOf(route, path);
    const host = route === undefined || route.matchedHost !== undefined ? '' : matchedHostOf(route, authority);
    const key = `${routeKey}\u0001${uri}\u0001${host}\u0001${consumer}\u0001${node}\u0001${status}\u0001${grpcStatus}`;
    const found = this.calls.find(key);
    if (found !== undefined) return found;
    const made = this.newCallSeries(route, route === undefined ? '' : (route.matchedUri ?? uri), route === undefined ? '' : (route.matchedHost ?? host), consumer, node, status, grpcStatus, false);
    if (this.calls.add(key, made)) return made;
    return this.calls.overflow(`${status}\u0001${grpcStatus}`, () => this.newCallSeries(undefined, OVERFLOW_LABEL, OVERFLOW_LABEL, OVERFLOW_LABEL, OVERFLOW_LABEL, status, grpcStatus, true));
  }

  private newCallSeries(route: RouteObservation | undefined, uri: string, host: string, consumer: string, node: string, status: number, grpcStatus: number, overflow: boolean): CallSeries {
    const routeLabel = overflow ? OVERFLOW_LABEL : (route?.routeLabel ?? '');
    const service = overflow ? OVERFLOW_LABEL : (route?.serviceLabel ?? '');
    return new CallSeries({ route: routeLabel, matchedUri: uri, matchedHost: host, service, consumer, node, code: String(status), grpcCode: grpcCodeName(grpcStatus) }, this.bounds.length);
  }

  /** The per-method view: `/package.Service/Method` split at its last slash. */
  private recordMethod(route: RouteObservation, path: string, grpcStatus: number, requestMs: number): void {
    const key = `${route.routeLabel}\u0001${path}\u0001${grpcStatus}`;
    let series = this.methods.find(key);
    if (series === undefined) {
      const slash = path.lastIndexOf('/');
      const service = slash > 0 ? path.slice(1, slash) : '';
      const method = slash >= 0 ? path.slice(slash + 1) : path;
      series = new MethodSeries(route.routeLabel, service, method, grpcCodeName(grpcStatus), this.bounds.length);
      if (!this.methods.add(key, series)) {
        series = this.methods.overflow(String(grpcStatus), () => new MethodSeries(OVERFLOW_LABEL, OVERFLOW_LABEL, OVERFLOW_LABEL, grpcCodeName(grpcStatus), this.bounds.length));
      }
    }
    series.count++;
    series.latency.observe(this.bounds, requestMs);
  }

  /** Builds the registry a scrape reads (one per data plane; worker processes hand theirs to the primary). */
  registry(sources: MetricSources): Registry {
    const p = this.config.prefix;
    const registry = new Registry();
    const add = (m: ScrapedMetric): void => registry.registerMetric(m as never);
    add(new ScrapedMetric(`${p}http_status`, 'HTTP status codes per route in APISIX', 'counter', 'sum', () => this.httpStatus()));
    add(new ScrapedMetric(`${p}http_latency`, 'HTTP request latency in milliseconds per route in APISIX', 'histogram', 'sum', () => this.latency()));
    add(new ScrapedMetric(`${p}bandwidth`, 'Total bandwidth in bytes consumed per route in APISIX', 'counter', 'sum', () => this.bandwidth()));
    add(new ScrapedMetric(`${p}grpc_status`, 'gRPC status codes per route, as sent to clients', 'counter', 'sum', () => this.grpcStatus()));
    add(new ScrapedMetric(`${p}grpc_method_status`, 'gRPC status codes per method, for routes with prometheus.grpc_method_metrics', 'counter', 'sum', () => this.methodStatus()));
    add(new ScrapedMetric(`${p}grpc_method_latency`, 'Call latency in milliseconds per method, for routes with prometheus.grpc_method_metrics', 'histogram', 'sum', () => this.methodLatency()));
    add(new ScrapedMetric(`${p}http_requests_total`, 'The total number of client requests since APISIX started', 'gauge', 'sum', () => [{ labels: {}, value: this.total }]));
    add(
      new ScrapedMetric(`${p}metric_overflow_calls`, 'Calls counted into an overflow series because the metric reached max_label_sets', 'counter', 'sum', () => [
        { labels: { metric: `${p}http_status` }, value: this.calls.overflowCalls },
        { labels: { metric: `${p}grpc_method_status` }, value: this.methods.overflowCalls },
      ]),
    );
    add(new ScrapedMetric(`${p}etcd_reachable`, 'Config server etcd reachable from APISIX, 0 is unreachable', 'gauge', 'min', () => [{ labels: {}, value: sources.etcd().reachable ? 1 : 0 }]));
    add(
      new ScrapedMetric(`${p}etcd_modify_indexes`, 'Etcd modify index for APISIX keys', 'gauge', 'max', () =>
        Object.entries(sources.etcd().indexes).map(([key, value]) => ({ labels: { key }, value })),
      ),
    );
    add(
      new ScrapedMetric(`${p}nginx_http_current_connections`, 'Number of HTTP/2 client connections (nginx stub_status states)', 'gauge', 'sum', () => {
        const c = sources.connections();
        return [
          { labels: { state: 'active' }, value: c.active },
          { labels: { state: 'reading' }, value: 0 },
          { labels: { state: 'writing' }, value: c.writing },
          { labels: { state: 'waiting' }, value: c.waiting },
          { labels: { state: 'accepted' }, value: c.accepted },
          { labels: { state: 'handled' }, value: c.handled },
        ];
      }),
    );
    const version = GATEWAY_VERSION;
    add(new ScrapedMetric(`${p}node_info`, 'Info of APISIX node', 'gauge', 'first', () => [{ labels: { hostname: hostname(), version }, value: 1 }]));
    add(
      new ScrapedMetric(`${p}upstream_status`, 'Upstream status from health check', 'gauge', 'min', () =>
        sources.upstreams().flatMap((checker) => checker.nodes.map((n) => ({ labels: { name: checker.name, ip: n.ip, port: n.port }, value: n.status === 'unhealthy' || n.status === 'mostly_unhealthy' ? 0 : 1 }))),
      ),
    );
    add(
      new ScrapedMetric(`${p}access_log_lines`, 'Access log lines written and dropped (buffer full or write failed)', 'counter', 'sum', () => {
        const s = sources.accessLog();
        return s === undefined ? [] : [{ labels: { state: 'written' }, value: s.written }, { labels: { state: 'dropped' }, value: s.dropped }];
      }),
    );
    add(
      new ScrapedMetric(`${p}opentelemetry_spans`, 'Spans exported to the OTLP collector, dropped (queue full) and failed (export failed)', 'counter', 'sum', () => {
        const s = sources.spans();
        return s === undefined ? [] : [{ labels: { state: 'exported' }, value: s.exported }, { labels: { state: 'dropped' }, value: s.dropped }, { labels: { state: 'failed' }, value: s.failed }];
      }),
    );
    return registry;
  }

  private httpStatus(): MetricValue[] {
    const out: MetricValue[] = [];
    for (const s of this.calls.all()) {
      out.push({ labels: { code: s.code, route: s.route, matched_uri: s.matchedUri, matched_host: s.matchedHost, service: s.service, consumer: s.consumer, node: s.node }, value: s.count });
    }
    return out;
  }

  private grpcStatus(): MetricValue[] {
    const sums = new Map<string, MetricValue>();
    for (const s of this.calls.all()) {
      const key = `${s.grpcCode}\u0001${s.route}\u0001${s.service}\u0001${s.node}`;
      const found = sums.get(key);
      if (found !== undefined) found.value += s.count;
      else sums.set(key, { labels: { grpc_code: s.grpcCode, route: s.route, service: s.service, node: s.node }, value: s.count });
    }
    return [...sums.values()];
  }

  private bandwidth(): MetricValue[] {
    const sums = new Map<string, { labels: Record<string, string>; ingress: number; egress: number }>();
    for (const s of this.calls.all()) {
      const key = `${s.route}\u0001${s.service}\u0001${s.node}`;
      let found = sums.get(key);
      if (found === undefined) sums.set(key, (found = { labels: { route: s.route, service: s.service, consumer: s.consumer, node: s.node }, ingress: 0, egress: 0 }));
      found.ingress += s.ingress;
      found.egress += s.egress;
    }
    const out: MetricValue[] = [];
    for (const { labels, ingress, egress } of sums.values()) {
      out.push({ labels: { type: 'ingress', ...labels }, value: ingress }, { labels: { type: 'egress', ...labels }, value: egress });
    }
    return out;
  }

  private latency(): MetricValue[] {
    const sums = new Map<string, { labels: Record<string, string>; request: Histogram; upstream: Histogram; apisix: Histogram }>();
    const n = this.bounds.length;
    for (const s of this.calls.all()) {
      const key = `${s.route}\u0001${s.service}\u0001${s.node}`;
      let found = sums.get(key);
      if (found === undefined) {
        found = { labels: { route: s.route, service: s.service, consumer: s.consumer, node: s.node }, request: new Histogram(n), upstream: new Histogram(n), apisix: new Histogram(n) };
        sums.set(key, found);
      }
      mergeInto(found.request, s.request);
      mergeInto(found.upstream, s.upstream);
      mergeInto(found.apisix, s.apisix);
    }
    const out: MetricValue[] = [];
    const name = `${this.config.prefix}http_latency`;
    for (const { labels, request, upstream, apisix } of sums.values()) {
      histogramValues(out, name, { type: 'request', ...labels }, request, this.bounds);
      if (upstream.count > 0) histogramValues(out, name, { type: 'upstream', ...labels }, upstream, this.bounds);
      histogramValues(out, name, { type: 'apisix', ...labels }, apisix, this.bounds);
    }
    return out;
  }

  private methodStatus(): MetricValue[] {
    const out: MetricValue[] = [];
    for (const s of this.methods.all()) out.push({ labels: { route: s.route, grpc_service: s.grpcService, grpc_method: s.grpcMethod, grpc_code: s.grpcCode }, value: s.count });
    return out;
  }

  private methodLatency(): MetricValue[] {
    const sums = new Map<string, { labels: Record<string, string>; latency: Histogram }>();
    for (const s of this.methods.all()) {
      const key = `${s.route}\u0001${s.grpcService}\u0001${s.grpcMethod}`;
      let found = sums.get(key);
      if (found === undefined) sums.set(key, (found = { labels: { route: s.route, grpc_service: s.grpcService, grpc_method: s.grpcMethod }, latency: new Histogram(this.bounds.length) }));
      mergeInto(found.latency, s.latency);
    }
    const out: MetricValue[] = [];
    const name = `${this.config.prefix}grpc_method_latency`;
    for (const { labels, latency } of sums.values()) histogramValues(out, name, labels, latency, this.bounds);
    return out;
  }
}

/** The gateway's version for node_info (package.json's, kept in step by a test). */
export const GATEWAY_VERSION = '0.1.0';

function mergeInto(into: Histogram, from: Histogram): void {
  for (let i = 0; i < from.buckets.length; i++) into.buckets[i] = (into.buckets[i] as number) + (from.buckets[i] as number);
  into.sum += from.sum;
  into.count += from.count;
}

/** Cumulative `_bucket{le}` values, then `_sum` and `_count`, as prom-client's own histograms export them. */
function histogramValues(out: MetricValue[], name: string, labels: Record<string, string>, h: Histogram, bounds: readonly number[]): void {
  let cumulative = 0;
  for (let i = 0; i < bounds.length; i++) {
    cumulative += h.buckets[i] as number;
    out.push({ labels: { ...labels, le: bounds[i] as number }, value: cumulative, metricName: `${name}_bucket` });
  }
  out.push({ labels: { ...labels, le: '+Inf' }, value: h.count, metricName: `${name}_bucket` });
  out.push({ labels, value: h.sum, metricName: `${name}_sum` });
  out.push({ labels, value: h.count, metricName: `${name}_count` });
}
