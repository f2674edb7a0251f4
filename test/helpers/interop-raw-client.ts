/**
 * A node:http2 client that sends an exact request body through the gateway and returns exactly what came back:
 * for the case that compares compressed messages byte for byte on both legs, which a grpc-js client cannot (it
 * hides the compressed-flag byte and the compressed bytes). TLS verifies the gateway against `rootCert` with SNI
 * `servername`, ALPN h2.
 */
import http2, { type IncomingHttpHeaders } from 'node:http2';

export interface RawTarget {
  /** `127.0.0.1:port` of the gateway listener. */
  address: string;
  authority: string;
  /** TLS: the root to verify against and the SNI/name to verify. */
  tls?: { rootCert: string; servername: string };
}

export interface RawResponse {
  headers: IncomingHttpHeaders;
  body: Buffer;
  trailers: IncomingHttpHeaders | undefined;
}

/** One call with the exact request body given; returns exactly what came back. */
export async function rawUnaryCall(
  target: RawTarget,
  path: string,
  extraHeaders: Record<string, string>,
  body: Buffer,
): Promise<RawResponse> {
  const session =
    target.tls === undefined
      ? http2.connect(`http://${target.address}`)
      : http2.connect(`https://${target.address}`, {
          ca: target.tls.rootCert,
          servername: target.tls.servername,
          ALPNProtocols: ['h2'],
        });
  try {
    return await new Promise<RawResponse>((resolve, reject) => {
      session.once('error', reject);
      const stream = session.request({
        ':method': 'POST',
        ':path': path,
        ':authority': target.authority,
        'content-type': 'application/grpc',
        te: 'trailers',
        ...extraHeaders,
      });
      let headers: IncomingHttpHeaders = {};
      let trailers: IncomingHttpHeaders | undefined;
      const chunks: Buffer[] = [];
      stream.on('response', (h: IncomingHttpHeaders) => (headers = h));
      stream.on('trailers', (t: IncomingHttpHeaders) => (trailers = t));
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', reject);
      stream.on('close', () => resolve({ headers, body: Buffer.concat(chunks), trailers }));
      stream.end(body);
    });
  } finally {
    session.close();
  }
}
