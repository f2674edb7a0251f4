/**
 * What one call carries for the observer (observer.ts), from its first header to its last frame: one small object
 * per call, made only when something records (metrics, access log, request ids or traces), filled in place by the
 * listener and the call (proxy/call.ts), and read once when the call ends. It is also the access log's CallRecord
 * (call-record.ts): the formatter reads it directly, so a logged call costs no second object. No closure, no
 * per-message object.
 */
import type { CallRecord } from './call-record.ts';
import type { RouteObservation } from './route-observation.ts';

/** Until the first performance.now() tick: epoch ms = TIME_ORIGIN + performance.now(). */
const TIME_ORIGIN = performance.timeOrigin;

/** The node a call last tried, as the observation needs it (an UpstreamNode is one). */
export interface ObservedNode {
  readonly host: string;
  readonly port: number;
  /** ip:port as nginx logs $upstream_addr. */
  readonly address: string;
}

/**
 * The access log's values that derive from others (the times, the route's ids, the node) are getters on the
 * prototype rather than fields filled at the end: ~300 bytes per call were the largest allocation observability
 * added, and the 2-worker bench pays for every byte a call touches (issue #14's note).
 */
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
  /** The last node tried; undefined while none (the `node` label is then '', as APISIX's balancer_ip). */
  node: ObservedNode | undefined = undefined;
  /** performance.now() when the first attempt began; 0 while none. */
  upstreamStartHr = 0;
  /** performance.now() when the call ended; 0 until then. */
  endedHr = 0;
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
  /** The consumer an authentication plugin found (set by the listener after the plugins ran); '' when none. */
  consumerName = '';

  constructor(startedHr: number, method: string, path: string, authority: string, remoteAddr: string, remotePort: number, tls: boolean) {
    this.startedHr = startedHr;
    this.method = method;
    this.path = path;
    this.authority = authority;
    this.remoteAddr = remoteAddr;
    this.remotePort = remotePort;
    this.scheme = tls ? 'tls' : 'h2c';
  }

  get nodeHost(): string {
    return this.node === undefined ? '' : this.node.host;
  }

  get nodePort(): number {
    return this.node === undefined ? 0 : this.node.port;
  }

  get upstreamAddr(): string {
    return this.node === undefined ? '' : this.node.address;
  }

  get startedAt(): number {
    return TIME_ORIGIN + this.startedHr;
  }

  get durationMs(): number {
    return this.endedHr - this.startedHr;
  }

  /** -1 when no upstream answered. */
  get upstreamMs(): number {
    return this.answered && this.upstreamStartHr > 0 ? this.endedHr - this.upstreamStartHr : -1;
  }

  get routeId(): string {
    return this.route === undefined ? '' : this.route.routeId;
  }

  get routeName(): string {
    return this.route === undefined ? '' : this.route.routeName;
  }

  get serviceId(): string {
    return this.route === undefined ? '' : this.route.serviceId;
  }
}
