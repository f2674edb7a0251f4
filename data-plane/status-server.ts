/**
 * The data plane's status port: a plain node:http (HTTP/1.1) server for probes, on its own address and never on
 * a gRPC listener, so a load balancer's or kubelet's HTTP check needs no HTTP/2 and cannot disturb gRPC traffic.
 * It plays the part of APISIX 3's status API (`apisix.status`, `/status` and `/status/ready`) under the names
 * Kubernetes probes use:
 *
 * - `GET /healthz`: 200 while the process runs (liveness). It stays 200 while etcd is unreachable: restarting a
 *   data plane that serves its last good config would only lose that config.
 * - `GET /readyz`: 200 once the first config snapshot from etcd is in service behind the gRPC listeners, 503 before
 *   that and while draining (readiness).
 *
 * Both bodies carry the same report: `revision` (the etcd revision of the snapshot in service, a string as etcd's
 * int64 revisions are; null before the first load), `routes`, and `config_stale`, true while the etcd watch is down
 * and the snapshot may lag behind etcd, with `since`, when that stale period began (ISO 8601; null while live).
 * Readiness does not follow `config_stale`: a stale data plane still routes every call it routed before
 * (docs/architecture.md: replicas keep serving their last good config while etcd is unreachable).
 *
 * The same holds when etcd is reachable but the configuration cannot be applied (issue #11): `config_error` says
 * why the newest state is not in service (null once a later one applies) and makes `config_stale` true, since the
 * snapshot then lags behind etcd as surely as with the watch down; `config_skipped` counts routes left out (or kept
 * at their last good build) because they could not be built. Readiness stays 200: the process still serves its
 * last good config, and taking every replica out of a load balancer because of one bad etcd value would turn an
 * isolated config error into a full outage. Alerting belongs on `config_stale`/`config_error`.
 *
 * Prometheus scrapes `GET /apisix/prometheus/metrics` (APISIX's export URI, `plugin_attr.prometheus.export_uri`) or
 * `GET /metrics` here, unless `export_addr` gives the metrics a server of their own (issue #14).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { ListenAddress } from '../shared/config.ts';
import { describe } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { listenOn } from './listen.ts';
import type { CheckerReport } from './upstream/health/checker.ts';

export const StatusPhase = {
  /** Reading the first config from etcd, or starting the gRPC listeners. */
  loading: 'loading',
  /** A snapshot is in service behind listening gRPC servers. */
  serving: 'serving',
  /** close() began: listeners stop accepting, calls in flight finish. */
  draining: 'draining',
} as const;
export type StatusPhase = (typeof StatusPhase)[keyof typeof StatusPhase];

/** What the data plane knows about itself at the moment of a probe. */
export interface StatusReport {
  phase: StatusPhase;
  /** etcd revision of the snapshot in service; undefined before the first load. */
  revision: string | undefined;
  routes: number;
  /** Whether the etcd watch is live; `since` is when it last became live or stopped being so (epoch ms). */
  watch: { connected: boolean; since: number };
  /** Whether the configuration could be applied; absent from reports of an older worker or before the first load. */
  config?: ConfigHealth;
  /** With worker processes: each worker's own report (the fields above are then their summary). */
  workers?: readonly WorkerStatus[];
}

export interface WorkerStatus {
  id: number;
  pid: number;
  phase: StatusPhase;
  revision: string | undefined;
  routes: number;
  watch: { connected: boolean; since: number };
  config?: ConfigHealth;
}

export interface ConfigHealth {
  /** Why the newest configuration state is not in service; undefined while it is. */
  error: string | undefined;
  /** Routes that could not be built: left out, or kept at their last good build. */
  skipped: number;
}

export interface StatusServerOptions {
  listen: ListenAddress;
  /** Called once per probe; cheap, never throws. */
  report: () => StatusReport;
  /** The health checkers' states (APISIX control API `GET /v1/healthcheck`); none when absent. */
  healthcheck?: () => readonly CheckerReport[];
  /**
   * Prometheus metrics (observability/metrics.ts) at `uri` (plugin_attr.prometheus.export_uri) and at `/metrics`;
   * `scrape` rejects when they cannot be gathered (a worker that does not answer): 503.
   */
  metrics?: { uri: string; scrape: () => Promise<{ contentType: string; body: string }> };
  /** A server of its own for the metrics (plugin_attr.prometheus.export_addr): no probe paths. */
  metricsOnly?: boolean;
  log: Logger;
}

export interface StatusAddress {
  host: string;
  port: number;
}

export interface StatusServer {
  readonly address: StatusAddress;
  /** Idempotent: stops accepting and closes every connection, idle keep-alive ones included. */
  close(): Promise<void>;
}

const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' } as const;
/** Probes send no body and a few headers; anything slower than this is not a probe worth a socket. */
const REQUEST_TIMEOUT_MS = 5_000;

export async function startStatusServer(options: StatusServerOptions): Promise<StatusServer> {
  const log = options.log.child({ module: 'status-server' });
  const server = createServer({ requestTimeout: REQUEST_TIMEOUT_MS }, (req, res) => answer(req, res, options));
  server.on('clientError', (_err, socket) => socket.destroy());
  const port = await listenOn(server, options.listen).catch((err: unknown) => {
    throw new Error(`status server (apisix.status) cannot listen on ${options.listen.ip}:${options.listen.port}: ${describe(err)}`);
  });
  server.on('error', (err: Error) => log.error({ err: err.message }, 'status server error'));
  let closing: Promise<void> | undefined;
  return {
    address: { host: options.listen.ip, port },
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function answer(req: IncomingMessage, res: ServerResponse, options: StatusServerOptions): void {
  const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
  const metrics = options.metrics;
  if (metrics !== undefined && (path === metrics.uri || path === '/metrics')) return answerMetrics(req, res, metrics.scrape, options.log);
  if (options.metricsOnly === true) return send(res, 404, { error_msg: 'not found' });
  const healthcheck = path === '/v1/healthcheck' || path.startsWith('/v1/healthcheck/');
  if (path !== '/healthz' && path !== '/readyz' && !healthcheck) return send(res, 404, { error_msg: 'not found' });
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return send(res, 405, { error_msg: 'method not allowed' });
  }
  if (healthcheck) return answerHealthcheck(res, path, options.healthcheck?.() ?? []);
  const now = options.report();
  const body = {
    revision: now.revision ?? null,
    routes: now.routes,
    config_stale: isStale(now),
    since: now.watch.connected ? null : new Date(now.watch.since).toISOString(),
    config_error: now.config?.error ?? null,
    config_skipped: now.config?.skipped ?? 0,
    ...(now.workers === undefined
      ? {}
      : {
          workers: now.workers.map((w) => ({
            id: w.id,
            pid: w.pid,
            status: w.phase === StatusPhase.serving ? 'ok' : w.phase,
            revision: w.revision ?? null,
            routes: w.routes,
            config_stale: isStale(w),
            config_error: w.config?.error ?? null,
            config_skipped: w.config?.skipped ?? 0,
          })),
        }),
  };
  if (path === '/healthz') return send(res, 200, { status: 'ok', ...body });
  const ready = now.phase === StatusPhase.serving;
  send(res, ready ? 200 : 503, { status: ready ? 'ok' : now.phase, ...body });
}

function answerMetrics(req: IncomingMessage, res: ServerResponse, scrape: NonNullable<StatusServerOptions['metrics']>['scrape'], log: Logger): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return send(res, 405, { error_msg: 'method not allowed' });
  }
  scrape().then(
    ({ contentType, body }) => {
      if (!res.destroyed) res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' }).end(body);
    },
    (err: unknown) => {
      log.warn({ err: describe(err) }, 'metrics scrape failed');
      if (!res.destroyed) send(res, 503, { error_msg: `metrics unavailable: ${describe(err)}` });
    },
  );
}

/**
 * APISIX's control API: `GET /v1/healthcheck` lists every checker (`name` is the object holding the upstream,
 * `/apisix/upstreams/1` or `/apisix/routes/1`), `GET /v1/healthcheck/upstreams/<id>` (or `routes/<id>`,
 * `services/<id>`) one of them, 404 when that object has no running checker.
 */
function answerHealthcheck(res: ServerResponse, path: string, checkers: readonly CheckerReport[]): void {
  const strip = (c: CheckerReport): CheckerReport => ({
    name: c.name,
    type: c.type,
    nodes: c.nodes.map((n) => ({ ip: n.ip, port: n.port, hostname: n.hostname, status: n.status, counter: n.counter })),
  });
  if (path === '/v1/healthcheck' || path === '/v1/healthcheck/') return send(res, 200, checkers.map(strip));
  const match = /^\/v1\/healthcheck\/(upstreams|routes|services)\/([^/]+)$/.exec(path);
  if (match === null) return send(res, 404, { error_msg: 'not found' });
  const name = `/apisix/${match[1] ?? ''}/${decodeSafe(match[2] ?? '')}`;
  const found = checkers.find((c) => c.name === name);
  if (found === undefined) return send(res, 404, { error_msg: `no health checker for ${name}` });
  send(res, 200, strip(found));
}

function decodeSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The snapshot may lag behind etcd: the watch is down, or the newest state could not be applied. */
function isStale(status: { watch: { connected: boolean }; config?: ConfigHealth | undefined }): boolean {
  return !status.watch.connected || status.config?.error !== undefined;
}

function send(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, JSON_HEADERS).end(JSON.stringify(body)); // node:http sends no body to HEAD requests
}

