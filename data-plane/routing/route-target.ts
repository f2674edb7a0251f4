/**
 * What a matched route leads to: the upstream a call is forwarded to, or the error every call on it is answered with,
 * and the route's message-size caps. The router holds these (router.ts); snapshots build them (config/snapshots.ts);
 * the proxy reads them (proxy/).
 */
import type { GatewayError } from '../../shared/errors.ts';
import type { PluginChain } from '../plugins/pipeline.ts';
import type { ResolvedUpstream } from '../upstream/upstream.ts';
import type { WebCors } from '../web/cors.ts';
import type { TranscodeTarget } from '../transcode/transcode-target.ts';

export interface RouteTarget {
  readonly upstream: ResolvedUpstream;
  /** Set when the route's references cannot be followed: every call is answered with this error. */
  readonly error: GatewayError | undefined;
  /** `grpc-limits` caps in bytes; undefined = no cap. */
  readonly maxRequestMessageBytes: number | undefined;
  readonly maxResponseMessageBytes: number | undefined;
  /** The route's plugins that act on calls (plugins/pipeline.ts), compiled with the snapshot; undefined: none. */
  readonly plugins: PluginChain | undefined;
  /** Upstreams the route's plugins may send calls to instead (traffic-split); undefined: none. */
  readonly splitUpstreams?: readonly ResolvedUpstream[] | undefined;
  /**
   * The CORS answers of a route that serves browsers (web/cors.ts): set when it has `grpc-web` (cors.grpcWeb: it
   * serves grpc-web requests) or the `cors` plugin.
   */
  readonly cors?: WebCors | undefined;
  /** `grpc-transcode`: the route serves HTTP/JSON requests as calls of one method (transcode/). */
  readonly transcode?: TranscodeTarget | undefined;
}
