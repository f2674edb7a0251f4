/**
 * The process-wide memory watermark (Envoy's overload manager, action `stop_accepting_requests`): while the V8 heap
 * plus the memory V8 accounts outside it (Buffers, which is what streaming gRPC data lives in) is above a fraction
 * of V8's heap limit, or the process's RSS is above a configured size, new streams are answered with
 * RESOURCE_EXHAUSTED (trailers-only, so every gRPC client reads a status) and never reach an upstream, until the
 * memory recedes. Streams in flight go on: shedding new work is what lets them finish and free their buffers.
 *
 * Memory is sampled on a timer (`check_interval`, 1 s by default), never per stream: a stream reads one boolean.
 */
import { getHeapStatistics } from 'node:v8';
import type { OverloadLimits } from '../../shared/config-http2.ts';
import { GatewayError } from '../../shared/errors.ts';
import { GrpcStatus } from '../../shared/grpc-status.ts';
import type { Logger } from '../../shared/logger.ts';

/** A new stream refused because the process is over its memory watermark. */
export class Overloaded extends GatewayError {
  constructor() {
    super('OVERLOADED', 'the gateway is over its memory limit; retry later', GrpcStatus.RESOURCE_EXHAUSTED, 503);
  }
}

export interface MemorySample {
  /** (V8 heap in use + external memory) / V8 heap limit. */
  heapFraction: number;
  rssBytes: number;
}

export function sampleProcessMemory(): MemorySample {
  const heap = getHeapStatistics();
  return {
    heapFraction: (heap.used_heap_size + heap.external_memory) / heap.heap_size_limit,
    rssBytes: process.memoryUsage.rss(),
  };
}

export class MemoryWatermark {
  private over = false;
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly limits: OverloadLimits;
  private readonly log: Logger;
  private readonly sample: () => MemorySample;

  constructor(limits: OverloadLimits, log: Logger, sample: () => MemorySample = sampleProcessMemory) {
    this.limits = limits;
    this.log = log;
    this.sample = sample;
    if (limits.maxHeapFraction === 0 && limits.maxRssBytes === 0) return; // off
    this.check();
    this.timer = setInterval(() => this.check(), limits.checkIntervalMs);
    this.timer.unref();
  }

  /** Whether new streams are to be shed now (as of the last sample). */
  get overloaded(): boolean {
    return this.over;
  }

  /** Takes a sample now (the timer does this every `check_interval`). */
  check(): void {
    const { heapFraction, rssBytes } = this.sample();
    const { maxHeapFraction, maxRssBytes } = this.limits;
    const over = (maxHeapFraction > 0 && heapFraction > maxHeapFraction) || (maxRssBytes > 0 && rssBytes > maxRssBytes);
    if (over === this.over) return;
    this.over = over;
    // Logged on each change only: at most two lines per crossing, however many streams are refused meanwhile.
    const fields = { heapFraction: +heapFraction.toFixed(3), rssMiB: Math.round(rssBytes / 2 ** 20), maxHeapFraction, maxRssBytes };
    if (over) this.log.warn(fields, 'memory watermark crossed: refusing new streams with RESOURCE_EXHAUSTED');
    else this.log.info(fields, 'memory back under the watermark: accepting new streams');
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }
}
