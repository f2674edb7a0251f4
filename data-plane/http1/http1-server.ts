/**
 * HTTP/1.1 on the data plane's listeners (issue #17), for the routes that serve browsers and REST clients
 * (grpc-web, grpc-transcode): a connection whose first bytes are no HTTP/2 preface (h2c port), or a TLS connection
 * that chose ALPN `http/1.1` or none, is handed to one `node:http` server per listener set, which never listens
 * itself: node:http's parser (llhttp) and keep-alive handling serve it, fed through a small Duplex (SocketLink)
 * with the bytes the engine reads. Every request becomes an Http1Stream (http1-stream.ts) that the proxy serves
 * like an HTTP/2 stream; requests for other routes get the listeners' readable 505 (proxy/serve-request.ts).
 *
 * The engine's limits carry over: the connection stays a ServerConnection shell (counted, watched by the
 * connection guard: the header deadline until the first request, the idle timeout between requests, graceful
 * close on drain), request headers are bounded by the header-list limit, and request bodies by flow control (a
 * request's body is read only as fast as the upstream takes it, http1-stream.ts).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { Http1Takeover } from '../http2/server-connection.ts';
import type { ConnectionWatch } from '../limits/connection-guard.ts';
import { Http1Stream } from './http1-stream.ts';

/** What a request is handed to: its stream and its header list in HTTP/2's shape (`:method`, `:path`, …). */
export type Http1RequestHandler = (stream: Http1Stream, fields: string[]) => void;

export interface Http1Options {
  /** Largest request head accepted (node:http answers 431 beyond it). */
  readonly maxHeaderBytes: number;
  /** Requests one connection may make (`keepalive_requests`, as HTTP/2 streams); 0 = unlimited. */
  readonly keepaliveRequests: number;
  /** Longest wait between two reads of a request body (`client_body_timeout`): then 408, or the connection cut. */
  readonly bodyTimeoutMs: number;
}

/** Pipelined requests one connection may have waiting behind the one served (parsed from what it already sent). */
const MAX_PIPELINED = 16;

/** Request headers HTTP/2 forbids (RFC 9113 §8.2.2) or that are this hop's: not passed on as metadata. */
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'http2-settings']);

export class Http1Server {
  private readonly server: http.Server;
  private readonly onRequest: Http1RequestHandler;
  private readonly links = new Set<SocketLink>();
  private readonly bodyTimeoutMs: number;

  constructor(options: Http1Options, onRequest: Http1RequestHandler) {
    this.onRequest = onRequest;
    this.server = http.createServer({
      maxHeaderSize: options.maxHeaderBytes,
      // Timeouts are the connection guard's (header deadline, idle timeout) and the calls' own deadlines.
      requestTimeout: 0,
      keepAliveTimeout: 0,
      // grpc-web and JSON answers are streamed: no Nagle delay on the last small write.
      noDelay: true,
    });
    // node:http answers what comes after the last allowed request 503 and closes the connection with the last.
    this.server.maxRequestsPerSocket = options.keepaliveRequests;
    this.bodyTimeoutMs = options.bodyTimeoutMs;
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => this.request(req, res));
    // A malformed request: node:http answers 400 (431 for an oversized head) when it can, then the link closes.
    this.server.on('clientError', (err: NodeJS.ErrnoException, duplex: Duplex) => clientError(err, duplex));
  }

  /** The connection on `socket` is HTTP/1: from now on it is served here. `watch`: the guard's view of it. */
  adopt(socket: Socket, watch: ConnectionWatch | undefined): Http1Takeover {
    const link = new SocketLink(socket, watch, this.links);
    this.links.add(link);
    this.server.emit('connection', link);
    return link;
  }

  /**
   * node:http emits every pipelined request it parsed at once: they are served one at a time instead (nginx's
   * behaviour), the link paused meanwhile, so a connection never holds more than one call, as a browser's does.
   */
  private request(req: IncomingMessage, res: ServerResponse): void {
    const link = req.socket as unknown as SocketLink; // the Duplex adopt() gave node:http
    if (link.busy) {
      // Browsers do not pipeline; a client that queues more than this is cut rather than buffered for.
      if (link.waiting.length >= 2 * MAX_PIPELINED) {
        link.destroy();
        return;
      }
      link.waiting.push(req, res);
      link.pause();
      return;
    }
    this.serve(link, req, res);
  }

  private serve(link: SocketLink, req: IncomingMessage, res: ServerResponse): void {
    link.serving = this;
    const stream = new Http1Stream(req, res, link.socket, link, this.bodyTimeoutMs);
    const fields = [':method', req.method ?? 'GET', ':scheme', link.encrypted ? 'https' : 'http', ':path', req.url ?? '/', ':authority', req.headers.host ?? ''];
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = (raw[i] as string).toLowerCase();
      if (name === 'host' || HOP_HEADERS.has(name)) continue;
      fields.push(name, raw[i + 1] as string);
    }
    this.onRequest(stream, fields);
  }

  /** Connections being served now. */
  get size(): number {
    return this.links.size;
  }

  /** The exchange on `link` ended: the next pipelined request, if any, is served. */
  next(link: SocketLink): void {
    if (link.destroyed) {
      // The client went: what it pipelined is never served (no upstream call for a client that is gone).
      link.waiting.length = 0;
      return;
    }
    const req = link.waiting.shift() as IncomingMessage | undefined;
    const res = link.waiting.shift() as ServerResponse | undefined;
    if (req === undefined || res === undefined) {
      link.resume();
      return;
    }
    this.serve(link, req, res);
  }
}

function clientError(err: NodeJS.ErrnoException, duplex: Duplex): void {
  // An answer under way (a malformed chunk of a body being relayed): no status line may be written into its body.
  const answering = (duplex as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (!duplex.writable || err.code === 'ECONNRESET' || answering?.headersSent === true) {
    duplex.destroy();
    return;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
  duplex.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
}

/**
 * The Duplex node:http reads and writes: bytes the engine read (copied: its read buffer is shared) pushed in,
 * writes passed to the socket. A full read side pauses the socket; node:http reading on resumes it.
 */
export class SocketLink extends Duplex implements Http1Takeover {
  readonly socket: Socket;
  private readonly watch: ConnectionWatch | undefined;
  private readonly links: Set<SocketLink>;
  /** Requests whose answer is not finished: the guard counts them as open streams (no idle timeout meanwhile). */
  private inFlight = 0;
  /** Pipelined requests parsed while one is served: [req, res] pairs, served in order. */
  readonly waiting: (IncomingMessage | ServerResponse)[] = [];
  /** The server whose exchange is in flight here (told when it ends, for the next pipelined request). */
  serving: Http1Server | undefined;
  /** Close once the answer in flight is done (graceful shutdown). */
  closing = false;
  /** Corked until the end of this turn (corkTurn). */
  private turnCorked = false;

  constructor(socket: Socket, watch: ConnectionWatch | undefined, links: Set<SocketLink>) {
    super({ allowHalfOpen: false });
    this.socket = socket;
    this.watch = watch;
    this.links = links;
    socket.on('end', () => this.push(null));
    socket.on('close', () => {
      links.delete(this);
      this.destroy();
    });
  }

  override push(chunk: Buffer | null): boolean {
    if (chunk === null) return super.push(null);
    if (!super.push(Buffer.from(chunk))) this.socket.pause();
    return true;
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.socket.destroyed) return callback();
    this.socket.write(chunk, (err) => callback(err ?? null));
  }

  /** What node:http wrote while corked (a head, a chunk, the end): one write to the socket, one syscall. */
  override _writev(chunks: { chunk: Buffer; encoding: BufferEncoding }[], callback: (err?: Error | null) => void): void {
    if (this.socket.destroyed) return callback();
    const socket = this.socket;
    socket.cork();
    const last = chunks.length - 1;
    for (let i = 0; i < last; i++) socket.write((chunks[i] as { chunk: Buffer }).chunk);
    socket.write((chunks[last] as { chunk: Buffer }).chunk, (err) => callback(err ?? null));
    socket.uncork();
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.socket.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.links.delete(this);
    this.socket.destroy();
    callback(err);
  }

  corkTurn(): void {
    if (this.turnCorked) return;
    this.turnCorked = true;
    this.cork();
    process.nextTick(uncorkTurn, this);
  }

  uncorkTurn(): void {
    this.turnCorked = false;
    this.uncork();
  }

  shutdown(): void {
    if (this.inFlight === 0) {
      this.destroy();
      return;
    }
    this.closing = true;
  }

  /** An Http1Stream began (its request head was read) / ended (its answer finished or was cut). */
  began(): void {
    this.inFlight++;
    this.watch?.streamOpened();
  }

  ended(): void {
    this.inFlight--;
    this.watch?.streamClosed();
    if (this.closing && this.inFlight === 0) {
      this.end();
      return;
    }
    if (this.inFlight === 0) this.serving?.next(this);
  }

  /** An exchange is in flight: a pipelined request waits for it. */
  get busy(): boolean {
    return this.inFlight > 0;
  }

  get encrypted(): boolean {
    return (this.socket as Socket & { encrypted?: boolean }).encrypted === true;
  }

  // What node:http reads of its socket.
  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }

  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }

  get localPort(): number | undefined {
    return this.socket.localPort;
  }

  setTimeout(): this {
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }
}

function uncorkTurn(link: SocketLink): void {
  link.uncorkTurn();
}
