/**
 * One downstream stream from the first header: check it is gRPC, pin the config snapshot, match a route, pick a
 * node for this call, and hand over to a ProxyCall (forward.ts) that owns the stream to its last frame. Every
 * early exit goes through respondError, which answers with a gRPC status.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { NoHealthyNode, RouteNotFound, UnsupportedMediaType } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import type { Snapshots } from '../config/snapshots.ts';
import type { SessionPool } from '../upstream/pool.ts';
import { ProxyCall } from './forward.ts';
import { respondError } from './respond-error.ts';

export interface ProxyDeps {
  snapshots: Snapshots;
  pool: SessionPool;
  log: Logger;
}

export function handleStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, deps: ProxyDeps): void {
  const contentType = headers['content-type'];
  if (contentType === undefined || !contentType.startsWith('application/grpc')) {
    return respondError(stream, new UnsupportedMediaType(contentType));
  }
  const snapshot = deps.snapshots.current(); // 1. pinned for the whole call
  const path = headers[':path'] ?? '';
  const match = snapshot.router.match({ path, method: headers[':method'] ?? '', authority: headers[':authority'] ?? headers.host });
  if (match === undefined) return respondError(stream, new RouteNotFound(path));
  const target = match.target;
  if (target.error !== undefined) return respondError(stream, target.error);
  const node = target.upstream.pick(); // 2. per call, never per connection
  if (node === undefined) return respondError(stream, new NoHealthyNode(target.upstream.name));
  new ProxyCall(stream, headers, target, node, deps).start(); // 3. pooled session, then headers, bytes, trailers
}
