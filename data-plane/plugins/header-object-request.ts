/**
 * PluginRequest over node:http2's header object and the client's socket (the node:http2 engine,
 * proxy/handle-stream.ts). Made per call only for a route that has plugins; `applyTo` makes the plugins' header
 * changes on the object the call forwards.
 */
import type { IncomingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import type { ConsumerTable } from './consumers.ts';
import { BasePluginRequest } from './request.ts';

export class HeaderObjectRequest extends BasePluginRequest {
  readonly #headers: IncomingHttpHeaders;
  readonly #socket: Socket | undefined;

  constructor(routeId: string, path: string, host: string, consumers: ConsumerTable, headers: IncomingHttpHeaders, socket: Socket | undefined) {
    super(routeId, path, host, consumers);
    this.#headers = headers;
    this.#socket = socket;
  }

  get remoteAddress(): string {
    return this.#socket?.remoteAddress ?? '';
  }

  get remotePort(): number {
    return this.#socket?.remotePort ?? 0;
  }

  get localAddress(): string {
    return this.#socket?.localAddress ?? '';
  }

  get localPort(): number {
    return this.#socket?.localPort ?? 0;
  }

  header(name: string): string | undefined {
    const value = this.#headers[name];
    return Array.isArray(value) ? value[0] : value;
  }

  /** Makes the plugins' changes on `headers` (the object the call forwards upstream): removals first, then additions. */
  applyTo(headers: IncomingHttpHeaders): void {
    for (const name of this.removed ?? []) delete headers[name];
    const added = this.added;
    if (added === undefined) return;
    for (let i = 0; i + 1 < added.length; i += 2) {
      const name = added[i] as string;
      const value = added[i + 1] as string;
      const present = headers[name];
      // Removals went first: a field still present is the client's (add) or added just before; it becomes a list.
      headers[name] = present === undefined ? value : [...(Array.isArray(present) ? present : [present]), value];
    }
  }
}

