/**
 * PluginRequest over a decoded header list (the native engine's: flat name, value pairs) and the client's socket.
 * Made per call only for a route that has plugins; `upstreamFields` applies the plugins' header changes.
 */
import type { Socket } from 'node:net';
import { fieldValue } from '../http2/fields.ts';
import type { ConsumerTable } from './consumers.ts';
import { BasePluginRequest } from './request.ts';

export class HeaderListRequest extends BasePluginRequest {
  readonly #fields: readonly string[];
  readonly #socket: Socket;

  constructor(routeId: string, path: string, host: string, consumers: ConsumerTable, fields: readonly string[], socket: Socket) {
    super(routeId, path, host, consumers);
    this.#fields = fields;
    this.#socket = socket;
  }

  get remoteAddress(): string {
    return this.#socket.remoteAddress ?? '';
  }

  get remotePort(): number {
    return this.#socket.remotePort ?? 0;
  }

  get localAddress(): string {
    return this.#socket.localAddress ?? '';
  }

  get localPort(): number {
    return this.#socket.localPort ?? 0;
  }

  header(name: string): string | undefined {
    return fieldValue(this.#fields, name);
  }

  /** The client's header list with the plugins' changes: the same list when there are none. */
  upstreamFields(fields: string[]): string[] {
    const removed = this.removed;
    const added = this.added;
    if (removed === undefined && added === undefined) return fields;
    const out: string[] = [];
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i] as string;
      if (removed?.includes(name) !== true) out.push(name, fields[i + 1] as string);
    }
    if (added !== undefined) out.push(...added);
    return out;
  }
}
