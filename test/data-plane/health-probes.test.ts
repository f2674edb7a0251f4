/**
 * The active health probes (data-plane/upstream/health/probes.ts, issue #13) against real servers on real sockets:
 * grpc.health.v1 on @grpc/grpc-js (h2c and TLS), a node:http2 server for the answers grpc-js never gives (a non-200
 * :status, HTML, a reset stream, an oversized answer), a grpc-js server in a child process that is frozen
 * (SIGSTOP), resumed and restarted, tcp, and http/https on node:http(s). Each probe's classification is asserted,
 * and what the servers saw (service name, :authority, Host, headers, connections).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Prober, encodeHealthCheckRequest, servingStatus } from '../../data-plane/upstream/health/probes.ts';
import type { ActiveProbe, ProbeResult, ProbeTarget } from '../../data-plane/upstream/health/types.ts';
import { silentLogger } from '../../shared/logger.ts';
import { makeCert, type CertAndKey } from '../helpers/certs.ts';
import { startHealthServer, type HealthServer } from '../helpers/grpc-health.ts';
import { freePort } from '../helpers/ports.ts';

const HEALTH_SERVER_SCRIPT = fileURLToPath(new URL('../helpers/grpc-health.ts', import.meta.url));
/** For the probes that must time out: short, so the suite stays quick. */
const SHORT_MS = 300;

function activeCheck(overrides: Partial<ActiveProbe> = {}): ActiveProbe {
  return {
    type: 'grpc',
    timeoutMs: 2_000,
    host: undefined,
    httpPath: '/',
    reqHeaders: [],
    grpcService: '',
    healthyStatuses: [200, 302],
    unhealthyStatuses: [429, 404, 500, 501, 502, 503, 504, 505],
    ...overrides,
  };
}

function target(port: number, overrides: Partial<ProbeTarget> = {}): ProbeTarget {
  return { host: '127.0.0.1', port, scheme: 'grpc', tls: undefined, ...overrides };
}

/** A server that accepts TCP and reads, and never says a word. */
async function startSilentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

function assertOutcome(result: ProbeResult, outcome: ProbeResult['outcome'], reason?: RegExp): void {
  assert.equal(result.outcome, outcome, `expected ${outcome}, got ${result.outcome} (${result.reason})`);
  if (reason !== undefined) assert.match(result.reason, reason);
}

describe('the hand-made protobuf of grpc.health.v1', () => {
  test('HealthCheckRequest: no service is an empty message; a service is field 1, length-delimited', () => {
    assert.deepEqual([...encodeHealthCheckRequest('')], [0, 0, 0, 0, 0]);
    assert.deepEqual([...encodeHealthCheckRequest('ab')], [0, 0, 0, 0, 4, 0x0a, 2, 0x61, 0x62]);
    const long = encodeHealthCheckRequest('x'.repeat(200));
    assert.equal(long.readUInt32BE(1), 1 + 2 + 200);
    assert.deepEqual([...long.subarray(5, 8)], [0x0a, 0xc8, 0x01]);
  });

  test('HealthCheckResponse: status read past unknown fields; malformed input is -1', () => {
    assert.equal(servingStatus(Buffer.from([])), 0);
    assert.equal(servingStatus(Buffer.from([0x08, 0x01])), 1);
    // field 2 string "hi", field 3 fixed64, field 4 fixed32, then status 2
    const mixed = Buffer.from([0x12, 0x02, 0x68, 0x69, 0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x25, 1, 2, 3, 4, 0x08, 0x02]);
    assert.equal(servingStatus(mixed), 2);
    assert.equal(servingStatus(Buffer.from([0x08])), -1);
    assert.equal(servingStatus(Buffer.from([0x12, 0x05, 0x68])), -1);
    assert.equal(servingStatus(Buffer.from([0x0b])), -1); // a group
  });
});

describe('grpc probes over h2c against grpc-js', () => {
  const prober = new Prober(silentLogger());
  let server: HealthServer;
  let bare: HealthServer;
  let silent: Awaited<ReturnType<typeof startSilentServer>>;

  before(async () => {
    server = await startHealthServer();
    bare = await startHealthServer({ health: false });
    silent = await startSilentServer();
  });

  after(async () => {
    await prober.close();
    assert.equal(prober.connections, 0);
    await Promise.all([server.close(), bare.close(), silent.close()]);
  });

  test('SERVING is a success', async () => {
    assertOutcome(await prober.probe(target(server.port), activeCheck()), 'success', /SERVING/);
  });

  test('NOT_SERVING is an http failure', async () => {
    server.setStatus('', 'NOT_SERVING');
    try {
      assertOutcome(await prober.probe(target(server.port), activeCheck()), 'http_failure', /^NOT_SERVING$/);
    } finally {
      server.setStatus('', 'SERVING');
    }
    assertOutcome(await prober.probe(target(server.port), activeCheck()), 'success');
  });

  test('an unknown service is an http failure (NOT_FOUND)', async () => {
    assertOutcome(await prober.probe(target(server.port), activeCheck({ grpcService: 'no.such.Service' })), 'http_failure', /grpc-status 5\b/);
  });

  test('a server without the health service is an http failure (UNIMPLEMENTED)', async () => {
    assertOutcome(await prober.probe(target(bare.port), activeCheck()), 'http_failure', /grpc-status 12\b/);
  });

  test('grpc_service goes in the request', async () => {
    server.setStatus('helloworld.Greeter', 'SERVING');
    server.setStatus('helloworld.Down', 'SERVICE_UNKNOWN');
    assertOutcome(await prober.probe(target(server.port), activeCheck({ grpcService: 'helloworld.Greeter' })), 'success');
    assert.equal(server.seen.at(-1)?.service, 'helloworld.Greeter');
    assertOutcome(await prober.probe(target(server.port), activeCheck({ grpcService: 'helloworld.Down' })), 'http_failure', /^SERVICE_UNKNOWN$/);
    assert.equal(server.seen.at(-1)?.service, 'helloworld.Down');
    assertOutcome(await prober.probe(target(server.port), activeCheck()), 'success');
    assert.equal(server.seen.at(-1)?.service, '');
  });

  test(':authority is checks.active.host when set, else the node host:port', async () => {
    assertOutcome(await prober.probe(target(server.port), activeCheck({ host: 'health.example.com:8443' })), 'success');
    assert.equal(server.seen.at(-1)?.authority, 'health.example.com:8443');
    assertOutcome(await prober.probe(target(server.port), activeCheck()), 'success');
    assert.equal(server.seen.at(-1)?.authority, `127.0.0.1:${server.port}`);
  });

  test('a closed port is a tcp failure', async () => {
    const port = await freePort();
    assertOutcome(await prober.probe(target(port), activeCheck()), 'tcp_failure', /ECONNREFUSED/);
  });

  test('a server that accepts and never answers is a timeout, and so is the next probe', async () => {
    assertOutcome(await prober.probe(target(silent.port), activeCheck({ timeoutMs: SHORT_MS })), 'timeout');
    assertOutcome(await prober.probe(target(silent.port), activeCheck({ timeoutMs: SHORT_MS })), 'timeout');
  });
});

describe('grpc probes reuse one connection per target', () => {
  test('20 probes, one connection on both sides', async () => {
    const server = await startHealthServer();
    const prober = new Prober(silentLogger());
    try {
      const node = target(server.port);
      for (let i = 0; i < 20; i++) {
        assertOutcome(await prober.probe(node, activeCheck()), 'success');
        assert.equal(prober.connections, 1);
      }
      assert.equal(server.calls, 20);
      assert.equal(server.connections, 1);
      // Probes of the same node through another target object (another upstream) share it too.
      assertOutcome(await prober.probe(target(server.port), activeCheck({ grpcService: '' })), 'success');
      assert.equal(server.connections, 1);
      // forget() drops it; the next probe dials again.
      prober.forget(node);
      assertOutcome(await prober.probe(node, activeCheck()), 'success');
      assert.equal(server.connections, 2);
    } finally {
      await prober.close();
      assert.equal(prober.connections, 0);
      await server.close();
    }
  });

  test('probes in parallel on one connection', async () => {
    const server = await startHealthServer();
    const prober = new Prober(silentLogger());
    try {
      const node = target(server.port);
      assertOutcome(await prober.probe(node, activeCheck()), 'success');
      const results = await Promise.all(Array.from({ length: 10 }, () => prober.probe(node, activeCheck())));
      for (const result of results) assertOutcome(result, 'success');
      assert.equal(server.connections, 1);
      assert.equal(server.calls, 11);
    } finally {
      await prober.close();
      await server.close();
    }
  });
});

/**
 * A TCP relay in front of a server that can blackhole the connections it carries: they stay open and nothing
 * passes any more, in either direction (a peer gone without a FIN or RST). New connections pass normally.
 */
async function startRelay(upstreamPort: number): Promise<{ port: number; readonly connections: number; blackhole(): void; close(): Promise<void> }> {
  const pairs: [net.Socket, net.Socket][] = [];
  let connections = 0;
  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect(upstreamPort, '127.0.0.1');
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
    pairs.push([client, upstream]);
  });
  const port = await listen(server);
  return {
    port,
    get connections() {
      return connections;
    },
    blackhole() {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.on('data', () => {});
        upstream.on('data', () => {});
      }
    },
    async close() {
      for (const [client, upstream] of pairs) {
        client.destroy();
        upstream.destroy();
      }
      await closeServer(server);
    },
  };
}

describe('a connection whose probe timed out is not trusted again', () => {
  test('a blackholed connection: one timeout, then a new connection and a success', async () => {
    const server = await startHealthServer();
    const relay = await startRelay(server.port);
    const prober = new Prober(silentLogger());
    try {
      const node = target(relay.port);
      const check = activeCheck({ timeoutMs: SHORT_MS });
      assertOutcome(await prober.probe(node, check), 'success');
      assertOutcome(await prober.probe(node, check), 'success');
      assert.equal(relay.connections, 1);
      relay.blackhole();
      assertOutcome(await prober.probe(node, check), 'timeout');
      assertOutcome(await prober.probe(node, check), 'success');
      assert.equal(relay.connections, 2);
    } finally {
      await prober.close();
      assert.equal(prober.connections, 0);
      await relay.close();
      await server.close();
    }
  });
});

describe('grpc probes against answers grpc-js never gives (node:http2)', () => {
  const prober = new Prober(silentLogger(), { maxResponseBytes: 1024 });
  let server: http2.Http2Server;
  let port: number;
  let sessions = 0;

  before(async () => {
    server = http2.createServer();
    server.on('session', () => sessions++);
    server.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      stream.resume();
      switch (headers[':authority']) {
        case 'status-404':
          stream.respond({ ':status': 404, 'content-type': 'application/grpc' }, { endStream: true });
          return;
        case 'html':
          stream.respond({ ':status': 200, 'content-type': 'text/html' });
          stream.end('<html></html>');
          return;
        case 'reset':
          stream.close(http2.constants.NGHTTP2_CANCEL);
          return;
        case 'big':
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
          stream.end(Buffer.alloc(4096));
          return;
        case 'serving-with-extras': {
          // SERVING after an unknown field, in a frame split over two DATA frames.
          const message = Buffer.from([0x12, 0x03, 0x61, 0x62, 0x63, 0x08, 0x01]);
          const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
          stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
          stream.write(frame.subarray(0, 3));
          setTimeout(() => stream.end(frame.subarray(3)), 20);
          return;
        }
        case 'no-message':
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
          stream.end();
          return;
        case 'lost':
          stream.session?.socket.destroy();
          return;
        default:
          stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'going%20away' }, { endStream: true });
      }
    });
    port = await listen(server);
  });

  after(async () => {
    await prober.close();
    assert.equal(prober.connections, 0);
    server.close();
  });

  const probeAs = (authority: string): Promise<ProbeResult> => prober.probe(target(port), activeCheck({ host: authority }));

  test('a non-200 :status is an http failure', async () => {
    assertOutcome(await probeAs('status-404'), 'http_failure', /HTTP 404/);
  });

  test('a non-gRPC content-type is an http failure', async () => {
    assertOutcome(await probeAs('html'), 'http_failure', /content-type text\/html/);
  });

  test('a reset stream is an http failure', async () => {
    assertOutcome(await probeAs('reset'), 'http_failure', /stream reset CANCEL/);
  });

  test('an answer above the bound is an http failure', async () => {
    assertOutcome(await probeAs('big'), 'http_failure', /response above 1024 bytes/);
  });

  test('a trailers-only answer with a grpc-status is an http failure that says which', async () => {
    assertOutcome(await probeAs('unavailable'), 'http_failure', /^grpc-status 14: going away$/);
  });

  test('OK without a message is an http failure', async () => {
    assertOutcome(await probeAs('no-message'), 'http_failure', /no response message/);
  });

  test('SERVING is read past unknown fields, across DATA frames, with content-type application/grpc+proto', async () => {
    assertOutcome(await probeAs('serving-with-extras'), 'success');
  });

  test('all of the above on one connection; a lost connection is an http failure and the next probe dials again', async () => {
    assert.equal(sessions, 1);
    assertOutcome(await probeAs('lost'), 'http_failure');
    assertOutcome(await probeAs('serving-with-extras'), 'success');
    assert.equal(sessions, 2);
  });
});

describe('grpc probes over TLS (grpcs)', () => {
  const prober = new Prober(silentLogger());
  let cert: CertAndKey;
  let server: HealthServer;
  let noAlpn: net.Server;
  let noAlpnPort: number;

  before(async () => {
    cert = await makeCert({ sans: ['localhost', '127.0.0.1'] });
    server = await startHealthServer({ tls: cert });
    noAlpn = createTlsServer({ cert: cert.cert, key: cert.key }, (socket) => socket.on('error', () => {}));
    noAlpnPort = await listen(noAlpn);
  });

  after(async () => {
    await prober.close();
    assert.equal(prober.connections, 0);
    await server.close();
    await closeServer(noAlpn);
  });

  const tlsTarget = (port: number, verify: boolean, ca: string | undefined, host = '127.0.0.1'): ProbeTarget =>
    target(port, { host, scheme: 'grpcs', tls: { clientCert: undefined, verify, ca } });

  test('SERVING without verification is a success', async () => {
    assertOutcome(await prober.probe(tlsTarget(server.port, false, undefined), activeCheck()), 'success');
  });

  test('an untrusted self-signed certificate with verification is a tcp failure', async () => {
    assertOutcome(await prober.probe(tlsTarget(server.port, true, undefined), activeCheck()), 'tcp_failure', /self-signed|self signed/i);
  });

  test('the right CA makes it a success, by IP and by name (SNI)', async () => {
    assertOutcome(await prober.probe(tlsTarget(server.port, true, cert.cert), activeCheck()), 'success');
    assertOutcome(await prober.probe(tlsTarget(server.port, true, cert.cert, 'localhost'), activeCheck()), 'success');
  });

  test('a TLS server that does not select ALPN h2 is a tcp failure', async () => {
    assertOutcome(await prober.probe(tlsTarget(noAlpnPort, false, undefined), activeCheck()), 'tcp_failure', /ALPN/);
  });
});

/** A grpc-js health server in a child process, so that it can be frozen with SIGSTOP. */
interface Child {
  readonly process: ChildProcess;
  readonly port: number;
  readonly exited: Promise<void>;
}

async function spawnHealthServer(port = 0): Promise<Child> {
  const env = { ...process.env };
  delete env['NODE_TEST_CONTEXT'];
  const child = spawn(process.execPath, [HEALTH_SERVER_SCRIPT, '--port', String(port)], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ports = await new Promise<number[]>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const line = out.split('\n')[0];
      if (out.includes('\n') && line !== undefined) resolve((JSON.parse(line) as { ports: number[] }).ports);
    });
    child.once('exit', (code) => reject(new Error(`health server exited (${String(code)}) before it listened`)));
  });
  return { process: child, port: ports[0] as number, exited };
}

describe('a frozen, resumed and restarted grpc server (child process)', () => {
  const prober = new Prober(silentLogger());
  const children: Child[] = [];

  after(async () => {
    await prober.close();
    assert.equal(prober.connections, 0);
    for (const child of children) {
      if (child.process.exitCode !== null || child.process.signalCode !== null) continue;
      child.process.kill('SIGCONT');
      child.process.kill('SIGKILL');
      await child.exited;
    }
  });

  test('SIGSTOP → timeouts; SIGCONT → success again; a new process on the same port → success', async () => {
    const first = await spawnHealthServer();
    children.push(first);
    const node = target(first.port);
    const check = activeCheck({ timeoutMs: 500 });
    assertOutcome(await prober.probe(node, check), 'success');

    first.process.kill('SIGSTOP');
    for (let i = 0; i < 3; i++) assertOutcome(await prober.probe(node, check), 'timeout');

    first.process.kill('SIGCONT');
    let resumed: ProbeResult | undefined;
    for (let i = 0; i < 5 && resumed?.outcome !== 'success'; i++) resumed = await prober.probe(node, check);
    assert.equal(resumed?.outcome, 'success', `not back after SIGCONT: ${String(resumed?.reason)}`);

    first.process.kill('SIGKILL');
    await first.exited;
    const second = await spawnHealthServer(first.port);
    children.push(second);
    assert.equal(second.port, first.port);
    assertOutcome(await prober.probe(node, check), 'success');

    second.process.kill('SIGKILL');
    await second.exited;
    const gone = await prober.probe(node, check);
    assert.notEqual(gone.outcome, 'success');
    assertOutcome(await prober.probe(node, check), 'tcp_failure', /ECONNREFUSED/);
  });
});

describe('tcp probes', () => {
  const prober = new Prober(silentLogger());
  let server: net.Server;
  let port: number;

  before(async () => {
    server = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.resume();
    });
    port = await listen(server);
  });

  after(async () => {
    await prober.close();
    assert.equal(prober.connections, 0);
    await closeServer(server);
  });

  test('an open port is a success', async () => {
    assertOutcome(await prober.probe(target(port), activeCheck({ type: 'tcp' })), 'success');
  });

  test('a closed port is a tcp failure', async () => {
    assertOutcome(await prober.probe(target(await freePort()), activeCheck({ type: 'tcp' })), 'tcp_failure', /ECONNREFUSED/);
  });
});

describe('http and https probes', () => {
  const prober = new Prober(silentLogger());
  let server: http.Server;
  let port: number;
  let secure: https.Server;
  let securePort: number;
  let cert: CertAndKey;
  let lastHeaders: http.IncomingHttpHeaders | undefined;
  let lastPath: string | undefined;
  const held = new Set<http.ServerResponse>();

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    lastHeaders = req.headers;
    lastPath = req.url;
    switch (req.url) {
      case '/down':
        res.writeHead(503).end('down');
        return;
      case '/teapot':
        res.writeHead(418).end();
        return;
      case '/silent':
        held.add(res); // never answered (ended in after())
        return;
      case '/endless': {
        // A body that never ends: the probe reads 64 KiB of it at most.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(16 * 1024);
        const timer = setInterval(() => res.write(chunk), 5);
        res.once('close', () => clearInterval(timer));
        return;
      }
      default:
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    }
  };

  before(async () => {
    cert = await makeCert({ sans: ['localhost', '127.0.0.1'] });
    server = http.createServer(handler);
    port = await listen(server);
    secure = https.createServer({ cert: cert.cert, key: cert.key }, handler);
    securePort = await listen(secure);
  });

  after(async () => {
    await prober.close();
    assert.equal(prober.connections, 0);
    for (const res of held) res.destroy();
    server.closeAllConnections();
    secure.closeAllConnections();
    await Promise.all([closeServer(server), closeServer(secure)]);
  });

  const httpCheck = (overrides: Partial<ActiveProbe> = {}): ActiveProbe => activeCheck({ type: 'http', ...overrides });

  test('200 is a success, 503 an http failure, 418 (in neither list) counts nowhere', async () => {
    assertOutcome(await prober.probe(target(port), httpCheck({ httpPath: '/ok' })), 'success', /HTTP 200/);
    assert.equal(lastPath, '/ok');
    assertOutcome(await prober.probe(target(port), httpCheck({ httpPath: '/down' })), 'http_failure', /HTTP 503/);
    assertOutcome(await prober.probe(target(port), httpCheck({ httpPath: '/teapot' })), 'none', /HTTP 418/);
  });

  test('Host is checks.active.host (else host:port), req_headers arrive, the connection is not kept', async () => {
    assertOutcome(await prober.probe(target(port), httpCheck({ host: 'probe.example.com', reqHeaders: ['X-Probe: yes', 'User-Agent: apisix-health'] })), 'success');
    assert.equal(lastHeaders?.host, 'probe.example.com');
    assert.equal(lastHeaders['x-probe'], 'yes');
    assert.equal(lastHeaders['user-agent'], 'apisix-health');
    assert.equal(lastHeaders.connection, 'close');
    assertOutcome(await prober.probe(target(port), httpCheck()), 'success');
    assert.equal(lastHeaders.host, `127.0.0.1:${port}`);
    assert.equal(lastHeaders['x-probe'], undefined);
  });

  test('a server that never answers is a timeout', async () => {
    assertOutcome(await prober.probe(target(port), httpCheck({ httpPath: '/silent', timeoutMs: SHORT_MS })), 'timeout');
  });

  test('an endless body is read 64 KiB at most: the status decides', async () => {
    assertOutcome(await prober.probe(target(port), httpCheck({ httpPath: '/endless', timeoutMs: 5_000 })), 'success', /HTTP 200/);
  });

  test('a closed port is a tcp failure', async () => {
    assertOutcome(await prober.probe(target(await freePort()), httpCheck()), 'tcp_failure', /ECONNREFUSED/);
  });

  const httpsTarget = (verify: boolean, ca?: string): ProbeTarget => target(securePort, { tls: { clientCert: undefined, verify, ca } });

  test('https: a self-signed certificate without verification is a success', async () => {
    assertOutcome(await prober.probe(httpsTarget(false), httpCheck({ type: 'https' })), 'success');
  });

  test('https: with verification it is a tcp failure, unless the CA is trusted', async () => {
    assertOutcome(await prober.probe(httpsTarget(true), httpCheck({ type: 'https' })), 'tcp_failure', /self-signed|self signed/i);
    assertOutcome(await prober.probe(httpsTarget(true, cert.cert), httpCheck({ type: 'https', httpPath: '/down' })), 'http_failure', /HTTP 503/);
  });
});

describe('close()', () => {
  test('pending probes resolve as closed, connections are 0, later probes resolve as closed', async () => {
    const silent = await startSilentServer();
    const server = await startHealthServer();
    const prober = new Prober(silentLogger());
    try {
      assertOutcome(await prober.probe(target(server.port), activeCheck()), 'success');
      const pending = [
        prober.probe(target(silent.port), activeCheck({ timeoutMs: 30_000 })),
        prober.probe(target(silent.port), activeCheck({ type: 'http', timeoutMs: 30_000 })),
        prober.probe(target(silent.port), activeCheck({ type: 'https', timeoutMs: 30_000 })),
      ];
      // Let the dials happen.
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.ok(prober.connections >= 3, `connections: ${prober.connections}`);
      await prober.close();
      for (const result of await Promise.all(pending)) assertOutcome(result, 'tcp_failure', /closed/);
      assert.equal(prober.connections, 0);
      assertOutcome(await prober.probe(target(server.port), activeCheck()), 'tcp_failure', /closed/);
    } finally {
      await prober.close();
      await Promise.all([silent.close(), server.close()]);
    }
  });
});
