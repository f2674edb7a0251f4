/**
 * What one call carries for the observer (observer.ts), from its first header to its last frame: one small object
 * per call, made only when something records (metrics, access log, request ids or traces), filled in place by the
 * listener and the call (proxy/call.ts), and read once when the call ends. It is also the access log's CallRecord
 * (call-record.ts): the formatter reads it directly, so a logged call costs no second object. No closure, no
 * per-message object.
 */
import type { CallRecord } from './call-record.ts';
import type { RouteObservation } from './route-observation.ts';

export class CallObservation implements CallRecord {
  /** performance.now() at the request headers. */
  readonly startedHr: number;
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly remoteAddr: string;
  readonly remotePort: number;
  /** 'h2c' or 'tls'. */
  readonly scheme: string;
  route: RouteObservation | undefined;
  /** The last node tried: its host ('' while none: the `node` label, as APISIX's balancer_ip) and port. */
  nodeHost = '';
  nodePort = 0;
  /** performance.now() when the first attempt began; 0 while none. */
  upstreamStartHr = 0;
  /** Whether an upstream answered with response headers. */
  answered = false;
  /** HTTP :status sent to the client (499: the client went away first, as nginx logs it). */
  status = 200;
  grpcStatus = -1;
  grpcMessage = '';
  /** DATA payload bytes from and to the client. */
  bytesReceived = 0;
  bytesSent = 0;
  /** The client's request id, or one made for the call; '' when request ids are off. */
  requestId = '';
  /** The client sent the request id itself (it is forwarded as it came, not added again). */
  clientRequestId = false;
  /** Trace context: '' when the call has none. */
  traceId = '';
  spanId = '';
  parentSpanId = '';
  traceState = '';
  sampled = false;
  userAgent = '';
  // Filled when the call ends (observer.end), for the access log.
  startedAt = 0;
  durationMs = 0;
  upstreamMs = -1;
  routeId = '';
  routeName = '';
  serviceId = '';
  /** ip:port of nodeHost and nodePort ('' while none), set with them. */
  upstreamAddr = '';

  constructor(startedHr: number, method: string, path: string, authority: string, remoteAddr: string, remotePort: number, tls: boolean) {
    this.startedHr = startedHr;
    this.method = method;
    this.path = path;
    this.authority = authority;
    this.remoteAddr = remoteAddr;
    this.remotePort = remotePort;
    this.scheme = tls ? 'tls' : 'h2c';
  }
}
