/**
 * One scrape for a whole replica: the primary asks every serving worker for its registry's values over the
 * cluster IPC channel and sums them with prom-client's AggregatorRegistry.aggregate (each metric says how:
 * counters and histograms add up, `etcd_reachable` takes the minimum, `node_info` the first), so N calls are N
 * counts whichever worker served them.
 *
 * prom-client's own `clusterMetrics()` asks every connected worker, including one still starting that has not
 * loaded prom-client yet and so never answers, and then fails the scrape after 5 s. Here the primary asks only
 * workers that listen (workers.ts knows which), over the messages it already routes; a worker that does not answer
 * in time fails the scrape (503) rather than giving a sum with a worker's counts missing.
 */
import type { Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

/** One metric's values as Registry.getMetricsAsJSON() gives them (what AggregatorRegistry.aggregate sums). */
type metric = Awaited<ReturnType<Registry['getMetricsAsJSON']>>[number];

/** A worker that has not answered by then is treated as gone: the scrape fails rather than undercounts. */
export const SCRAPE_TIMEOUT_MS = 5_000;

export interface MetricsRequest {
  type: 'gateway:metrics-request';
  id: number;
}

export interface MetricsResponse {
  type: 'gateway:metrics';
  id: number;
  metrics?: metric[];
  error?: string;
}

/** Worker side: answers the primary's request with this process's values. */
export function answerMetricsRequest(registry: Registry | undefined, request: MetricsRequest, send: (message: MetricsResponse) => void): void {
  if (registry === undefined) return send({ type: 'gateway:metrics', id: request.id, metrics: [] });
  registry.getMetricsAsJSON().then(
    (metrics) => send({ type: 'gateway:metrics', id: request.id, metrics }),
    (err: unknown) => send({ type: 'gateway:metrics', id: request.id, error: err instanceof Error ? err.message : String(err) }),
  );
}

interface Pending {
  waiting: Set<Worker>;
  parts: metric[][];
  resolve: (text: { contentType: string; body: string }) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Primary side: scrape() asks the workers it is given and sums their answers. */
export class ClusterMetrics {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  scrape(workers: readonly Worker[]): Promise<{ contentType: string; body: string }> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const waiting = new Set(workers.filter((w) => w.isConnected()));
      if (waiting.size === 0) return reject(new Error('no worker is serving'));
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${waiting.size} worker(s) did not answer within ${SCRAPE_TIMEOUT_MS} ms`));
      }, SCRAPE_TIMEOUT_MS);
      this.pending.set(id, { waiting, parts: [], resolve, reject, timer });
      const request: MetricsRequest = { type: 'gateway:metrics-request', id };
      for (const worker of waiting) worker.send(request);
    });
  }

  /** A worker's answer (workers.ts routes `gateway:metrics` messages here). */
  onResponse(worker: Worker, message: MetricsResponse): void {
    const request = this.pending.get(message.id);
    if (request === undefined || !request.waiting.delete(worker)) return;
    if (message.error !== undefined) return this.settle(message.id, request, new Error(`a worker could not read its metrics: ${message.error}`));
    request.parts.push(message.metrics ?? []);
    if (request.waiting.size === 0) this.settle(message.id, request);
  }

  /** A worker that exits mid-scrape fails it (its counts are gone; a partial sum would undercount silently). */
  onExit(worker: Worker): void {
    for (const [id, request] of this.pending) {
      if (request.waiting.has(worker)) this.settle(id, request, new Error('a worker exited during the scrape'));
    }
  }

  private settle(id: number, request: Pending, err?: Error): void {
    this.pending.delete(id);
    clearTimeout(request.timer);
    if (err !== undefined) return request.reject(err);
    const registry = AggregatorRegistry.aggregate(request.parts);
    registry.metrics().then(
      (body) => request.resolve({ contentType: registry.contentType, body }),
      (e: unknown) => request.reject(e instanceof Error ? e : new Error(String(e))),
    );
  }

  close(): void {
    for (const [id, request] of this.pending) this.settle(id, request, new Error('shutting down'));
  }
}
