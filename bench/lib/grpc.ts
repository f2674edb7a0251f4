/**
 * Raw HTTP/2 gRPC for the benchmarks, without grpc-js in the way: a probe that sends unary calls with an empty
 * message over one persistent session and reports the grpc-status (trailers, or a trailers-only response), and a
 * tiny upstream that answers every call with an empty message and grpc-status 0.
 */
import { connect, constants, createServer, type ClientHttp2Session, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';

/** A gRPC frame holding an empty message: no compression flag, length 0. */
const EMPTY_MESSAGE = Buffer.alloc(5);
/** What call() reports when the stream failed before any grpc-status arrived (reset, session gone). */
export const NO_STATUS = -1;

export interface GrpcProbe {
  /** One unary call; resolves with its grpc-status (NO_STATUS when the stream broke). Never rejects. */
  call(path: string): Promise<number>;
  close(): void;
}

/** A connection that is neither up nor refused within this long counts as refused (a readiness poll retries). */
const CONNECT_LIMIT_MS = 2_000;

export async function openProbe(address: string): Promise<GrpcProbe> {
  const session: ClientHttp2Session = connect(`http://${address}`);
  session.on('error', () => undefined); // reported per call as NO_STATUS
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no HTTP/2 connection to ${address} within ${CONNECT_LIMIT_MS} ms`));
    }, CONNECT_LIMIT_MS);
    session.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
    session.once('error', (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
    // A socket closed before the HTTP/2 preface (a listener over its connection cap) emits 'close' alone.
    session.once('close', () => {
      clearTimeout(timer);
      reject(new Error(`connection to ${address} closed before HTTP/2 was up`));
    });
  });
  return {
    call(path) {
      return new Promise((resolve) => {
        if (session.destroyed || session.closed) return resolve(NO_STATUS);
        let status = NO_STATUS;
        const stream = session.request({
          [constants.HTTP2_HEADER_METHOD]: 'POST',
          [constants.HTTP2_HEADER_PATH]: path,
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        const read = (headers: Record<string, unknown>): void => {
          const value = headers['grpc-status'];
          if (typeof value === 'string') status = Number(value);
        };
        stream.on('response', read);
        stream.on('trailers', read);
        stream.on('error', () => undefined);
        stream.on('close', () => resolve(status));
        stream.resume();
        stream.end(EMPTY_MESSAGE);
      });
    },
    close() {
      session.close();
    },
  };
}

export interface OkUpstream {
  /** `127.0.0.1:<port>` */
  readonly address: string;
  readonly calls: number;
  close(): Promise<void>;
}

export async function startOkUpstream(): Promise<OkUpstream> {
  let calls = 0;
  const server: Http2Server = createServer();
  server.on('stream', (stream) => {
    calls++;
    stream.on('error', () => undefined);
    stream.resume();
    stream.on('end', () => {
      if (stream.destroyed) return;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(EMPTY_MESSAGE);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const bound: AddressInfo | string | null = server.address();
  const port = bound !== null && typeof bound === 'object' ? bound.port : 0;
  return {
    address: `127.0.0.1:${port}`,
    get calls() {
      return calls;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Sessions the gateways keep open would hold close() forever.
        setTimeout(resolve, 1_000).unref();
      }),
  };
}
