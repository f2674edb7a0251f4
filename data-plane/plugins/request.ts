/**
 * What a plugin may read of a call at its access phase, whichever HTTP/2 engine carries it: the matched route, the
 * request's header list and the client's connection. Each engine implements it over what it already holds
 * (native-listeners.ts: the header list; proxy/handle-stream.ts: node:http2's header object), built only for a route
 * that has plugins.
 */
import type { GatewayError } from '../../shared/errors.ts';

export interface PluginRequest {
  readonly routeId: string;
  /** `:path`, e.g. `/helloworld.Greeter/SayHello`. */
  readonly path: string;
  /** `:authority` (or Host) as the client sent it. */
  readonly host: string;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  /** The first value of a request header (`name` in lower case), undefined when absent. */
  header(name: string): string | undefined;
}

/** A plugin's answer at the access phase: refuse the call with `error`, and/or add `fields` to the response. */
export interface AccessVerdict {
  readonly error?: GatewayError;
  /** Response header fields (name, value, …) for the call's response headers, or for the refusal. */
  readonly fields?: readonly string[];
}
