/**
 * One HTTP/1.1 exchange as a Downstream (proxy/downstream.ts): what the proxy and the grpc-web and transcoding
 * adapters read a request from and write an answer to, with the contract of an HTTP/2 stream of the native engine.
 *
 * - Request body: read as node:http delivers it, handed to the handler as owned buffers; once more than
 *   REQUEST_WINDOW_BYTES are handed over and not consumed, the request is paused (TCP then holds the client), so a
 *   body is read only as fast as the upstream takes it.
 * - Answer: the first header block is the status line and headers (`:status`; repeated names become repeated
 *   header lines), then the body (chunked unless a content-length was given), each write reported with onSent once
 *   it went to the socket. HTTP/1.1 has no trailers a browser reads: a second header block ends the answer.
 * - A client that closes the connection before the answer is complete is a reset (onReset, as RST_STREAM is on
 *   HTTP/2); reset() from the proxy closes the connection, the only way HTTP/1.1 has to abort an answer.
 */
import { validateHeaderName, validateHeaderValue, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ErrorCode, ResetReason, type StreamHandler } from '../http2/connection.ts';
import type { Downstream } from '../proxy/downstream.ts';

/** Request bytes handed over and not consumed before the body is paused: one HTTP/2 stream window's worth. */
const REQUEST_WINDOW_BYTES = 64 * 1024;
const EMPTY = Buffer.alloc(0);
/** nginx's answer when client_body_timeout passes. */
const REQUEST_TIMEOUT = 408;
/** Response headers HTTP/1.1 sets itself or that only mean something on HTTP/2. */
const SKIPPED_RESPONSE = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'te', 'http2-settings', 'proxy-connection']);

/**
 * A field HTTP/1.1 can carry: HTTP/2 lets through names and values (an upstream's metadata) that node:http refuses
 * to write, and its refusal is a throw. Such a field is left out of the answer, not allowed to end the process.
 */
function http1Field(name: string, value: string): boolean {
  try {
    validateHeaderName(name);
    validateHeaderValue(name, value);
    return true;
  } catch {
    return false;
  }
}

/** The connection an exchange belongs to (http1-server.ts SocketLink): told when exchanges begin and end. */
export interface Http1Connection {
  began(): void;
  ended(): void;
  /** Gather the connection's writes until the end of this turn. */
  corkTurn(): void;
  readonly closing: boolean;
}

export class Http1Stream implements Downstream {
  handler: StreamHandler<Downstream> | undefined;
  readonly openedAt = Date.now();
  removed = false;
  readonly conn: { readonly socket: Socket };
  private readonly req: IncomingMessage;
  private readonly res: ServerResponse;
  private readonly link: Http1Connection;
  private unconsumed = 0;
  private paused = false;
  private headersSent = false;
  private requestEnded = false;

  /** client_body_timeout: when the body was last read (or its reading resumed), and the timer that checks it. */
  private readonly bodyTimeoutMs: number;
  private lastBodyAt = Date.now();
  private bodyTimer: NodeJS.Timeout | undefined;

  constructor(req: IncomingMessage, res: ServerResponse, socket: Socket, link: Http1Connection, bodyTimeoutMs: number) {
    this.req = req;
    this.res = res;
    this.conn = { socket };
    this.link = link;
    this.bodyTimeoutMs = bodyTimeoutMs;
    link.began();
    req.on('data', (chunk: Buffer) => this.onBody(chunk));
    req.on('end', () => this.onBodyEnd());
    res.on('close', () => this.onClose());
    if (!req.complete) this.bodyTimer = setTimeout(bodyTimerFired, bodyTimeoutMs, this);
  }

  /** The body timer: a client that sent nothing of its body for client_body_timeout (while we read) is timed out. */
  checkBody(): void {
    this.bodyTimer = undefined;
    if (this.requestEnded || this.removed) return;
    const idle = Date.now() - this.lastBodyAt;
    if (this.paused || idle < this.bodyTimeoutMs) {
      // Held back by us (the upstream is slow), or read meanwhile: not the client's wait.
      this.bodyTimer = setTimeout(bodyTimerFired, this.paused ? this.bodyTimeoutMs : this.bodyTimeoutMs - idle, this);
      return;
    }
    // nginx's client_body_timeout: 408 when nothing was answered yet, else the connection is cut.
    const headersSent = this.headersSent;
    this.removed = true;
    this.handler?.onReset(this, ErrorCode.CANCEL, ResetReason.LOST);
    if (headersSent) {
      this.res.destroy();
      return;
    }
    this.res.writeHead(REQUEST_TIMEOUT, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
    this.res.end('client_body_timeout: the request body stopped arriving\n');
  }

  /** Whether the request body was read to its end. */
  get requestComplete(): boolean {
    return this.requestEnded;
  }

  private onBody(chunk: Buffer): void {
    this.lastBodyAt = Date.now();
    const handler = this.handler;
    if (handler === undefined || this.removed) return; // answered already: the rest of the body is dropped
    this.unconsumed += chunk.length;
    if (this.unconsumed > REQUEST_WINDOW_BYTES && !this.paused) {
      this.paused = true;
      this.req.pause();
    }
    handler.onData(this, chunk, false, true);
  }

  private onBodyEnd(): void {
    this.requestEnded = true;
    this.stopBodyTimer();
    if (!this.removed) this.handler?.onData(this, EMPTY, true, true);
  }

  private stopBodyTimer(): void {
    if (this.bodyTimer !== undefined) clearTimeout(this.bodyTimer);
    this.bodyTimer = undefined;
  }

  private onClose(): void {
    this.stopBodyTimer();
    const wasOpen = !this.removed;
    this.removed = true;
    this.link.ended();
    // Closed before the answer was complete: the client went (or reset() cut it).
    if (wasOpen && !this.res.writableFinished) this.handler?.onReset(this, ErrorCode.CANCEL, ResetReason.LOST);
  }

  sendHeaders(fields: string[], endStream: boolean): void {
    if (this.removed || this.res.writableEnded) return;
    if (this.headersSent) {
      // Trailers: HTTP/1.1 clients (browsers) do not read them; the adapters put what matters in the body.
      this.finish();
      return;
    }
    this.headersSent = true;
    let status = 200;
    // No prototype: metadata named `constructor` or `__proto__` is a header like any other.
    const headers = Object.create(null) as OutgoingHttpHeaders;
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i] as string;
      const value = fields[i + 1] as string;
      if (name === ':status') status = Number(value);
      else if (name === 'connection' && value === 'close') headers.connection = 'close'; // the gateway's: close after this answer
      else if (name.charCodeAt(0) === 58 /* ':' */ || SKIPPED_RESPONSE.has(name) || !http1Field(name, value)) continue;
      else {
        const before = headers[name];
        headers[name] = before === undefined ? value : Array.isArray(before) ? [...before, value] : [String(before), value];
      }
    }
    if (this.link.closing) headers.connection = 'close';
    this.cork();
    this.res.writeHead(status, headers);
    if (endStream) this.finish();
  }

  sendData(data: Buffer, endStream: boolean): void {
    if (this.removed || this.res.writableEnded) return;
    if (!this.headersSent) this.sendHeaders([':status', '200'], false);
    this.cork();
    if (data.length > 0) {
      const copy = Buffer.from(data); // `data` is valid only during the call
      this.res.write(copy, () => this.handler?.onSent(this, copy.length));
    }
    if (endStream) this.finish();
  }

  /**
   * Writes of this turn are gathered into one (node:http writes a head, a chunk's size, the chunk, its CRLF and the
   * end apart). The connection is corked, not the response: node:http reorders a corked response's chunks and its
   * end.
   */
  private cork(): void {
    this.link.corkTurn();
  }

  private finish(): void {
    // The request's unread rest cannot be left in the connection: a keep-alive connection reads on to the end of
    // it (node:http does), so it is resumed; what it delivers is dropped (onBody).
    this.res.end();
    this.removed = true;
    this.stopBodyTimer();
    if (this.paused) this.req.resume();
  }

  consume(bytes: number): void {
    this.unconsumed -= bytes;
    if (this.paused && this.unconsumed <= REQUEST_WINDOW_BYTES / 2) {
      this.paused = false;
      this.lastBodyAt = Date.now(); // the client's wait starts again now
      this.req.resume();
    }
  }

  reset(_code: number): void {
    if (this.res.writableFinished) return;
    this.removed = true;
    this.res.destroy();
  }
}

function bodyTimerFired(stream: Http1Stream): void {
  stream.checkBody();
}
