/**
 * The data plane's one observer of calls (docs/architecture.md): fed when a call begins (request id, trace
 * context) and when it ends (metrics, one access-log line, one span), never from the relay's inner loops.
 *
 * - Request ids, APISIX's request-id plugin built in: the client's `x-request-id` is kept, else one is made (a
 *   UUID, APISIX's default algorithm); it goes upstream, comes back in the response headers
 *   (`include_in_response`) and into the access log.
 * - Trace context (W3C Trace Context): a call that came with a valid `traceparent` keeps its trace id and gets a
 *   span of its own, which becomes the upstream's parent (`traceparent` is rewritten, `tracestate` passes as it
 *   came). With a collector configured (plugin_attr.opentelemetry), a call without one starts a trace, and the
 *   sampler (the route's `opentelemetry.sampler`, else plugin_attr's) decides whether its span is exported.
 * - At the end: metrics.ts's counters, access-log.ts's buffered line, otlp-exporter.ts's bounded queue. None of
 *   them can block or fail a call: the line or span is dropped and counted instead.
 */
import type { ObservabilityConfig } from '../../shared/config-observability.ts';
import type { Logger } from '../../shared/logger.ts';
import { enableReadClock, readClockNow } from '../read-clock.ts';
import type { RouteEntry } from '../routing/router.ts';
import { compileAccessLogFormat, DEFAULT_JSON_LINE, READABLE_ACCESS_LOG_FORMAT, type LineEncoder } from './access-log-format.ts';
import { openAccessLog, type AccessLog } from './access-log.ts';
import { CallObservation } from './call-observation.ts';
import type { CallRecord } from './call-record.ts';
import { newRequestId } from './request-id.ts';
import { CallMetrics, grpcCodeName } from './metrics.ts';
import { OtlpExporter } from './otlp-exporter.ts';
import { ServerSpanEncoder } from './otlp-json.ts';
import { observeRoute } from './route-observation.ts';
import { compileSampler, type Sampler } from './sampler.ts';
import { newSpanId, newTraceAndSpanIds, parseTraceparent, validTracestate } from './trace-context.ts';

/** Until the first performance.now() tick: epoch ms = TIME_ORIGIN + performance.now(). */
const TIME_ORIGIN = performance.timeOrigin;

export class Observer {
  readonly metrics: CallMetrics | undefined;
  readonly accessLog: AccessLog | undefined;
  /** The line's format: encoded straight into the log's buffer (the default JSON line), or made as a string. */
  private readonly encoder: LineEncoder | undefined;
  private readonly format: ((r: CallRecord) => string) | undefined;
  /** Lower-case request id header; undefined when request ids are off. */
  readonly requestIdHeader: string | undefined;
  readonly requestIdInResponse: boolean;
  readonly exporter: OtlpExporter | undefined;
  private readonly sampler: Sampler;
  private readonly spans = new ServerSpanEncoder();
  private readonly preferName: boolean;

  constructor(config: ObservabilityConfig, log: Logger) {
    this.metrics = config.metrics.enable ? new CallMetrics(config.metrics) : undefined;
    if (config.accessLog.enable) {
      const format = config.accessLog.format === 'readable' ? READABLE_ACCESS_LOG_FORMAT : config.accessLog.format;
      if (format === undefined) this.encoder = DEFAULT_JSON_LINE;
      else this.format = compileAccessLogFormat(format, config.accessLog.escape); // a typo in the format stops the start
      this.accessLog = openAccessLog({ path: config.accessLog.path, log: log.child({ module: 'access-log' }), maxBufferBytes: config.accessLog.bufferBytes });
    }
    this.requestIdHeader = config.requestId.enable ? config.requestId.headerName : undefined;
    this.requestIdInResponse = config.requestId.includeInResponse;
    const collector = config.tracing.collector;
    if (collector !== undefined) {
      this.exporter = new OtlpExporter({
        address: collector.address,
        requestTimeoutMs: collector.requestTimeoutMs,
        requestHeaders: collector.headers,
        resource: { 'service.name': 'APISIX', ...config.tracing.resource },
        maxQueueSize: config.tracing.batch.maxQueueSize,
        maxExportBatchSize: config.tracing.batch.maxExportBatchSize,
        batchTimeoutMs: config.tracing.batch.batchTimeoutMs,
        log: log.child({ module: 'opentelemetry' }),
      });
    }
    this.sampler = compileSampler(config.tracing.sampler);
    this.preferName = config.metrics.preferName;
    enableReadClock();
  }

  /**
   * A call's observation from its request headers. `requestId` and `traceparent`/`tracestate` are the client's
   * values ('' when absent). Request ids are made here, trace context too; the route comes later (route()).
   */
  begin(method: string, path: string, authority: string, remoteAddr: string, remotePort: number, tls: boolean, requestId: string, traceparent: string, tracestate: string, userAgent: string): CallObservation {
    const obs = new CallObservation(readClockNow(), method, path, authority, remoteAddr, remotePort, tls);
    if (this.requestIdHeader !== undefined) {
      obs.clientRequestId = requestId !== '';
      obs.requestId = requestId !== '' ? requestId : newRequestId();
    }
    const parent = traceparent === '' ? undefined : parseTraceparent(traceparent);
    if (parent !== undefined) {
      obs.traceId = parent.traceId;
      obs.parentSpanId = parent.parentId;
      obs.sampled = parent.sampled; // the sampler may say otherwise once the route is known
      obs.spanId = newSpanId();
      if (tracestate !== '' && validTracestate(tracestate)) obs.traceState = tracestate;
    } else if (this.exporter !== undefined) {
      const ids = newTraceAndSpanIds();
      obs.traceId = ids.traceId;
      obs.spanId = ids.spanId;
    }
    if (this.accessLog !== undefined) obs.userAgent = userAgent;
    return obs;
  }

  /** The matched route: labels, and the sampling decision when spans are exported. */
  route(obs: CallObservation, entry: RouteEntry<unknown>): void {
    const route = observeRoute(entry, this.preferName);
    obs.route = route;
    if (this.exporter !== undefined && obs.traceId !== '') {
      const parent = obs.parentSpanId === '' ? undefined : { traceId: obs.traceId, parentId: obs.parentSpanId, sampled: obs.sampled };
      obs.sampled = (route.sampler ?? this.sampler)(parent, obs.traceId);
    }
  }

  /**
   * The call is over: count it, log it, export its span. `gatewayMade`: the gateway ended it (deadline, limits,
   * an upstream that failed): its metrics say `node=""` as for calls that never had a node.
   */
  end(obs: CallObservation, status: number, grpcStatus: number, grpcMessage: string, gatewayMade = false): void {
    const endedHr = readClockNow();
    obs.endedHr = endedHr;
    obs.status = status;
    obs.grpcStatus = grpcStatus;
    obs.grpcMessage = grpcMessage;
    const requestMs = endedHr - obs.startedHr;
    this.metrics?.record(obs.route, obs.path, obs.authority, obs.consumerName, gatewayMade ? '' : obs.nodeHost, status, grpcStatus, requestMs, obs.upstreamMs, obs.bytesReceived, obs.bytesSent);
    if (this.accessLog !== undefined) {
      // The record's times, route ids and node are getters over what the call filled in (call-observation.ts).
      if (this.encoder !== undefined) this.accessLog.writeRecord(obs, this.encoder);
      else if (this.format !== undefined) this.accessLog.write(this.format(obs));
    }
    if (this.exporter !== undefined && obs.sampled && obs.traceId !== '') this.exportSpan(obs, requestMs);
  }

  /** The call's SERVER span, with OpenTelemetry's RPC attributes, encoded here (otlp-json.ts) and queued as bytes. */
  private exportSpan(obs: CallObservation, requestMs: number): void {
    const exporter = this.exporter;
    if (exporter === undefined || !exporter.hasRoom()) return;
    const startUnixMs = TIME_ORIGIN + obs.startedHr;
    const error = SERVER_ERROR_CODES.has(obs.grpcStatus);
    const message = error ? `${grpcCodeName(obs.grpcStatus)}${obs.grpcMessage === '' ? '' : `: ${obs.grpcMessage}`}` : '';
    exporter.addEncoded(this.spans.encode(obs, startUnixMs, startUnixMs + requestMs, error, message));
  }

  async close(): Promise<void> {
    await this.exporter?.close();
    await this.accessLog?.close();
  }
}

/** UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS (OpenTelemetry semantic conventions for gRPC servers). */
const SERVER_ERROR_CODES: ReadonlySet<number> = new Set([2, 4, 12, 13, 14, 15]);

export { CallObservation };
