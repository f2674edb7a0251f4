/**
 * Finished spans to an OpenTelemetry collector over OTLP/HTTP with JSON encoding (OTLP spec, "OTLP/HTTP"): POST
 * `<address>/v1/traces`, `content-type: application/json`, an ExportTraceServiceRequest in the proto3 JSON mapping
 * with OTLP's exceptions (trace and span ids as lowercase hex, enums as integers, int64 as decimal strings).
 *
 * Batching follows APISIX's opentelemetry plugin (`collector` and `batch_span_processor` in its plugin metadata)
 * (its defaults here, when an option is left out: collector 127.0.0.1:4318, request_timeout 3 s, max_queue_size 1024,
 * max_export_batch_size 16, batch_timeout 2 s; shared/config-observability.ts gives the data plane the OpenTelemetry
 * spec's 2048 and 512 instead, since a request per 16 spans costs far more CPU per span). Tracing must never hurt the calls it observes, so:
 * - add() is O(1): the span's bytes are appended to one staging buffer; a full queue drops the new span (counted). APISIX's
 *   `drop_on_queue_full: false` makes it export synchronously instead; here memory and the caller's time stay
 *   bounded either way, so the span is dropped as well and the option is accepted for compatibility only.
 * - One request at most is in flight; full batches go back to back while the collector answers. A failed or
 *   timed-out request drops its batch (no retry: a retry would only hold memory for a collector that is down) and
 *   pauses exporting until the next batch_timeout tick, so a dead collector costs one attempt per tick.
 * - Failures are logged as one warning per WARN_INTERVAL_MS at most, with counts.
 */
import type { Logger } from '../../shared/logger.ts';
import { clampDelay } from '../timers.ts';
import { Http1Poster } from './http1-post.ts';
import { encodeResource, encodeSpan, type EncodedKeyValue, type EncodedScope, type FinishedSpan } from './otlp-json.ts';

export type { FinishedSpan } from './otlp-json.ts';

/** Closes what bodyHead opens: the spans array, the scope span, scopeSpans, the resource span, resourceSpans. */
const BODY_TAIL = Buffer.from(']}]}]}');
/** A collector's 2xx answers accept the batch. */
const OK_FIRST = 200;
const OK_LAST = 299;
const COMMA = 0x2c;
/** Staging room per queued span: OTLP/JSON spans of the gateway's are about 1 KiB; a larger one takes more. */
const STAGING_BYTES_PER_SPAN = 2048;
/** The staging buffer's size whatever max_queue_size says. */
const MAX_STAGING_BYTES = 64 * 1024 * 1024;
/** UTF-8 takes at most 3 octets per UTF-16 unit. */
const MAX_UTF8_PER_UNIT = 3;

export const OTLP_DEFAULT_ADDRESS = '127.0.0.1:4318';
export const OTLP_DEFAULT_REQUEST_TIMEOUT_MS = 3_000;
export const OTLP_DEFAULT_MAX_QUEUE_SIZE = 1024;
export const OTLP_DEFAULT_MAX_EXPORT_BATCH_SIZE = 16;
export const OTLP_DEFAULT_BATCH_TIMEOUT_MS = 2_000;
export const OTLP_DEFAULT_SERVICE_NAME = 'APISIX';
/** The instrumentation scope the gateway's spans are reported under. */
export const OTLP_SCOPE_NAME = 'grpc-gateway';
/** The OTLP/HTTP path for traces, appended to the collector's base address. */
export const OTLP_TRACES_PATH = 'v1/traces';
/** At most one export-failure warning per this many milliseconds. */
export const WARN_INTERVAL_MS = 10_000;

export interface OtlpExporterOptions {
  /** `host:port` (http) or a base URL `http(s)://host:port[/prefix]`; APISIX `collector.address`. */
  address?: string;
  /** Whole-request deadline; APISIX `collector.request_timeout` (seconds there). */
  requestTimeoutMs?: number;
  /** Extra request headers, e.g. authorization; APISIX `collector.request_headers`. */
  requestHeaders?: Record<string, string>;
  /** Resource attributes; APISIX `resource`. `service.name` defaults to 'APISIX'. */
  resource?: Record<string, string | number | boolean>;
  /** Spans held at most; APISIX `batch_span_processor.max_queue_size`. */
  maxQueueSize?: number;
  /** Spans per request at most; APISIX `batch_span_processor.max_export_batch_size`. */
  maxExportBatchSize?: number;
  /** Export period for partial batches; APISIX `batch_span_processor.batch_timeout` (seconds there). */
  batchTimeoutMs?: number;
  /** Accepted for APISIX compatibility; a full queue always drops (see the file comment). */
  dropOnQueueFull?: boolean;
  /** `scope.version` of the exported spans (the gateway's version); omitted when absent. */
  scopeVersion?: string;
  log: Logger;
}

export interface OtlpExporterStats {
  /** Spans waiting (not counting a batch in flight). */
  queued: number;
  /** Spans the collector accepted (2xx). */
  exported: number;
  /** Spans refused by a full queue or left queued at close(). */
  dropped: number;
  /** Spans of batches whose request failed, timed out or was answered with a non-2xx status. */
  failed: number;
}

function positive(value: number | undefined, fallback: number): number {
  return value !== undefined && value > 0 ? value : fallback;
}

/** The collector's traces URL: a bare `host:port` is http; a base URL keeps its path prefix. */
export function tracesUrl(address: string): URL {
  const base = new URL(/^https?:\/\//i.test(address) ? address : `http://${address}`);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return new URL(OTLP_TRACES_PATH, base);
}

export class OtlpExporter {
  private readonly url: URL;
  /** One kept-alive HTTP/1.1 connection to the collector (http1-post.ts: node:http's client cost the GC dearly). */
  private readonly poster: Http1Poster;
  private readonly resource: EncodedKeyValue[];
  private readonly scope: EncodedScope;
  private readonly timeoutMs: number;
  private readonly batchSize: number;
  private readonly log: Logger;
  /**
   * The queued spans, each already encoded as its OTLP/JSON object in UTF-8 and followed by a comma, back to back
   * in one buffer outside V8's heap; `ends[i]` is the offset after span i's comma. No object per span: a queued
   * span lives for up to a batch's worth of calls (512 spans, ~130 ms at 4,000 spans/s), longer than young-
   * generation objects do, and one object or Buffer per span cost ~1.5 MB of survivors per scavenge and 4 to 8 µs
   * per call in the GC at 10 % sampling (issue #14's profile).
   */
  private readonly staging: Buffer;
  private stagingUsed = 0;
  private readonly ends: Int32Array;
  /** The request body around the spans: `${bodyHead}span,span,…${BODY_TAIL}`. */
  private readonly bodyHead: Buffer;
  private count = 0;
  private readonly counters = { exported: 0, dropped: 0, failed: 0 };
  private readonly timer: NodeJS.Timeout;
  private kick: NodeJS.Immediate | undefined;
  private inFlight: Promise<void> | undefined;
  /** Set by a failed export: no export until the next tick. */
  private paused = false;
  private closed = false;
  private destroyed = false;
  private closing: Promise<void> | undefined;
  private lastWarnAt = -Infinity;
  private droppedAtLastCheck = 0;
  private suppressedWarnings = 0;

  constructor(opts: OtlpExporterOptions) {
    this.url = tracesUrl(opts.address ?? OTLP_DEFAULT_ADDRESS);
    this.poster = new Http1Poster(this.url, { ...opts.requestHeaders, 'content-type': 'application/json' });
    this.resource = encodeResource({ 'service.name': OTLP_DEFAULT_SERVICE_NAME, ...opts.resource });
    this.scope = opts.scopeVersion === undefined ? { name: OTLP_SCOPE_NAME } : { name: OTLP_SCOPE_NAME, version: opts.scopeVersion };
    this.timeoutMs = clampDelay(positive(opts.requestTimeoutMs, OTLP_DEFAULT_REQUEST_TIMEOUT_MS));
    const queueSize = Math.floor(positive(opts.maxQueueSize, OTLP_DEFAULT_MAX_QUEUE_SIZE));
    this.batchSize = Math.min(queueSize, Math.floor(positive(opts.maxExportBatchSize, OTLP_DEFAULT_MAX_EXPORT_BATCH_SIZE)));
    this.ends = new Int32Array(queueSize);
    this.staging = Buffer.allocUnsafe(Math.min(MAX_STAGING_BYTES, queueSize * STAGING_BYTES_PER_SPAN));
    this.bodyHead = Buffer.from(`{"resourceSpans":[{"resource":{"attributes":${JSON.stringify(this.resource)}},"scopeSpans":[{"scope":${JSON.stringify(this.scope)},"spans":[`);
    this.log = opts.log;
    this.timer = setInterval(() => this.tick(), clampDelay(positive(opts.batchTimeoutMs, OTLP_DEFAULT_BATCH_TIMEOUT_MS)));
    this.timer.unref();
  }

  /** Queues one finished span; O(1) but for its encoding, never throws, drops (and counts) when full or closed. */
  add(span: FinishedSpan): void {
    if (this.closed || this.count === this.ends.length) {
      this.counters.dropped++;
      return;
    }
    this.addEncoded(encodeSpan(span));
  }

  /** Queues one span already encoded as an OTLP/JSON span object (the data plane's observer writes them directly). */
  /**
   * Whether a span would be queued now; if not, it is counted as dropped. Lets a caller skip encoding a span that
   * a full queue would drop anyway (call addEncoded after a true).
   */
  hasRoom(): boolean {
    if (!this.closed && this.count < this.ends.length) return true;
    this.counters.dropped++;
    return false;
  }

  addEncoded(span: string): void {
    const at = this.stagingUsed;
    if (this.closed || this.count === this.ends.length || at + span.length * MAX_UTF8_PER_UNIT + 1 > this.staging.length) {
      this.counters.dropped++;
      return;
    }
    const end = at + this.staging.write(span, at, 'utf8');
    this.staging[end] = COMMA;
    this.stagingUsed = this.ends[this.count++] = end + 1;
    if (this.count >= this.batchSize && this.inFlight === undefined && this.kick === undefined && !this.paused) {
      this.kick = setImmediate(() => {
        this.kick = undefined;
        this.exportNext();
      });
    }
  }

  stats(): OtlpExporterStats {
    return { queued: this.count, ...this.counters };
  }

  /** Exports what is queued now (waiting for a request in flight first); stops at the first failure. Never rejects. */
  async flush(): Promise<void> {
    let rounds = Math.ceil(this.count / this.batchSize) + 1;
    while (rounds-- > 0 && !this.destroyed) {
      if (this.inFlight === undefined) {
        if (this.count === 0) return;
        this.paused = false;
        this.exportNext();
      }
      const failedBefore = this.counters.failed;
      await this.inFlight;
      if (this.counters.failed !== failedBefore) return;
    }
  }

  /** Stops the timer, flushes for at most one request timeout, then drops what is left. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    if (this.kick !== undefined) clearImmediate(this.kick);
    this.kick = undefined;
    let deadline: NodeJS.Timeout | undefined;
    await Promise.race([this.flush(), new Promise<void>((resolve) => (deadline = setTimeout(resolve, this.timeoutMs)))]);
    clearTimeout(deadline);
    this.destroyed = true;
    this.counters.dropped += this.count;
    this.stagingUsed = 0;
    this.count = 0;
    this.poster.close();
  }

  private tick(): void {
    this.paused = false;
    this.warnOnDrops();
    if (this.count > 0) this.exportNext();
  }

  /** Sends the next batch unless one is in flight; full batches follow one another while exports succeed. */
  private exportNext(): void {
    if (this.inFlight !== undefined || this.count === 0 || this.destroyed) return;
    const take = Math.min(this.count, this.batchSize);
    // The body is made here, once: the staging buffer moves on (what is left slides to its start).
    const cut = this.ends[take - 1] as number;
    const body = Buffer.allocUnsafe(this.bodyHead.length + cut - 1 + BODY_TAIL.length);
    this.bodyHead.copy(body, 0);
    this.staging.copy(body, this.bodyHead.length, 0, cut - 1); // without the last span's comma
    BODY_TAIL.copy(body, this.bodyHead.length + cut - 1);
    this.staging.copyWithin(0, cut, this.stagingUsed);
    this.stagingUsed -= cut;
    for (let i = take; i < this.count; i++) this.ends[i - take] = (this.ends[i] as number) - cut;
    this.count -= take;
    this.inFlight = this.send(body, take).then((ok) => {
      this.inFlight = undefined;
      if (!ok) this.paused = true;
      else if (this.count >= this.batchSize && !this.closed) this.exportNext();
    });
  }

  /** One POST; resolves true on a 2xx answer, false otherwise. Never rejects. */
  private send(body: Buffer, spans: number): Promise<boolean> {
    return this.poster.post(body, this.timeoutMs).then((result) => {
      const ok = 'status' in result && result.status >= OK_FIRST && result.status <= OK_LAST;
      if (ok) this.counters.exported += spans;
      else {
        this.counters.failed += spans;
        const fields = 'status' in result ? { status: result.status } : result.error === 'timeout' ? { reason: 'timeout', timeoutMs: this.timeoutMs } : { err: result.error };
        this.warn({ ...fields, spans, url: this.url.href }, 'otlp export failed; batch dropped');
      }
      return ok;
    });
  }

  /** A warning about spans dropped by a full queue since the last tick (rate-limited with the others). */
  private warnOnDrops(): void {
    if (this.counters.dropped === this.droppedAtLastCheck) return;
    const newlyDropped = this.counters.dropped - this.droppedAtLastCheck;
    this.droppedAtLastCheck = this.counters.dropped;
    this.warn({ newlyDropped, queueSize: this.ends.length }, 'otlp export queue full; spans dropped');
  }

  private warn(fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    if (now - this.lastWarnAt < WARN_INTERVAL_MS) {
      this.suppressedWarnings++;
      return;
    }
    this.lastWarnAt = now;
    this.log.warn({ ...fields, ...this.counters, suppressedWarnings: this.suppressedWarnings }, msg);
    this.suppressedWarnings = 0;
  }
}
