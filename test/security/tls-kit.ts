/**
 * What the TLS and grpc-message security tests share: a standalone data plane (config_provider: yaml, no etcd)
 * started in-process on loopback port 0 with the `apisix.ssl` settings a test gives, raw TLS handshakes that report
 * what was negotiated instead of throwing, a private CA that signs node certificates, and a logger whose lines a test
 * can read (to check that the detail hidden from clients is logged).
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { pino, type Logger } from 'pino';
import { generate } from 'selfsigned';
import { startDataPlane, type DataPlane } from '../../data-plane/data-plane.ts';
import { parseConfig } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import type { CertAndKey } from '../helpers/certs.ts';
import { DEFAULT_LIMIT_MS, within } from '../helpers/fake-upstream.ts';

/** Small, so that a rewritten apisix.yaml is picked up quickly. */
const POLL_MS = 50;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface TestPlane {
  readonly plane: DataPlane;
  readonly h2cAddress: string;
  readonly tlsPort: number;
  readonly tlsAddress: string;
  /** Writes a new apisix.yaml (the `#END` line is added). */
  rewrite(body: string): Promise<void>;
  close(): Promise<void>;
}

export interface TestPlaneOptions {
  /** apisix.yaml without its `#END` line. */
  apisixYaml: string;
  /** Extra `apisix.ssl` keys as YAML flow entries, e.g. `ssl_protocols: TLSv1.3`. */
  ssl?: string;
  defaultCert: CertAndKey;
  log?: Logger;
}

export async function startTestPlane(options: TestPlaneOptions): Promise<TestPlane> {
  const dir = await mkdtemp(join(tmpdir(), 'sec-tls-'));
  const file = join(dir, 'apisix.yaml');
  let writes = 0;
  const rewrite = async (body: string): Promise<void> => {
    // Rename over the file, so that the poller never reads half of it.
    const temp = join(dir, `next-${writes++}.yaml`);
    await writeFile(temp, `${body}\n#END\n`);
    await rename(temp, file);
  };
  await rewrite(options.apisixYaml);
  const extra = options.ssl === undefined ? '' : `, ${options.ssl}`;
  let plane: DataPlane;
  try {
    const config = parseConfig(`
apisix:
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { listen: [{ ip: 127.0.0.1, port: 0 }]${extra} }
deployment:
  role_data_plane: { config_provider: yaml, config_file: ${JSON.stringify(file)} }
  etcd: { host: ["http://127.0.0.1:9"] }
`);
    config.dataPlane.standalonePollMs = POLL_MS;
    plane = await startDataPlane({ config, log: options.log ?? silentLogger(), defaultCert: options.defaultCert });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const port = (kind: 'h2c' | 'tls'): number => plane.addresses.find((a) => a.kind === kind)?.port ?? 0;
  return {
    plane,
    h2cAddress: `127.0.0.1:${port('h2c')}`,
    tlsPort: port('tls'),
    tlsAddress: `127.0.0.1:${port('tls')}`,
    rewrite,
    async close() {
      await plane.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** One route for SayHello to the given nodes (`127.0.0.1:port` → weight), and optional ssl objects. */
export function greeterYaml(nodes: Record<string, number>, options: { scheme?: 'grpc' | 'grpcs'; verify?: boolean; ssls?: string } = {}): string {
  const nodeLines = Object.entries(nodes)
    .map(([address, weight]) => `        "${address}": ${weight}`)
    .join('\n');
  const tls = options.verify === undefined ? '' : `\n      tls: { verify: ${String(options.verify)} }`;
  return `
routes:
  - id: 1
    uri: /helloworld.Greeter/SayHello
    upstream:
      scheme: ${options.scheme ?? 'grpc'}
      type: roundrobin${tls}
      nodes:
${nodeLines}
${options.ssls ?? ''}`;
}

/** An `ssls` list with one certificate for the given SNIs. */
export function sslsYaml(pem: CertAndKey, snis: readonly string[]): string {
  return `ssls:
  - id: 1
    snis: ${JSON.stringify(snis)}
    cert: ${JSON.stringify(pem.cert)}
    key: ${JSON.stringify(pem.key)}`;
}

export interface HandshakeResult {
  ok: boolean;
  protocol: string | null;
  cipher: string | undefined;
  alpn: string | false | null;
  /** The certificate's subject CN the server presented. */
  subject: string | undefined;
  error: string | undefined;
}

/** A raw TLS handshake with ALPN h2 and no verification: what got negotiated, or the error. */
export function handshake(port: number, options: ConnectionOptions): Promise<HandshakeResult> {
  return within(
    new Promise<HandshakeResult>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port, ALPNProtocols: ['h2'], rejectUnauthorized: false, ...options });
      socket.once('secureConnect', () => {
        // An empty object when the server sent no certificate (the types promise a whole one).
        const cn = (socket.getPeerCertificate() as Partial<PeerCertificate>).subject?.CN;
        resolve({
          ok: true,
          protocol: socket.getProtocol(),
          cipher: socket.getCipher().standardName,
          alpn: socket.alpnProtocol,
          subject: Array.isArray(cn) ? cn.join(',') : cn,
          error: undefined,
        });
        socket.destroy();
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        resolve({ ok: false, protocol: null, cipher: undefined, alpn: null, subject: undefined, error: err.code ?? err.message });
        socket.destroy();
      });
    }),
    DEFAULT_LIMIT_MS,
    'TLS handshake with the gateway',
  );
}

export interface PrivateCa {
  /** The CA certificate: the bundle for `ssl_trusted_certificate`. */
  readonly cert: string;
  /** A node certificate for these names, signed by the CA. */
  issue(sans: readonly string[]): Promise<CertAndKey>;
}

/** A CA of its own (no public root knows it), EC P-256, and the certificates it signs. */
export async function makePrivateCa(name: string): Promise<PrivateCa> {
  const now = Date.now();
  const validity = { notBeforeDate: new Date(now - DAY_MS), notAfterDate: new Date(now + 30 * DAY_MS) };
  const root = await generate([{ name: 'commonName', value: name }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ...validity,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  return {
    cert: root.cert,
    async issue(sans) {
      const leaf = await generate([{ name: 'commonName', value: sans[0] ?? 'node' }], {
        keyType: 'ec',
        algorithm: 'sha256',
        ...validity,
        ca: { key: root.private, cert: root.cert },
        extensions: [
          { name: 'basicConstraints', cA: false },
          { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
          { name: 'extKeyUsage', serverAuth: true },
          { name: 'subjectAltName', altNames: sans.map((san) => (/^[\d.]+$/.test(san) ? { type: 7, ip: san } : { type: 2, value: san })) },
        ],
      });
      return { cert: leaf.cert, key: leaf.private };
    },
  };
}

/** A logger at debug level whose JSON lines the test reads. */
export function capturingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
  return { log, lines };
}

/** `IPv4:port` or `[IPv6]:port` anywhere in a text. */
export const ADDRESS_PATTERN = /\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|\[[0-9a-f:]+\](?::\d+)?/i;
/** What an OpenSSL or Node TLS error says. */
export const TLS_ERROR_PATTERN = /ssl|tls|certificate|openssl|handshake|self[- ]signed|ERR_|ECONNREFUSED|ECONNRESET|error:[0-9A-F]{8}/i;
