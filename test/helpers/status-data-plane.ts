/**
 * An in-process data plane with its status port, following a test's etcd: h2c on loopback port 0, no TLS listener,
 * `apisix.status` on port 0, and a short etcd timeout so that watch failures show quickly. For tests that probe
 * /healthz and /readyz of a whole data plane.
 */
import { startDataPlane, type DataPlane } from '../../data-plane/data-plane.ts';
import { parseConfig } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import { makeCert } from './certs.ts';

export async function startStatusDataPlane(etcdEndpoint: string): Promise<DataPlane> {
  const config = parseConfig(`
apisix:
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { enable: false }
  status: { ip: 127.0.0.1, port: 0 }
deployment:
  etcd: { host: ["${etcdEndpoint}"], prefix: /apisix, timeout: 2 }
`);
  return startDataPlane({ config, log: silentLogger(), defaultCert: await makeCert({ sans: ['localhost'] }) });
}
