/**
 * What a plugin may read and change of a call at its access phase, whichever HTTP/2 engine carries it: the matched
 * route, the request's headers, the client's connection, the snapshot's consumers; an authentication plugin sets
 * the consumer, and plugins may change the headers sent upstream (`x-consumer-username`, a hidden credential).
 * Each engine implements the reading over what it already holds (header-list-request.ts for the native engine,
 * header-object-request.ts for node:http2) and applies the header changes itself; a request object is made per
 * call only for a route that has plugins.
 */
import type { GatewayError } from '../../shared/errors.ts';
import type { Consumer, ConsumerTable } from './consumers.ts';

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
  /** The consumers of the snapshot this call pinned. */
  readonly consumers: ConsumerTable;
  /** Set by an authentication plugin once it identified the caller. */
  consumer: Consumer | undefined;
  /** The first value of a request header (`name` in lower case), undefined when absent. */
  header(name: string): string | undefined;
  /** Sets a header of the request sent upstream (replacing the client's, if any). */
  setUpstreamHeader(name: string, value: string): void;
  /** Leaves a header of the client's request out of the request sent upstream. */
  removeUpstreamHeader(name: string): void;
  /** Adds a header to the request sent upstream, beside the client's of the same name. */
  addUpstreamHeader(name: string, value: string): void;
}

/** A plugin's answer at the access phase: refuse the call with `error`, and/or add `fields` to the response. */
export interface AccessVerdict {
  readonly error?: GatewayError;
  /** Response header fields (name, value, …) for the call's response headers, or for the refusal. */
  readonly fields?: readonly string[];
}

/** The engine-independent part: the consumer and the changes to the upstream request, recorded for the engine. */
export abstract class BasePluginRequest implements PluginRequest {
  readonly routeId: string;
  readonly path: string;
  readonly host: string;
  readonly consumers: ConsumerTable;
  consumer: Consumer | undefined;
  /** Header names to leave out upstream, and (name, value) pairs to set; undefined while there are none. */
  removed: string[] | undefined;
  added: string[] | undefined;

  constructor(routeId: string, path: string, host: string, consumers: ConsumerTable) {
    this.routeId = routeId;
    this.path = path;
    this.host = host;
    this.consumers = consumers;
  }

  abstract readonly remoteAddress: string;
  abstract readonly remotePort: number;
  abstract readonly localAddress: string;
  abstract readonly localPort: number;
  abstract header(name: string): string | undefined;

  setUpstreamHeader(name: string, value: string): void {
    this.removeUpstreamHeader(name);
    (this.added ??= []).push(name, value);
  }

  addUpstreamHeader(name: string, value: string): void {
    (this.added ??= []).push(name, value);
  }

  removeUpstreamHeader(name: string): void {
    (this.removed ??= []).push(name);
    const added = this.added;
    if (added === undefined) return;
    for (let i = added.length - 2; i >= 0; i -= 2) if (added[i] === name) added.splice(i, 2);
  }
}
