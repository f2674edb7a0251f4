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
import { NoHealthyNode, RouteNotFound, type GatewayError } from '../../shared/errors.ts';
import type { ConfigState } from './config-state.ts';
import { resolveRoute } from './resolve-route.ts';

/** What a matched route resolves to for its calls. */
export interface RouteTarget {
  readonly upstream: ResolvedUpstream;
  /** Set when the route's references cannot be followed: every call is answered with this error. */
  readonly error: GatewayError | undefined;
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
  /** Route id → its target (also for routes with `status: 0`, which the router leaves out). */
  readonly targets: ReadonlyMap<string, RouteTarget>;
  /** Resolved upstreams by what they were built from, for reuse by the next build and among routes. */
  readonly upstreamCache: ReadonlyMap<string, ResolvedUpstream>;
}

export function buildSnapshot(input: ConfigState, previous: Snapshot | undefined, log: Logger): Snapshot {
  const entries: RouteEntry<RouteTarget>[] = [];
  const targets = new Map<string, RouteTarget>();
  const upstreamCache = new Map<string, ResolvedUpstream>();
  const nodeKeys = new Set<string>();
  for (const item of input.routes.values()) {
    const resolved = resolveRoute(item.id, item.value, item.modRevision, input);
    let target: RouteTarget;
    if (!resolved.ok) {
      log.warn({ route: item.id, detail: resolved.detail }, 'route references a missing object; its calls fail until it exists');
      const error = resolved.reason === 'service' ? new RouteNotFound(`${item.value.uri ?? item.id} (${resolved.detail})`) : new NoHealthyNode(`route ${item.id}: ${resolved.detail}`);
      target = { upstream: EMPTY_UPSTREAM, error, maxRequestMessageBytes: undefined, maxResponseMessageBytes: undefined };
    } else {
      // Routes that share an upstream object (and timeouts and client certificate) share one balancer, as in
      // APISIX; an unchanged upstream keeps its balancer position and sessions across rebuilds.
      const fingerprint = JSON.stringify([resolved.upstreamKey, resolved.upstream, item.value.timeout ?? null, resolved.clientCert?.id ?? null]);
      let upstream = upstreamCache.get(fingerprint) ?? previous?.upstreamCache.get(fingerprint);
      if (upstream === undefined) upstream = resolveUpstream(resolved.upstreamKey, resolved.upstream, item.value.timeout, resolved.clientCert);
      upstreamCache.set(fingerprint, upstream);
      for (const node of upstream.nodes) nodeKeys.add(node.key);
      const limits = resolved.route.plugins?.['grpc-limits'];
      target = {
        upstream,
        error: undefined,
        maxRequestMessageBytes: limits?.max_request_message_bytes,
        maxResponseMessageBytes: limits?.max_response_message_bytes,
      };
    }
    targets.set(item.id, target);
    entries.push({ id: item.id, route: resolved.route, target });
  }
  return {
    revision: input.revision,
    router: new Router(entries),
    sni: new SniTable(input.ssls.values(), previous?.sni, log),
    nodeKeys,
    targets,
    upstreamCache,
  };
}

const EMPTY_UPSTREAM = resolveUpstream('(none)', { nodes: [] }, undefined);

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
