/**
 * The files of `deployment.etcd.tls` read into what an etcd3 client takes (its `credentials` and the gRPC channel
 * option that overrides the name checked against etcd's certificate). Shared so both planes, each with its own
 * etcd module, connect the same way; it does not import etcd3 itself.
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { EtcdTlsConfig } from './config.ts';
import { ConfigError, describe } from './errors.ts';

export interface EtcdTlsOptions {
  credentials: { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer };
  grpcOptions: Record<string, string>;
}

/** grpc-js's channel option for the name to verify the server certificate against (gRPC's ssl_target_name_override). */
const TARGET_NAME_OVERRIDE = 'grpc.ssl_target_name_override';

/** Reads the CA, client certificate and key; undefined when no TLS is configured (plain or `https://` hosts). */
export function readEtcdTls(tls: EtcdTlsConfig | undefined): EtcdTlsOptions | undefined {
  if (tls === undefined) return undefined;
  // etcd3 needs a root bundle whenever credentials are given; without a configured CA, the system's roots apply.
  const rootCertificate = tls.caFile === undefined ? Buffer.from(rootCertificates.join('\n')) : read(tls.caFile, 'CA');
  const credentials: EtcdTlsOptions['credentials'] = { rootCertificate };
  if (tls.certFile !== undefined) credentials.certChain = read(tls.certFile, 'client certificate');
  if (tls.keyFile !== undefined) credentials.privateKey = read(tls.keyFile, 'client key');
  const grpcOptions: Record<string, string> = tls.sni === undefined ? {} : { [TARGET_NAME_OVERRIDE]: tls.sni };
  return { credentials, grpcOptions };
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`cannot read the etcd TLS ${what} ${path}: ${describe(err)}`);
  }
}

/**
 * gRPC channel options both planes give their etcd client. A member that hangs (SIGSTOP, a paused VM, a network that
 * silently drops packets) never closes the connection: without keepalive pings a watch on it would stall for good
 * while looking healthy. A ping every 10 s that goes unanswered for 5 s closes the channel, so the watch resumes on
 * another member. etcd refuses pings more often than its --grpc-keepalive-min-time (5 s) with GOAWAY.
 */
export const ETCD_CHANNEL_OPTIONS: Readonly<Record<string, number>> = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
};
