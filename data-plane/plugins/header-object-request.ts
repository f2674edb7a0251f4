/**
 * PluginRequest over node:http2's header object and the client's socket (the node:http2 engine,
 * proxy/handle-stream.ts). Made per call only for a route that has plugins.
 */
import type { IncomingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import type { PluginRequest } from './request.ts';

export class HeaderObjectRequest implements PluginRequest {
  readonly routeId: string;
  readonly path: string;
  readonly host: string;
  readonly #headers: IncomingHttpHeaders;
  readonly #socket: Socket | undefined;

  constructor(routeId: string, path: string, host: string, headers: IncomingHttpHeaders, socket: Socket | undefined) {
    this.routeId = routeId;
    this.path = path;
    this.host = host;
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
}
