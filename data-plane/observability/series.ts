/**
 * The data plane's call counters, kept the cheap way: a finished call adds to one plain record (counts, sums,
 * histogram buckets in a Float64Array) found with one Map lookup, and nothing is formatted until a scrape asks
 * (metrics.ts turns the records into prom-client's metric values there). prom-client's own `observe(labels, v)`
 * hashes the labels object and validates it on every call, for each of the seven series a call touches; this
 * keeps the per-call cost to one key and a few additions (bench: `npm run bench -- --targets gateway-observed`).
 *
 * Cardinality is bounded: a family holds at most `maxLabelSets` distinct label sets. A call whose label set would
 * be one too many is counted into the family's overflow record, whose string labels read `_overflow` (its status
 * labels stay real), so a client spraying random paths or methods costs one record, not one per path, and the
 * totals still add up.
 */

/** The label value of every string label of an overflow record. */
export const OVERFLOW_LABEL = '_overflow';

/** One latency histogram: counts per bucket (non-cumulative; the last slot is +Inf), sum and count. */
export class Histogram {
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: number) {
    this.buckets = new Float64Array(bounds + 1);
  }

  observe(bounds: readonly number[], value: number): void {
    let i = 0;
    const n = bounds.length;
    while (i < n && value > (bounds[i] as number)) i++;
    this.buckets[i] = (this.buckets[i] as number) + 1; // i <= bounds.length: in range
    this.sum += value;
    this.count++;
  }
}

/** Calls of one label set of the call family (route, matched uri and host, service, consumer, node, status). */
export class CallSeries {
  readonly route: string;
  readonly matchedUri: string;
  readonly matchedHost: string;
  readonly service: string;
  readonly consumer: string;
  readonly node: string;
  readonly code: string;
  readonly grpcCode: string;
  count = 0;
  readonly request: Histogram;
  readonly upstream: Histogram;
  readonly apisix: Histogram;
  ingress = 0;
  egress = 0;

  constructor(labels: { route: string; matchedUri: string; matchedHost: string; service: string; consumer: string; node: string; code: string; grpcCode: string }, bounds: number) {
    this.route = labels.route;
    this.matchedUri = labels.matchedUri;
    this.matchedHost = labels.matchedHost;
    this.service = labels.service;
    this.consumer = labels.consumer;
    this.node = labels.node;
    this.code = labels.code;
    this.grpcCode = labels.grpcCode;
    this.request = new Histogram(bounds);
    this.upstream = new Histogram(bounds);
    this.apisix = new Histogram(bounds);
  }
}

/** Calls of one method of one route (the per-method view, Envoy grpc_stats style). */
export class MethodSeries {
  readonly route: string;
  readonly grpcService: string;
  readonly grpcMethod: string;
  readonly grpcCode: string;
  count = 0;
  readonly latency: Histogram;

  constructor(route: string, grpcService: string, grpcMethod: string, grpcCode: string, bounds: number) {
    this.route = route;
    this.grpcService = grpcService;
    this.grpcMethod = grpcMethod;
    this.grpcCode = grpcCode;
    this.latency = new Histogram(bounds);
  }
}

/** A family of records by key, capped at `max` keys, plus overflow records keyed by their status labels only. */
export class SeriesFamily<S> {
  readonly records = new Map<string, S>();
  private readonly overflows = new Map<string, S>();
  private readonly max: number;
  /** Calls counted into an overflow record because the family was full. */
  overflowCalls = 0;

  constructor(max: number) {
    this.max = max;
  }

  /** The record under `key`, or undefined: then the caller makes one and offers it to add(). */
  find(key: string): S | undefined {
    return this.records.get(key);
  }

  /** Keeps `record` under `key` if there is room; false when the family is full (use overflow()). */
  add(key: string, record: S): boolean {
    if (this.records.size >= this.max) return false;
    this.records.set(key, record);
    return true;
  }

  /** The overflow record for these status labels (`statusKey`), made by `make` the first time. */
  overflow(statusKey: string, make: () => S): S {
    this.overflowCalls++;
    let record = this.overflows.get(statusKey);
    if (record === undefined) {
      record = make();
      this.overflows.set(statusKey, record);
    }
    return record;
  }

  /** Every record, the overflow ones last. */
  *all(): IterableIterator<S> {
    yield* this.records.values();
    yield* this.overflows.values();
  }

  get size(): number {
    return this.records.size;
  }
}
