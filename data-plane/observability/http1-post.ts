/**
 * A minimal HTTP/1.1 client for one thing: POSTing a body to one URL over one kept-alive connection (plain or
 * TLS), one request at a time, and reading back the response's status. The OTLP exporter (otlp-exporter.ts) sends
 * its batches with it.
 *
 * Why not node:http: with node:http's client exporting spans beside a busy relay, every young-generation GC of
 * the data plane kept ~1.4 MB of survivors (--trace-gc-nvp: new_space_survived, against ~60 KB without exports or
 * with this client), and the GC took 4 to 8 µs per relayed call at 10 % sampling (issue #14). This client makes
 * a head string and writes it and the body; per response it keeps a few numbers and a short head.
 *
 * The response (RFC 9112): a status line and headers up to MAX_HEAD_BYTES; 1xx answers skipped; a body framed by
 * `transfer-encoding: chunked`, by `content-length`, or by the connection's close, read and thrown away up to
 * MAX_BODY_BYTES. A response with `connection: close` (or from HTTP/1.0 without keep-alive) closes the
 * connection after it; the next POST opens a new one.
 */
import net from 'node:net';
import tls from 'node:tls';

/** The outcome of one POST: the response's status, or why there was none. */
export type PostResult = { status: number } | { error: string };

const MAX_HEAD_BYTES = 16 * 1024;
const MAX_BODY_BYTES = 1024 * 1024;
const CRLF = '\r\n';
const HEAD_END = '\r\n\r\n';
const HEX = 16;
const STATUS_CONTINUE_FIRST = 100;
const STATUS_SUCCESS_FIRST = 200;
const NO_CONTENT = 204;
const NOT_MODIFIED = 304;
const DEFAULT_PORTS: Readonly<Record<string, number>> = { 'http:': 80, 'https:': 443 };
/** Field values may not carry CR, LF or NUL (RFC 9110 §5.5). */
const FORBIDDEN_IN_FIELD = /[\r\n\0]/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Where the response being read is (an object of numbers, not an enum: the code is erasable TypeScript). */
const Framing = {
  /** Reading the status line and headers. */
  Head: 0,
  /** content-length bytes left. */
  Length: 1,
  /** Chunked: reading a chunk-size line, a chunk's data, or the trailer section. */
  ChunkSize: 2,
  ChunkData: 3,
  Trailers: 4,
  /** Until the connection closes. */
  Close: 5,
} as const;
type Framing = (typeof Framing)[keyof typeof Framing];

export class Http1Poster {
  private readonly host: string;
  private readonly port: number;
  private readonly secure: boolean;
  /** Everything of the request head but content-length's value and the blank line. */
  private readonly headPrefix: string;
  /** Why every POST fails (a header HTTP forbids), or undefined. */
  private readonly invalid: string | undefined;
  private socket: net.Socket | undefined;
  private pending: ((result: PostResult) => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  // The response being read.
  private framing: Framing = Framing.Head;
  private head = '';
  private status = 0;
  private keepAlive = true;
  private left = 0;
  private line = '';
  private bodyBytes = 0;

  constructor(url: URL, headers: Readonly<Record<string, string>>) {
    this.secure = url.protocol === 'https:';
    this.host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    this.port = url.port === '' ? (DEFAULT_PORTS[url.protocol] ?? 80) : Number(url.port);
    let head = `POST ${url.pathname}${url.search} HTTP/1.1${CRLF}host: ${url.host}${CRLF}`;
    for (const [name, value] of Object.entries(headers)) {
      const lower = name.toLowerCase();
      if (lower === 'host' || lower === 'content-length' || lower === 'connection' || lower === 'transfer-encoding') continue;
      if (!TOKEN.test(name)) this.invalid = `invalid header name ${JSON.stringify(name)}`;
      else if (FORBIDDEN_IN_FIELD.test(value)) this.invalid = `invalid value for header ${JSON.stringify(name)}`;
      head += `${name}: ${value}${CRLF}`;
    }
    this.headPrefix = `${head}content-length: `;
  }

  /** POSTs `body` and resolves with the response's status; never rejects. One at a time: a second call fails. */
  post(body: Buffer, timeoutMs: number): Promise<PostResult> {
    if (this.invalid !== undefined) return Promise.resolve({ error: this.invalid });
    if (this.pending !== undefined) return Promise.resolve({ error: 'a request is in flight' });
    return new Promise<PostResult>((resolve) => {
      this.pending = resolve;
      this.framing = Framing.Head;
      this.head = '';
      this.timer = setTimeout(() => this.fail('timeout'), timeoutMs);
      this.timer.unref();
      const socket = this.socket ?? this.connect();
      socket.ref(); // an idle connection is unref'd: it never keeps the process alive
      socket.cork();
      socket.write(`${this.headPrefix}${body.length}${HEAD_END}`, 'latin1');
      socket.write(body);
      socket.uncork();
    });
  }

  /** Fails the request in flight, if any, and closes the connection. */
  close(reason = 'closed'): void {
    this.fail(reason);
    this.drop();
  }

  private connect(): net.Socket {
    const socket = this.secure ? tls.connect({ host: this.host, port: this.port, servername: net.isIP(this.host) === 0 ? this.host : undefined }) : net.connect({ host: this.host, port: this.port });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (this.socket === socket) this.read(chunk);
    });
    socket.on('error', (err: Error) => {
      if (this.socket === socket) this.lost(err.message);
    });
    socket.on('close', () => {
      if (this.socket === socket) this.lost('connection closed');
    });
    this.socket = socket;
    return socket;
  }

  /** The connection ended or failed: a body framed by the close is complete, anything else in flight failed. */
  private lost(reason: string): void {
    this.socket = undefined;
    if (this.pending === undefined) return;
    if (this.framing === Framing.Close) this.done();
    else this.fail(reason);
  }

  private drop(): void {
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
  }

  private fail(error: string): void {
    const resolve = this.pending;
    if (resolve === undefined) return;
    this.pending = undefined;
    clearTimeout(this.timer);
    this.drop();
    resolve({ error });
  }

  private done(): void {
    const resolve = this.pending;
    this.pending = undefined;
    clearTimeout(this.timer);
    if (!this.keepAlive || this.framing === Framing.Close) this.drop();
    else this.socket?.unref();
    resolve?.({ status: this.status });
  }

  private read(chunk: Buffer): void {
    if (this.pending === undefined) {
      // Nothing was asked: a server that talks out of turn is not one to keep.
      this.drop();
      return;
    }
    let at = 0;
    // `as`: a response completed in the loop clears `pending`, which TypeScript's narrowing does not see.
    while (at < chunk.length && (this.pending as Http1Poster['pending']) !== undefined) {
      switch (this.framing) {
        case Framing.Head: {
          const before = this.head.length;
          this.head += chunk.toString('latin1', at, Math.min(chunk.length, at + MAX_HEAD_BYTES));
          const end = this.head.indexOf(HEAD_END);
          if (end < 0) {
            if (this.head.length >= MAX_HEAD_BYTES) return this.fail('response head too large');
            return;
          }
          at += end + HEAD_END.length - before;
          const error = this.parseHead(this.head.slice(0, end));
          this.head = '';
          if (error !== undefined) return this.fail(error);
          if (this.status < STATUS_SUCCESS_FIRST) continue; // 1xx: the real answer follows (framing is Head again)
          if ((this.framing as Framing) === Framing.Length && this.left === 0) this.done(); // parseHead set it
          break;
        }
        case Framing.Length: {
          const take = Math.min(this.left, chunk.length - at);
          this.left -= take;
          at += take;
          if (this.left === 0) this.done();
          break;
        }
        case Framing.ChunkSize:
        case Framing.Trailers: {
          const newline = chunk.indexOf(0x0a, at);
          const end = newline < 0 ? chunk.length : newline + 1;
          this.line += chunk.toString('latin1', at, end);
          at = end;
          if (this.line.length > MAX_HEAD_BYTES) return this.fail('response chunk line too long');
          if (newline < 0) return;
          const line = this.line.trimEnd();
          this.line = '';
          if (this.framing === Framing.Trailers) {
            if (line === '') this.done();
            break;
          }
          const size = Number.parseInt(line.split(';', 1)[0] ?? '', HEX);
          if (!Number.isSafeInteger(size) || size < 0) return this.fail('malformed chunk size');
          if (size === 0) this.framing = Framing.Trailers;
          else {
            if ((this.bodyBytes += size) > MAX_BODY_BYTES) return this.fail('response body too large');
            this.framing = Framing.ChunkData;
            this.left = size + CRLF.length; // the data and its CRLF
          }
          break;
        }
        case Framing.ChunkData: {
          const take = Math.min(this.left, chunk.length - at);
          this.left -= take;
          at += take;
          if (this.left === 0) this.framing = Framing.ChunkSize;
          break;
        }
        case Framing.Close: {
          if ((this.bodyBytes += chunk.length - at) > MAX_BODY_BYTES) return this.fail('response body too large');
          at = chunk.length;
          break;
        }
      }
    }
    // Bytes beyond the response: not HTTP/1.1 as we speak it.
    if (at < chunk.length && this.socket !== undefined) this.drop();
  }

  /** The status line and headers: status, framing and keep-alive. Returns an error, or undefined. */
  private parseHead(head: string): string | undefined {
    const lines = head.split(CRLF);
    const match = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0] ?? '');
    if (match === null) return `not an HTTP/1.x response: ${JSON.stringify((lines[0] ?? '').slice(0, 64))}`;
    this.status = Number(match[2]);
    this.keepAlive = match[1] === '1';
    let length: number | undefined;
    let chunked = false;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] as string;
      const colon = line.indexOf(':');
      if (colon <= 0) return 'malformed response header';
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim().toLowerCase();
      if (name === 'content-length') {
        const n = Number(value);
        if (!Number.isSafeInteger(n) || n < 0 || (length !== undefined && length !== n)) return 'malformed content-length';
        length = n;
      } else if (name === 'transfer-encoding') chunked = value.split(',').some((coding) => coding.trim() === 'chunked');
      else if (name === 'connection') {
        const options = value.split(',').map((option) => option.trim());
        if (options.includes('close')) this.keepAlive = false;
        else if (options.includes('keep-alive')) this.keepAlive = true;
      }
    }
    this.bodyBytes = 0;
    this.line = '';
    if (this.status < STATUS_SUCCESS_FIRST) {
      this.framing = Framing.Head;
      return this.status >= STATUS_CONTINUE_FIRST ? undefined : 'malformed status';
    }
    if (this.status === NO_CONTENT || this.status === NOT_MODIFIED) {
      this.framing = Framing.Length;
      this.left = 0;
    } else if (chunked) this.framing = Framing.ChunkSize;
    else if (length !== undefined) {
      if (length > MAX_BODY_BYTES) return 'response body too large';
      this.framing = Framing.Length;
      this.left = length;
    } else this.framing = Framing.Close;
    return undefined;
  }
}
