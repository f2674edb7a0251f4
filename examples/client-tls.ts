/**
 * TLS channel credentials for @grpc/grpc-js clients that behave like grpcurl (grpc-go) on the wire:
 *
 * - SNI is the -servername, else the host of the authority, and is left out when that host is an IP literal
 *   (RFC 6066 §3 forbids IP addresses in server_name). grpc-js's own createSsl() does send the IP: it passes the
 *   target host as `servername` to tls.connect, and Node 20 puts it in the ClientHello with a DEP0123 warning.
 *   Only `grpc.ssl_target_name_override` changes it, and only to another non-empty name, so "no SNI" is impossible
 *   with the built-in credentials.
 * - `insecure` skips verification entirely (grpcurl -insecure): `rejectUnauthorized: false`. A
 *   `checkServerIdentity` that returns undefined is not enough: it only replaces the name check, and OpenSSL still
 *   rejects a chain it cannot verify ("self-signed certificate").
 * - Otherwise the chain is verified against `rootCert` (or Node's default roots) and the name against the
 *   servername or the authority's host.
 *
 * It implements grpc-js's `_createSecureConnector` (grpc-js >= 1.13; declared abstract in its public typings), the
 * hook the built-in credentials use, so everything above TLS stays grpc-js's own.
 */
import { CallCredentials, ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { isIP, type Socket } from 'node:net';
import { checkServerIdentity, connect, type ConnectionOptions, type PeerCertificate } from 'node:tls';

type SecureConnector = ReturnType<ChannelCredentials['_createSecureConnector']>;
type ChannelTarget = Parameters<ChannelCredentials['_createSecureConnector']>[0];

export interface ClientTlsOptions {
  /** PEM roots to verify the server's chain with; Node's default roots when absent. */
  rootCert?: string;
  /** SNI and the name to verify; the authority's host when absent (no SNI if that is an IP). */
  servername?: string;
  /** Skip chain and name verification, like grpcurl -insecure. */
  insecure?: boolean;
  /** PEM client certificate and key, for servers that ask for one (mutual TLS). */
  clientCert?: { cert: string; key: string };
}

/** HTTP/2 over TLS must negotiate "h2" by ALPN (RFC 9113 §3.2); gRPC servers refuse anything else. */
const ALPN_PROTOCOLS = ['h2'];

export function clientTlsCredentials(options: ClientTlsOptions = {}): ChannelCredentials {
  return new GrpcurlLikeTlsCredentials(options);
}

/** `host:port`, `[v6]:port`, `host` → host without brackets. */
export function hostOf(authority: string): string {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    return end === -1 ? authority : authority.slice(1, end);
  }
  const colon = authority.lastIndexOf(':');
  // More than one colon and no brackets: a bare IPv6 address.
  if (colon === -1 || authority.indexOf(':') !== colon) return authority;
  return authority.slice(0, colon);
}

class GrpcurlLikeTlsCredentials extends ChannelCredentials {
  readonly #options: ClientTlsOptions;

  constructor(options: ClientTlsOptions) {
    super();
    this.#options = options;
  }

  override _isSecure(): boolean {
    return true;
  }

  override _equals(other: ChannelCredentials): boolean {
    return other === this;
  }

  override _createSecureConnector(
    target: ChannelTarget,
    channelOptions: ChannelOptions,
    callCredentials?: CallCredentials,
  ): SecureConnector {
    const authority = channelOptions['grpc.default_authority'];
    const host = hostOf(typeof authority === 'string' ? authority : target.path);
    const name = this.#options.servername ?? host;
    const tlsOptions: ConnectionOptions = {
      ALPNProtocols: ALPN_PROTOCOLS,
      rejectUnauthorized: this.#options.insecure !== true,
      checkServerIdentity: (_hostname: string, cert: PeerCertificate) => checkServerIdentity(name, cert),
      ...(isIP(name) === 0 ? { servername: name } : {}),
      ...(this.#options.rootCert === undefined ? {} : { ca: this.#options.rootCert }),
      ...(this.#options.clientCert ?? {}),
    };
    const calls = callCredentials ?? CallCredentials.createEmpty();
    return {
      connect: (socket: Socket) =>
        new Promise((resolve, reject) => {
          const tlsSocket = connect({ ...tlsOptions, socket }, () => {
            if (tlsOptions.rejectUnauthorized === true && !tlsSocket.authorized) {
              reject(tlsSocket.authorizationError);
              return;
            }
            resolve({ socket: tlsSocket, secure: true });
          });
          tlsSocket.once('error', reject);
        }),
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => calls,
      destroy: () => undefined,
    };
  }
}
