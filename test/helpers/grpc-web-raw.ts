/**
 * Raw grpc-web for tests (gRPC PROTOCOL-WEB.md), with no client library in between: helloworld messages and gRPC's
 * 5-byte message frames (fake-upstream.ts's), a parser for a grpc-web body (data frames,
 * then the trailers frame: flag 0x80, `name: value\r\n` lines), and one-shot HTTP/1.1 and HTTP/2 exchanges that
 * return the status, the headers and the whole body, with the request body written in the chunks a test gives.
 */
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';

// helloworld messages and gRPC's message frames are the fake upstream's (one string field 1, a 5-byte prefix).
export { decodeHelloMessage as helloText, grpcFrame as frame, helloMessage } from './fake-upstream.ts';

export interface WebBody {
  readonly messages: Buffer[];
  /** The trailers frame's fields (undefined: the body had none). */
  readonly trailers: Record<string, string> | undefined;
  /** Bytes after the trailers frame, or a truncated frame: none in a well-formed body. */
  readonly trailing: number;
}

export function parseWebBody(body: Buffer): WebBody {
  const messages: Buffer[] = [];
  let trailers: Record<string, string> | undefined;
  let at = 0;
  while (at + 5 <= body.length && trailers === undefined) {
    const flag = body[at] ?? 0;
    const length = body.readUInt32BE(at + 1);
    if (at + 5 + length > body.length) break;
    const payload = body.subarray(at + 5, at + 5 + length);
    at += 5 + length;
    if ((flag & 0x80) === 0) {
      messages.push(payload);
      continue;
    }
    trailers = {};
    for (const line of payload.toString('latin1').split('\r\n')) {
      if (line === '') continue;
      const colon = line.indexOf(':');
      trailers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
    }
  }
  return { messages, trailers, trailing: body.length - at };
}

export interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

export interface RawRequest {
  readonly method?: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  /** Written in these chunks, in order (a single buffer: one write). */
  readonly body?: Buffer | readonly Buffer[];
  /** HTTP/1.1 over TLS (ALPN http/1.1) instead of plaintext; `ca` verifies it. */
  readonly tls?: { readonly ca: string };
  readonly agent?: http.Agent;
}

/** One HTTP/1.1 exchange with `address` (host:port). */
export function http1Request(address: string, request: RawRequest): Promise<RawAnswer> {
  const [host, port] = address.split(':');
  const options = { host, port: Number(port), method: request.method ?? 'POST', path: request.path, headers: request.headers ?? {} };
  return new Promise((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    };
    const req =
      request.tls === undefined
        ? http.request({ ...options, ...(request.agent === undefined ? {} : { agent: request.agent }) }, onResponse)
        : https.request({ ...options, ca: request.tls.ca, servername: 'localhost', agent: new https.Agent({ ALPNProtocols: ['http/1.1'] }) }, onResponse);
    req.on('error', reject);
    writeBody(req, request.body);
  });
}

/** One HTTP/2 exchange (h2c) with `address`; the session is closed after it. */
export function http2Request(address: string, request: RawRequest): Promise<RawAnswer> {
  const session = http2.connect(`http://${address}`);
  return new Promise<RawAnswer>((resolve, reject) => {
    session.on('error', reject);
    const stream = session.request({ ':method': request.method ?? 'POST', ':path': request.path, ...request.headers });
    let status = 0;
    let headers: Record<string, string | string[] | undefined> = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      status = Number(h[':status']);
      headers = h;
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve({ status, headers, body: Buffer.concat(chunks) }));
    stream.on('error', reject);
    writeBody(stream, request.body);
  }).finally(() => session.close());
}

function writeBody(out: NodeJS.WritableStream & { end(): unknown }, body: Buffer | readonly Buffer[] | undefined): void {
  if (body === undefined) {
    out.end();
    return;
  }
  const chunks = Buffer.isBuffer(body) ? [body] : body;
  let i = 0;
  const next = (): void => {
    if (i >= chunks.length) {
      out.end();
      return;
    }
    out.write(chunks[i++] as Buffer);
    // One chunk per turn: they reach the gateway as separate reads more often than not.
    setTimeout(next, 5);
  };
  next();
}
