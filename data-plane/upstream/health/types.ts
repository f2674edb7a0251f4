/**
 * What an active probe needs and what it reports (data-plane/upstream/health/probes.ts). The checker
 * (checker.ts) turns results into node states with APISIX's counters (lua-resty-healthcheck): successes,
 * http failures, tcp failures and timeouts, each with its own threshold.
 */
export type ProbeType = 'grpc' | 'tcp' | 'http' | 'https';

/** One node as a probe reaches it: the node's address, or `checks.active.port` instead of its port. */
export interface ProbeTarget {
  readonly host: string;
  readonly port: number;
  /** The upstream's scheme: a `grpc` probe speaks h2c to `grpc` nodes and TLS (ALPN h2) to `grpcs` nodes. */
  readonly scheme: 'grpc' | 'grpcs';
  /** TLS towards the node for grpc probes of `grpcs` upstreams, and for `https` probes. */
  readonly tls:
    | {
        /** The upstream's client certificate (mTLS), if it has one. */
        readonly clientCert: { readonly id: string; readonly cert: string; readonly key: string } | undefined;
        /** Verify the node's certificate (`https_verify_certificate`, or the upstream's `tls.verify` for grpc). */
        readonly verify: boolean;
        /** Trusted CAs for verification (apisix.ssl.ssl_trusted_certificate); undefined = Node's defaults. */
        readonly ca: string | undefined;
      }
    | undefined;
}

export interface ActiveProbe {
  readonly type: ProbeType;
  /** The whole probe (connect included) must finish within this; otherwise it is a timeout. */
  readonly timeoutMs: number;
  /** `:authority` (grpc) or `Host` (http/https) when set; otherwise the node's `host:port`. */
  readonly host: string | undefined;
  /** http/https: the request path (`http_path`, default "/"). */
  readonly httpPath: string;
  /** http/https: extra request headers, APISIX's `req_headers` ("Name: value" strings). */
  readonly reqHeaders: readonly string[];
  /** grpc: the `service` field of grpc.health.v1.HealthCheckRequest (`grpc_service`, default ""). */
  readonly grpcService: string;
  /** http/https: statuses that count as a success (`healthy.http_statuses`). */
  readonly healthyStatuses: readonly number[];
  /** http/https: statuses that count as an http failure (`unhealthy.http_statuses`). */
  readonly unhealthyStatuses: readonly number[];
}

/**
 * How one probe ended, in APISIX's counters. `none`: an http status in neither list (counted nowhere, as in
 * lua-resty-healthcheck). `reason` is for the log line of a state change ("NOT_SERVING", "connect ECONNREFUSED",
 * "HTTP 503", "timed out after 1000 ms").
 */
export type ProbeOutcome = 'success' | 'http_failure' | 'tcp_failure' | 'timeout' | 'none';

export interface ProbeResult {
  readonly outcome: ProbeOutcome;
  readonly reason: string;
}
