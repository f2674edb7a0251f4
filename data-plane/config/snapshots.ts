/**
 * Immutable config snapshots and their atomic swap. A snapshot is everything a call needs (router with resolved
 * upstreams, SNI table) built from one consistent config state; a call pins the snapshot current when it starts
 * and keeps it to the end, so a change in etcd applies to new calls only and never disturbs calls in flight.
 *
 * Rebuilding keeps what did not change: a route whose upstream settings are the same keeps its ResolvedUpstream
 * (and so its balancer position), and unchanged certificates keep their secure contexts.
 */
import type { Logger } from '../../shared/logger.ts';
import { Router, type RouteEntry } from '../routing/router.ts';
import { SniTable } from '../tls/sni-table.ts';
import { resolveUpstream, type ResolvedUpstream } from '../upstream/upstream.ts';
import type { ConfigState } from './config-state.ts';

/** What a matched route resolves to for its calls. */
export interface RouteTarget {
  readonly upstream: ResolvedUpstream;
  /** `grpc-limits` caps in bytes; undefined = no cap. */
  readonly maxRequestMessageBytes: number | undefined;
  readonly maxResponseMessageBytes: number | undefined;
}

export interface Snapshot {
  readonly revision: string;
  readonly router: Router<RouteTarget>;
  readonly sni: SniTable;
  /** Every upstream node key in use, so the pool can drain sessions to nodes no route uses any more. */
  readonly nodeKeys: ReadonlySet<string>;
  /** Route id → the JSON of its upstream settings and what it resolved to, for reuse by the next build. */
  readonly upstreams: ReadonlyMap<string, { fingerprint: string; upstream: ResolvedUpstream }>;
}

export function buildSnapshot(input: ConfigState, previous: Snapshot | undefined, log: Logger): Snapshot {
  const entries: RouteEntry<RouteTarget>[] = [];
  const upstreams = new Map<string, { fingerprint: string; upstream: ResolvedUpstream }>();
  const nodeKeys = new Set<string>();
  for (const item of input.routes.values()) {
    const conf = item.value.upstream;
    if (conf === undefined) continue; // validation requires it; upstream_id/service_id arrive with issue #4
    const fingerprint = JSON.stringify([conf, item.value.timeout ?? null]);
    const kept = previous?.upstreams.get(item.id);
    const upstream =
      kept !== undefined && kept.fingerprint === fingerprint ? kept.upstream : resolveUpstream(`route ${item.id}`, conf, item.value.timeout);
    upstreams.set(item.id, { fingerprint, upstream });
    for (const node of upstream.nodes) nodeKeys.add(node.key);
    const limits = item.value.plugins?.['grpc-limits'];
    entries.push({
      id: item.id,
      route: item.value,
      target: {
        upstream,
        maxRequestMessageBytes: limits?.max_request_message_bytes,
        maxResponseMessageBytes: limits?.max_response_message_bytes,
      },
    });
  }
  return {
    revision: input.revision,
    router: new Router(entries),
    sni: new SniTable(input.ssls.values(), previous?.sni, log),
    nodeKeys,
    upstreams,
  };
}

/** Holds the current snapshot; readers call current() once per call and keep what they got. */
export class Snapshots {
  private snapshot: Snapshot;
  private readonly listeners: ((snapshot: Snapshot) => void)[] = [];

  constructor(initial: Snapshot) {
    this.snapshot = initial;
  }

  current(): Snapshot {
    return this.snapshot;
  }

  swap(next: Snapshot): void {
    this.snapshot = next;
    for (const listener of this.listeners) listener(next);
  }

  onSwap(listener: (snapshot: Snapshot) => void): void {
    this.listeners.push(listener);
  }
}
