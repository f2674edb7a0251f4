/**
 * One downstream stream from start to finish: pin the config snapshot, match a route, pick a node for this call,
 * get a pooled session, forward. Every early exit goes through respondError, which answers with a trailers-only
 * gRPC status. A node that cannot be connected to is retried on the next untried node (APISIX `retries`, default
 * #nodes − 1): nothing has been sent upstream or to the client yet, so the retry is safe for any call.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { NoHealthyNode, RouteNotFound } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import type { Snapshots } from '../config/snapshots.ts';
import type { SessionPool } from '../upstream/pool.ts';
import type { ResolvedUpstream, UpstreamNode } from '../upstream/upstream.ts';
import { forward } from './forward.ts';
import { respondError } from './respond-error.ts';

export interface ProxyDeps {
  snapshots: Snapshots;
  pool: SessionPool;
  log: Logger;
}

export function handleStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, deps: ProxyDeps): void {
  const snapshot = deps.snapshots.current(); // 1. pinned for the whole call
  const path = headers[':path'] ?? '';
  const match = snapshot.router.match({ path, method: headers[':method'] ?? '', authority: headers[':authority'] ?? headers.host });
  if (match === undefined) return respondError(stream, new RouteNotFound(path));
  const upstream = match.target;
  const node = upstream.balancer.pick(); // 2. per call, never per connection
  if (node === undefined) return respondError(stream, new NoHealthyNode(upstream.name));
  const session = deps.pool.ready(node); // 3. the common case: a connected pooled session, no promise
  if (session !== undefined) return forward(stream, headers, session, upstream, node);
  connectThenForward(stream, headers, upstream, node, deps, undefined);
}

function connectThenForward(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  upstream: ResolvedUpstream,
  node: UpstreamNode,
  deps: ProxyDeps,
  tried: Set<string> | undefined,
): void {
  deps.pool.acquire(node, upstream.connectTimeoutMs).then(
    (session) => forward(stream, headers, session, upstream, node),
    (err: unknown) => {
      if (stream.destroyed || stream.closed) return;
      const attempted = tried ?? new Set<string>();
      attempted.add(node.key);
      if (attempted.size <= upstream.retries) {
        const next = upstream.balancer.pick(attempted);
        if (next !== undefined) {
          deps.log.warn({ node: node.key, next: next.key, err: (err as Error).message }, 'upstream connect failed, trying next node');
          connectThenForward(stream, headers, upstream, next, deps, attempted);
          return;
        }
      }
      deps.log.warn({ node: node.key, path: headers[':path'], err: (err as Error).message }, 'upstream connect failed');
      respondError(stream, err);
    },
  );
}
