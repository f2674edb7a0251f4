/**
 * Finished spans to an OpenTelemetry collector over OTLP/HTTP with JSON encoding (OTLP spec, "OTLP/HTTP"): POST
 * `<address>/v1/traces`, `content-type: application/json`, an ExportTraceServiceRequest in the proto3 JSON mapping
 * with OTLP's exceptions (trace and span ids as lowercase hex, enums as integers, int64 as decimal strings).
 *
 * Batching follows APISIX's opentelemetry plugin (`collector` and `batch_span_processor` in its plugin metadata)
 * (its defaults here, when an option is left out: collector 127.0.0.1:4318, request_timeout 3 s, max_queue_size 1024,
 * max_export_batch_size 16, batch_timeout 2 s; shared/config-observability.ts gives the data plane the OpenTelemetry
 * spec's 2048 and 512 instead, since a request per 16 spans costs far more CPU per span). Tracing must never hurt the calls it observes, so:
 * - add() is O(1): a push into a fixed ring; a full ring drops the new span (counted). APISIX's
 *   `drop_on_queue_full: false` makes it export synchronously instead; here memory and the caller's time stay
 *   bounded either way, so the span is dropped as well and the option is accepted for compatibility only.
 * - One request at most is in flight; full batches go back to back while the collector answers. A failed or
 *   timed-out request drops its batch (no retry: a retry would only hold memory for a collector that is down) and
 *   pauses exporting until the next batch_timeout tick, so a dead collector costs one attempt per tick.
 * - Failures are logged as one warning per WARN_INTERVAL_MS at most, with counts.
 */
import http from 'node:http';
import https from 'node:https';
import type { Logger } from '../../shared/logger.ts';
import { clampDelay } from '../timers.ts';
import { encodeResource, encodeSpan, type EncodedKeyValue, type EncodedScope, type FinishedSpan } from './otlp-json.ts';

export type { FinishedSpan } from './otlp-json.ts';

/** Closes what bodyHead opens: the spans array, the scope span, scopeSpans, the resource span, resourceSpans. */
const BODY_TAIL = Buffer.from(']}]}]}');
const COMMA = Buffer.from(',');

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
  private readonly transport: typeof http | typeof https;
  private readonly agent: http.Agent;
  private readonly headers: Record<string, string>;
  private readonly resource: EncodedKeyValue[];
  private readonly scope: EncodedScope;
  private readonly timeoutMs: number;
  private readonly batchSize: number;
  private readonly log: Logger;
  /**
   * Fixed ring of queued spans, each already encoded as its OTLP/JSON object in UTF-8: its bytes sit outside V8's
   * heap until the batch goes. Span objects, or the many-piece strings a template builds, would survive young-
   * generation GC and be copied and marked (issue #14's profile put 3.8 µs per call in the collector).
   */
  private readonly ring: (Buffer | undefined)[];
  /** The request body around the spans: `${bodyHead}span,span,…${BODY_TAIL}`. */
  private readonly bodyHead: Buffer;
  private head = 0;
  private count = 0;
  private readonly counters = { exported: 0, dropped: 0, failed: 0 };
  private readonly timer: NodeJS.Timeout;
  private kick: NodeJS.Immediate | undefined;
  private inFlight: Promise<void> | undefined;
  private abortInFlight: (() => void) | undefined;
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
    const secure = this.url.protocol === 'https:';
    this.transport = secure ? https : http;
    this.agent = new (secure ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: 1 });
    this.headers = { ...opts.requestHeaders, 'content-type': 'application/json' };
    this.resource = encodeResource({ 'service.name': OTLP_DEFAULT_SERVICE_NAME, ...opts.resource });
    this.scope = opts.scopeVersion === undefined ? { name: OTLP_SCOPE_NAME } : { name: OTLP_SCOPE_NAME, version: opts.scopeVersion };
    this.timeoutMs = clampDelay(positive(opts.requestTimeoutMs, OTLP_DEFAULT_REQUEST_TIMEOUT_MS));
    const queueSize = Math.floor(positive(opts.maxQueueSize, OTLP_DEFAULT_MAX_QUEUE_SIZE));
    this.batchSize = Math.min(queueSize, Math.floor(positive(opts.maxExportBatchSize, OTLP_DEFAULT_MAX_EXPORT_BATCH_SIZE)));
    this.ring = new Array<Buffer | undefined>(queueSize).fill(undefined);
    this.bodyHead = Buffer.from(`{"resourceSpans":[{"resource":{"attributes":${JSON.stringify(this.resource)}},"scopeSpans":[{"scope":${JSON.stringify(this.scope)},"spans":[`);
    this.log = opts.log;
    this.timer = setInterval(() => this.tick(), clampDelay(positive(opts.batchTimeoutMs, OTLP_DEFAULT_BATCH_TIMEOUT_MS)));
    this.timer.unref();
  }

  /** Queues one finished span; O(1) but for its encoding, never throws, drops (and counts) when full or closed. */
  add(span: FinishedSpan): void {
    if (this.closed || this.count === this.ring.length) {
      this.counters.dropped++;
      return;
    }
    this.addEncoded(encodeSpan(span));
  }

  /** Queues one span already encoded as an OTLP/JSON span object (the data plane's observer writes them directly). */
  addEncoded(span: string): void {
    const size = this.ring.length;
    if (this.closed || this.count === size) {
      this.counters.dropped++;
      return;
    }
    const bytes = Buffer.from(span);
    let slot = this.head + this.count;
    if (slot >= size) slot -= size;
    this.ring[slot] = bytes;
    this.count++;
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
    this.abortInFlight?.();
    this.counters.dropped += this.count;
    this.ring.fill(undefined);
    this.head = 0;
    this.count = 0;
    this.agent.destroy();
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
    const batch = new Array<Buffer>(take);
    const size = this.ring.length;
    for (let i = 0; i < take; i++) {
      batch[i] = this.ring[this.head] as Buffer;
      this.ring[this.head] = undefined;
      if (++this.head === size) this.head = 0;
    }
    this.count -= take;
    this.inFlight = this.send(batch).then((ok) => {
      this.inFlight = undefined;
      if (!ok) this.paused = true;
      else if (this.count >= this.batchSize && !this.closed) this.exportNext();
    });
  }

  /** One POST; resolves true on a 2xx answer, false otherwise. Never rejects. */
  private send(batch: Buffer[]): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const parts: Buffer[] = [this.bodyHead];
      for (let i = 0; i < batch.length; i++) {
        if (i > 0) parts.push(COMMA);
        parts.push(batch[i] as Buffer);
      }
      parts.push(BODY_TAIL);
      const body = Buffer.concat(parts);
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (ok: boolean, fields: Record<string, unknown>): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.abortInFlight = undefined;
        if (ok) this.counters.exported += batch.length;
        else {
          this.counters.failed += batch.length;
          this.warn({ ...fields, spans: batch.length, url: this.url.href }, 'otlp export failed; batch dropped');
        }
        resolve(ok);
      };
      let req: http.ClientRequest;
      try {
        req = this.transport.request(this.url, {
          method: 'POST',
          agent: this.agent,
          headers: { ...this.headers, 'content-length': String(body.length) },
        });
      } catch (err) {
        // e.g. a request header value with characters HTTP forbids
        finish(false, { err: err instanceof Error ? err.message : String(err) });
        return;
      }
      timer = setTimeout(() => {
        req.destroy();
        finish(false, { reason: 'timeout', timeoutMs: this.timeoutMs });
      }, this.timeoutMs);
      timer.unref();
      this.abortInFlight = () => {
        req.destroy();
        finish(false, { reason: 'closed' });
      };
      req.on('error', (err) => finish(false, { err: err.message }));
      req.on('response', (res) => {
        res.on('error', (err) => finish(false, { err: err.message }));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          finish(status >= 200 && status < 300, { status });
        });
        res.resume();
      });
      req.end(body);
    });
  }

  /** A warning about spans dropped by a full queue since the last tick (rate-limited with the others). */
  private warnOnDrops(): void {
    if (this.counters.dropped === this.droppedAtLastCheck) return;
    const newlyDropped = this.counters.dropped - this.droppedAtLastCheck;
    this.droppedAtLastCheck = this.counters.dropped;
    this.warn({ newlyDropped, queueSize: this.ring.length }, 'otlp export queue full; spans dropped');
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
