/**
 * What a plugin may read and change of a call at its access phase, whichever HTTP/2 engine carries it: the matched
 * route, the request's headers, the client's connection, the snapshot's consumers; an authentication plugin sets
 * the consumer, and plugins may change the headers sent upstream (`x-consumer-username`, a hidden credential).
 * Each engine implements the reading over what it already holds (header-list-request.ts for the native engine,
 * header-object-request.ts for node:http2) and applies the header changes itself; a request object is made per
 * call only for a route that has plugins.
 *
 * A plugin that holds something for the call's duration (limit-conn's concurrency count) registers its release
 * with onDone; the engines call finished() exactly when the call is over, on every path it can end by. A call
 * whose plugins registered nothing costs the engines one property test.
 */
import type { GatewayError } from '../../shared/errors.ts';
import type { Consumer, ConsumerTable } from './consumers.ts';
import type { ResolvedUpstream } from '../upstream/upstream.ts';

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
  /** Set by traffic-split: the upstream this call goes to instead of the route's. */
  upstream: ResolvedUpstream | undefined;
  /** The first value of a request header (`name` in lower case), undefined when absent. */
  header(name: string): string | undefined;
  /** Sets a header of the request sent upstream (replacing the client's, if any). */
  setUpstreamHeader(name: string, value: string): void;
  /** Leaves a header of the client's request out of the request sent upstream. */
  removeUpstreamHeader(name: string): void;
  /** Adds a header to the request sent upstream, beside the client's of the same name. */
  addUpstreamHeader(name: string, value: string): void;
  /**
   * Runs `release` once when the call is over, however it ends: answered, failed, refused by a later plugin, reset
   * by the client, its connection lost (limit-conn's count). At once if the call is already over (its client went
   * while an earlier plugin answered later). `release` must not throw.
   */
  onDone(release: CallEnded): void;
}

/**
 * Told once when the call is over: the grpc-status the client got (the upstream's, or the gateway's own answer;
 * CANCELLED when the client reset it), or UNKNOWN_END (−1) when the engine cannot tell (node:http2, a stream
 * closed without an answer seen).
 */
export type CallEnded = (grpcStatus: number) => void;
export const UNKNOWN_END = -1;

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
  upstream: ResolvedUpstream | undefined;
  /** Header names to leave out upstream, and (name, value) pairs to set; undefined while there are none. */
  removed: string[] | undefined;
  added: string[] | undefined;
  /** What onDone registered, until the call is over; undefined while nothing did (the engines test this). */
  releases: CallEnded[] | undefined;
  /** The grpc-status the call ended with, once done. */
  private endStatus = UNKNOWN_END;
  /** The engine said the call is over (finished). */
  done = false;

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

  onDone(release: CallEnded): void {
    if (this.done) release(this.endStatus);
    else (this.releases ??= []).push(release);
  }

  /**
   * The call is over: each engine calls this when the call ends, whatever ended it (native: Call.finish and every
   * exit before a Call; node:http2: the stream's 'close'). Only the first call counts, so an engine may call it from
   * two places that can both be reached.
   */
  finished(grpcStatus = UNKNOWN_END): void {
    if (this.done) return;
    this.done = true;
    this.endStatus = grpcStatus;
    const releases = this.releases;
    if (releases === undefined) return;
    this.releases = undefined;
    for (const release of releases) release(grpcStatus);
  }
}
