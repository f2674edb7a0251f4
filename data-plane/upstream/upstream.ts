/**
 * Resolves an upstream's configuration into what the hot path needs: normalised nodes (both APISIX node forms,
 * default port 80 for grpc and 443 for grpcs), a balancer, and the per-call settings (`pass_host`, connect
 * timeout, retries). Built once per config change, never per call.
 */
import type { UpstreamConf } from '../../shared/schema/upstream.ts';
import type { ClientCertificate } from './client-certificate.ts';
import { parseHostPort } from '../../shared/host-port.ts';
import { createBalancer } from './balancers/index.ts';
import type { Balancer } from './balancers/types.ts';
import type { HashOn } from './hash-key.ts';
import type { HealthChecker } from './health/checker.ts';
import type { HealthRegistry } from './health/registry.ts';

export type UpstreamScheme = 'grpc' | 'grpcs';

export interface UpstreamNode {
  /** Pool key: one set of sessions per scheme, host and port. */
  readonly key: string;
  readonly scheme: UpstreamScheme;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  /** Higher groups are used first; a lower group only when every node above it was tried (APISIX priority). */
  readonly priority: number;
  /** `host:port` (`[v6]:port`), as nginx logs $upstream_addr: made once here rather than per logged call. */
  readonly address: string;
  /** `host:port` with the scheme's default port left out, as APISIX sends it for `pass_host: node`. */
  readonly authority: string;
  /** TLS towards a grpcs node: mTLS client certificate and whether the node's certificate is verified. */
  readonly tls: { readonly clientCert: ClientCertificate | undefined; readonly verify: boolean } | undefined;
  /** keepalive_pool: sessions this node may have, idle close, and streams a session serves before it retires. */
  readonly pool: { readonly maxSessions: number; readonly idleTimeoutMs: number; readonly maxStreamsPerSession: number };
}

/** Pool defaults: sessions per node (a few suffice: each carries the upstream's whole stream limit). */
export const DEFAULT_MAX_SESSIONS = 8;
/** APISIX keepalive_pool.idle_timeout default (nginx's keepalive_timeout 60 s). */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

export interface ResolvedUpstream {
  /** Where the upstream came from, for logs and errors (`route 1`). */
  readonly name: string;
  readonly scheme: UpstreamScheme;
  readonly nodes: readonly UpstreamNode[];
  /**
   * The node for a call (or its retry, skipping the nodes in `exclude`): the highest priority group with a usable
   * node, unhealthy nodes left out unless every node is unhealthy (then all are used, as APISIX does); undefined
   * when none is left. `hashKey`: the call's key for `chash` (hash-key.ts).
   */
  pick(exclude?: ReadonlySet<string>, hashKey?: string): UpstreamNode | undefined;
  /** `chash`: what a call is hashed on; undefined for the other balancers. */
  readonly hash: { readonly on: HashOn; readonly key: string } | undefined;
  /** Whether the balancer wants begin/end for every attempt (least_conn, ewma). */
  readonly tracksCalls: boolean;
  /** An attempt started on `node` (least_conn counts calls in flight; ewma too). */
  begin(node: UpstreamNode): void;
  /** The attempt on `node` ended: ms to its response headers (or to its failure), and whether it failed before them. */
  end(node: UpstreamNode, latencyMs: number, failed: boolean): void;
  /** Health checks of this upstream (`checks`), shared with every route using the same upstream object. */
  readonly checker: HealthChecker | undefined;
  readonly passHost: 'pass' | 'node' | 'rewrite';
  readonly upstreamHost: string | undefined;
  readonly connectTimeoutMs: number;
  /** Stream idle timeout: no frame either way for this long fails the call; 0 = off (docs/proxying.md, Timeouts). */
  readonly readTimeoutMs: number;
  /** How long a request write may wait for the upstream's flow-control window; 0 = off. */
  readonly sendTimeoutMs: number;
  /** How many other nodes a call may try after a connect failure (APISIX: default `#nodes - 1`). */
  readonly retries: number;
  /** No new attempt starts this long after the call began; 0 = no limit (APISIX `retry_timeout`). */
  readonly retryTimeoutMs: number;
}

/** nginx's grpc_connect_timeout default, which APISIX keeps when no `timeout` is configured. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 60_000;
const DEFAULT_PORTS: Record<UpstreamScheme, number> = { grpc: 80, grpcs: 443 };

export function resolveUpstream(
  name: string,
  conf: UpstreamConf,
  routeTimeout: UpstreamConf['timeout'] | undefined,
  clientCert?: ClientCertificate,
  health?: HealthRegistry,
): ResolvedUpstream {
  // APISIX's default scheme is http; a gRPC gateway has nothing else to speak, so grpc is the default here.
  const scheme: UpstreamScheme = conf.scheme ?? 'grpc';
  const settings: NodeSettings = {
    tls: scheme === 'grpcs' ? { clientCert, verify: conf.tls?.verify ?? false } : undefined,
    pool: {
      maxSessions: conf.keepalive_pool?.size ?? DEFAULT_MAX_SESSIONS,
      idleTimeoutMs: conf.keepalive_pool?.idle_timeout === undefined ? DEFAULT_IDLE_TIMEOUT_MS : conf.keepalive_pool.idle_timeout * 1000,
      // nginx's keepalive_requests caps requests per connection; over HTTP/2 that would only churn sessions, so
      // there is no cap unless one is configured.
      maxStreamsPerSession: conf.keepalive_pool?.requests ?? Number.POSITIVE_INFINITY,
    },
  };
  const nodes = normaliseNodes(conf.nodes, scheme, settings);
  // route.timeout overrides upstream.timeout (apisix/balancer.lua set_balancer_opts).
  const timeout = routeTimeout ?? conf.timeout;
  const type = conf.type ?? 'roundrobin';
  const checker = health?.checkerFor(name, conf, nodes, clientCert);
  const picker = new Picker(nodes, type, checker);
  return {
    name,
    scheme,
    nodes,
    pick: (exclude, hashKey) => picker.pick(exclude, hashKey ?? ''),
    hash: type === 'chash' ? { on: conf.hash_on ?? 'vars', key: conf.key ?? '' } : undefined,
    tracksCalls: type === 'least_conn' || type === 'ewma',
    begin: (node) => picker.begin(node),
    end: (node, latencyMs, failed) => picker.end(node, latencyMs, failed),
    checker,
    passHost: conf.pass_host ?? 'pass',
    upstreamHost: conf.upstream_host,
    connectTimeoutMs: timeout === undefined ? DEFAULT_CONNECT_TIMEOUT_MS : timeout.connect * 1000,
    // Unlike nginx's defaults, idle timeouts are off unless configured: a quiet long-lived stream is legitimate
    // in gRPC, clients bound calls with deadlines, and PING keepalive finds dead connections.
    readTimeoutMs: timeout === undefined ? 0 : timeout.read * 1000,
    sendTimeoutMs: timeout === undefined ? 0 : timeout.send * 1000,
    retryTimeoutMs: (conf.retry_timeout ?? 0) * 1000,
    retries: conf.retries ?? Math.max(0, nodes.filter((n) => n.weight > 0).length - 1),
  };
}

interface Group {
  readonly nodes: UpstreamNode[];
  readonly balancer: Balancer;
  /** Healthy nodes of the group (1) when some are not; undefined when every node may be used. */
  mask: Uint8Array | undefined;
  /** Nodes the mask lets through. */
  usable: number;
}

/**
 * The balancer of each node priority, highest first (apisix/balancer/priority.lua), with the checker's view of
 * health as masks (recomputed only when a node's state changed, so a pick costs one version compare).
 */
class Picker {
  private readonly groups: Group[];
  private readonly slots = new Map<UpstreamNode, { group: Group; index: number }>();
  private seen = -1;

  private readonly checker: HealthChecker | undefined;

  constructor(nodes: readonly UpstreamNode[], type: NonNullable<UpstreamConf['type']>, checker: HealthChecker | undefined) {
    this.checker = checker;
    const byPriority = new Map<number, UpstreamNode[]>();
    for (const node of nodes) {
      const group = byPriority.get(node.priority);
      if (group === undefined) byPriority.set(node.priority, [node]);
      else group.push(node);
    }
    this.groups = [...byPriority.entries()]
      .sort((a, b) => b[0] - a[0])
      .map(([, members]) => ({ nodes: members, balancer: createBalancer(type, members), mask: undefined, usable: members.length }));
    for (const group of this.groups) group.nodes.forEach((node, index) => this.slots.set(node, { group, index }));
  }

  pick(exclude: ReadonlySet<string> | undefined, hashKey: string): UpstreamNode | undefined {
    if (this.checker !== undefined && this.checker.version !== this.seen) this.refresh(this.checker);
    for (const group of this.groups) {
      if (group.usable === 0) continue;
      let usable = group.mask;
      if (exclude !== undefined && exclude.size > 0) {
        // A retry: the nodes this call tried are out too (rare, so a fresh mask is fine).
        const mask = usable === undefined ? new Uint8Array(group.nodes.length).fill(1) : usable.slice();
        let left = 0;
        for (let i = 0; i < mask.length; i++) {
          if (exclude.has((group.nodes[i] as UpstreamNode).key)) mask[i] = 0;
          left += mask[i] as number;
        }
        if (left === 0) continue;
        usable = mask;
      }
      const index = group.balancer.pick(usable, hashKey);
      if (index >= 0) return group.nodes[index];
    }
    return undefined;
  }

  begin(node: UpstreamNode): void {
    const slot = this.slots.get(node);
    if (slot !== undefined) slot.group.balancer.begin(slot.index);
  }

  end(node: UpstreamNode, latencyMs: number, failed: boolean): void {
    const slot = this.slots.get(node);
    if (slot !== undefined) slot.group.balancer.end(slot.index, latencyMs, failed);
  }

  /** Masks from the checker's states; when no node at all is healthy, every node is used (APISIX). */
  private refresh(checker: HealthChecker): void {
    this.seen = checker.version;
    let healthy = 0;
    for (const group of this.groups) {
      let mask: Uint8Array | undefined;
      let usable = 0;
      group.nodes.forEach((node, i) => {
        if (checker.isHealthy(node.key)) {
          usable++;
          // Healthy nodes of weight 0 take no calls: they do not keep the all-unhealthy fallback off.
          if (node.weight > 0) healthy++;
          if (mask !== undefined) mask[i] = 1;
        } else if (mask === undefined) {
          mask = new Uint8Array(group.nodes.length);
          mask.fill(1, 0, i);
        }
      });
      group.mask = mask;
      group.usable = usable;
    }
    if (healthy > 0) return;
    for (const group of this.groups) {
      group.mask = undefined;
      group.usable = group.nodes.length;
    }
  }
}

type NodeSettings = Pick<UpstreamNode, 'tls' | 'pool'>;

function normaliseNodes(nodes: UpstreamConf['nodes'], scheme: UpstreamScheme, settings: NodeSettings): UpstreamNode[] {
  const out: UpstreamNode[] = [];
  if (Array.isArray(nodes)) {
    for (const n of nodes) out.push(makeNode(scheme, n.host, n.port, n.weight, n.priority ?? 0, settings));
  } else {
    for (const [address, weight] of Object.entries(nodes)) {
      const parsed = parseHostPort(address);
      if (parsed !== undefined) out.push(makeNode(scheme, parsed.host, parsed.port, weight, 0, settings));
    }
  }
  return out;
}

function makeNode(
  scheme: UpstreamScheme,
  host: string,
  port: number | undefined,
  weight: number,
  priority: number,
  settings: NodeSettings,
): UpstreamNode {
  const effectivePort = port ?? DEFAULT_PORTS[scheme];
  const authority = effectivePort === DEFAULT_PORTS[scheme] ? host : `${host}:${effectivePort}`;
  // Sessions are pooled per TLS identity too (APISIX: scheme#host#port#sni#cert): a session made with one client
  // certificate, or without verification, is never lent to an upstream configured otherwise.
  const tls = settings.tls;
  const tlsKey = (tls?.verify === true ? '#verify' : '') + (tls?.clientCert === undefined ? '' : `#cert=${tls.clientCert.id}`);
  const key = `${scheme}://${host}:${effectivePort}${tlsKey}`;
  const address = host.includes(':') ? `[${host}]:${effectivePort}` : `${host}:${effectivePort}`;
  return { key, scheme, host, port: effectivePort, weight, priority, address, authority, ...settings };
}
