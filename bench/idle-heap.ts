/**
 * Where an idle connection's memory goes, in one process: N idle h2c connections (bench/vs-nginx/idle-connector.ts
 * in a child) to `net` (a bare net server, Node's floor), `tls` (a bare node:tls server negotiating ALPN h2: Node's
 * floor for TLS) or `native` (a standalone data plane on the native engine), then heap, external, array buffers and
 * RSS per connection after a full GC.
 *   node --expose-gc bench/idle-heap.ts net|tls|native [N]
 */
import { spawn } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { makeCert } from '../test/helpers/certs.ts';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDataPlane } from '../data-plane/data-plane.ts';
import { parseConfig } from '../shared/config.ts';
import { silentLogger } from '../shared/logger.ts';

const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
const mode = process.argv[2] ?? 'native';
const count = Number(process.argv[3] ?? '10000');
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

async function start(): Promise<{ port: number; close(): Promise<void> }> {
  if (mode === 'net' || mode === 'tls') {
    const sockets: Socket[] = [];
    const onSocket = (s: Socket): void => { sockets.push(s); s.once('data', () => s.write(EMPTY_SETTINGS)); };
    const server = mode === 'net' ? createServer(onSocket) : createTlsServer({ ...(await makeCert({ sans: ['localhost'] })), ALPNProtocols: ['h2'] }, onSocket);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { port: (server.address() as { port: number }).port, close: async () => { for (const s of sockets) s.destroy(); server.close(); } };
  }
  const dir = await mkdtemp(join(tmpdir(), 'idle-heap-'));
  const file = join(dir, 'apisix.yaml');
  await writeFile(file, 'routes: []\n#END\n');
  const config = parseConfig(`
apisix:
  http2_engine: ${mode}
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { enable: false }
nginx_config:
  max_connections_per_ip: 0
  event: { worker_connections: 100000 }
  http: { client_header_timeout: 600s, keepalive_timeout: 600s }
deployment:
  role_data_plane: { config_provider: yaml, config_file: ${JSON.stringify(file)} }
  etcd: { host: ["http://127.0.0.1:9"] }
`);
  const plane = await startDataPlane({ config, log: silentLogger() });
  const bound = plane.addresses.find((a) => a.kind === 'h2c');
  return { port: bound?.port ?? 0, close: () => plane.close() };
}

const mem = (): NodeJS.MemoryUsage => { gc(); gc(); return process.memoryUsage(); };
const target = await start();
await new Promise((r) => setTimeout(r, 300));
const before = mem();
if (process.env['SNAP'] !== undefined) (await import('node:v8')).writeHeapSnapshot(`${process.env['SNAP']}.before`);
const connector = ['bench/vs-nginx/idle-connector.ts', `127.0.0.1:${target.port}`, String(count), '256', mode === 'tls' ? 'tls' : 'h2c'];
const child = spawn(process.execPath, [...connector], { stdio: ['pipe', 'pipe', 'inherit'] });
const line = await new Promise<string>((resolve) => child.stdout.once('data', (b: Buffer) => resolve(b.toString())));
await new Promise((r) => setTimeout(r, 1000));
const after = mem();
const per = (k: keyof NodeJS.MemoryUsage): string => ((after[k] - before[k]) / count / 1024).toFixed(2);
if (process.env['SNAP'] !== undefined) (await import('node:v8')).writeHeapSnapshot(process.env['SNAP']);
console.log(JSON.stringify({ mode, connector: line.trim(), rss: per('rss'), heapUsed: per('heapUsed'), external: per('external'), arrayBuffers: per('arrayBuffers') }));
child.stdin.end();
await target.close();
process.exit(0);
