/**
 * The socket towards an upstream node, for the proxy's pool (client-pool.ts) and the health probes
 * (health/probes.ts) alike: plain TCP for h2c, or TLS with ALPN `h2` (a server that selects anything else is a
 * failed connect), SNI when the host is a name, the upstream's client certificate, and verification against the
 * trusted CAs when asked.
 */
import net from 'node:net';
import tls from 'node:tls';
import { UPSTREAM_MIN_VERSION } from '../tls/tls-policy.ts';

export interface DialTls {
  readonly clientCert: { readonly cert: string; readonly key: string } | undefined;
  readonly verify: boolean;
  /** Trusted CAs for verification; undefined = Node's root store. */
  readonly ca: string | undefined;
}

/** May throw synchronously (an unloadable key or CA); connect errors come as the socket's 'error'. */
export function dialUpstream(host: string, port: number, tlsOptions: DialTls | undefined): net.Socket {
  if (tlsOptions === undefined) return net.connect({ host, port });
  const { verify, ca, clientCert } = tlsOptions;
  const socket = tls.connect({
    host,
    port,
    servername: net.isIP(host) === 0 ? host : undefined,
    ALPNProtocols: ['h2'],
    rejectUnauthorized: verify,
    minVersion: UPSTREAM_MIN_VERSION,
    ...(verify && ca !== undefined ? { ca } : {}),
    ...(clientCert !== undefined ? { cert: clientCert.cert, key: clientCert.key } : {}),
  });
  socket.once('secureConnect', () => {
    if (socket.alpnProtocol !== 'h2') socket.destroy(new Error('upstream did not select ALPN h2'));
  });
  return socket;
}
