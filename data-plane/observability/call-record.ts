/**
 * The record of one finished gRPC call, filled by the proxy when the call ends and handed to the access log (and
 * whatever else observes calls). It is the gateway's equivalent of the values nginx's log phase reads
 * (`$remote_addr`, `$request_time`, `$upstream_addr`…): plain fields copied once, so that formatting a line reads
 * no live stream or session object and can run after the call's resources are gone.
 */

export interface CallRecord {
  /** Epoch ms when the call's request headers arrived. */
  startedAt: number;
  /** ms from request headers to the call's end (nginx $request_time is seconds: the formatter converts). */
  durationMs: number;
  /** ms from the first attempt's start to the end of the upstream response; -1 when no upstream answered. */
  upstreamMs: number;
  remoteAddr: string;
  remotePort: number;
  /** 'h2c' | 'tls' */
  scheme: string;
  /** The request's :method, :path, :authority. */
  method: string;
  path: string;
  authority: string;
  /** '' when no route matched. */
  routeId: string;
  routeName: string;
  serviceId: string;
  /** The consumer an authentication plugin found (`key-auth`), '' when none. */
  consumerName: string;
  /** ip:port of the last upstream node tried, '' when none. */
  upstreamAddr: string;
  /** HTTP :status sent to the client (200 for gRPC answers, 499 when the client went away first, as nginx logs). */
  status: number;
  grpcStatus: number;
  grpcMessage: string;
  /** DATA payload bytes received from / sent to the client. */
  bytesReceived: number;
  bytesSent: number;
  requestId: string;
  /** '' when the call has no trace context. */
  traceId: string;
  spanId: string;
  userAgent: string;
}
