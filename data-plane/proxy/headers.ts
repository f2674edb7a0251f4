/**
 * Header rewriting between the two legs. Request: metadata passes unchanged, `:authority` follows `pass_host`,
 * `:scheme` follows the upstream's scheme, `te: trailers` is always sent (gRPC PROTOCOL-HTTP2.md requires it and
 * some servers refuse calls without it), and connection-specific headers are dropped (RFC 9113 §8.2.2).
 * Response headers and trailers pass unchanged except for connection-specific ones.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { ResolvedUpstream, UpstreamNode } from '../upstream/upstream.ts';

/**
 * RFC 9113 §8.2.2: these must not appear in HTTP/2 (nghttp2 lets `http2-settings` in, but Node refuses to send it);
 * `host` is folded into `:authority`; `te` is set to `trailers` by the gateway itself.
 */
const CONNECTION_SPECIFIC = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host', 'te',
]);

export function upstreamRequestHeaders(
  down: IncomingHttpHeaders,
  upstream: ResolvedUpstream,
  node: UpstreamNode,
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {
    ':method': down[':method'] ?? 'POST',
    ':path': down[':path'] ?? '/',
    ':scheme': node.scheme === 'grpcs' ? 'https' : 'http',
    ':authority': authorityFor(down, upstream, node),
    te: 'trailers',
  };
  for (const name in down) {
    if (name.charCodeAt(0) === 58 /* ':' */ || CONNECTION_SPECIFIC.has(name)) continue;
    out[name] = down[name];
  }
  return out;
}

/** APISIX's pass_host: `pass` keeps the client's authority, `node` uses the node, `rewrite` uses upstream_host. */
function authorityFor(down: IncomingHttpHeaders, upstream: ResolvedUpstream, node: UpstreamNode): string {
  switch (upstream.passHost) {
    case 'node':
      return node.authority;
    case 'rewrite':
      return upstream.upstreamHost ?? node.authority;
    case 'pass':
      return down[':authority'] ?? down.host ?? node.authority;
  }
}

/**
 * Response headers or trailers from upstream, minus what HTTP/2 forbids. `:status` is kept for respond(). The usual
 * case, nothing to drop, hands back the object Node made for this frame (no copy on the hot path).
 */
export function relayedHeaders(up: IncomingHttpHeaders): OutgoingHttpHeaders {
  let clean = true;
  for (const name in up) {
    if (dropped(name)) {
      clean = false;
      break;
    }
  }
  if (clean) return up;
  const out: OutgoingHttpHeaders = {};
  for (const name in up) if (!dropped(name)) out[name] = up[name];
  return out;
}

function dropped(name: string): boolean {
  return CONNECTION_SPECIFIC.has(name) || (name.charCodeAt(0) === 58 /* ':' */ && name !== ':status');
}
