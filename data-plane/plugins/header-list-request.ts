/**
 * PluginRequest over a decoded header list (the native engine's: flat name, value pairs) and the client's socket.
 * Made per call only for a route that has plugins.
 */
import type { Socket } from 'node:net';
import { fieldValue } from '../http2/fields.ts';
import type { PluginRequest } from './request.ts';

export class HeaderListRequest implements PluginRequest {
  readonly routeId: string;
  readonly path: string;
  readonly host: string;
  readonly #fields: readonly string[];
  readonly #socket: Socket;

  constructor(routeId: string, path: string, host: string, fields: readonly string[], socket: Socket) {
    this.routeId = routeId;
    this.path = path;
    this.host = host;
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
}
