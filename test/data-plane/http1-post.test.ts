/**
 * The OTLP exporter's HTTP/1.1 client (data-plane/observability/http1-post.ts) against raw TCP servers that answer
 * with each framing RFC 9112 allows, plus the ways a collector can misbehave: every POST resolves, with the status
 * or an error, and the connection is kept only when the response said it could be.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import { Http1Poster } from '../../data-plane/observability/http1-post.ts';
import { makeCert } from '../helpers/certs.ts';

interface RawServer {
  url: URL;
  /** Request heads received, in order. */
  heads: string[];
  /** Bodies received, in order. */
  bodies: string[];
  connections: number;
  /** Ends every open connection from the server's side. */
  endAll(): void;
  close(): Promise<void>;
}

/**
 * A server that reads each request (head + content-length body) and answers with `answer(n)` for the n-th request
 * (0-based), written in two pieces to exercise reassembly. 'close' closes the connection instead; 'hang' never answers.
 */
async function rawServer(answer: (n: number) => string): Promise<RawServer> {
  const heads: string[] = [];
  const bodies: string[] = [];
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = pending.toString('latin1', 0, end);
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (pending.length < end + 4 + length) return;
        heads.push(head);
        bodies.push(pending.toString('utf8', end + 4, end + 4 + length));
        pending = pending.subarray(end + 4 + length);
        const reply = answer(heads.length - 1);
        if (reply === 'close') return void socket.destroy();
        if (reply === 'hang') return;
        const half = Math.floor(reply.length / 2);
        socket.write(reply.slice(0, half), 'latin1');
        setImmediate(() => socket.write(reply.slice(half), 'latin1'));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: new URL(`http://127.0.0.1:${port}/v1/traces`),
    heads,
    bodies,
    get connections() {
      return connections;
    },
    endAll: () => {
      for (const socket of sockets) socket.end();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

const OK_LENGTH = 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}';
const OK_CHUNKED = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2;x=y\r\n{}\r\n1\r\n \r\n0\r\nx-trailer: 1\r\n\r\n';

describe('Http1Poster', () => {
  const servers: RawServer[] = [];
  const posters: Http1Poster[] = [];
  const server = async (answer: (n: number) => string): Promise<RawServer> => {
    const s = await rawServer(answer);
    servers.push(s);
    return s;
  };
  const poster = (url: URL, headers: Record<string, string> = {}): Http1Poster => {
    const p = new Http1Poster(url, headers);
    posters.push(p);
    return p;
  };
  after(async () => {
    for (const p of posters) p.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  test('content-length and chunked answers: statuses come back and one connection serves every POST', async () => {
    const s = await server((n) => [OK_LENGTH, OK_CHUNKED, 'HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n'][n] ?? 'close');
    const p = poster(s.url, { 'content-type': 'application/json', authorization: 'Bearer t' });
    assert.deepEqual(await p.post(Buffer.from('{"a":1}'), 5_000), { status: 200 });
    assert.deepEqual(await p.post(Buffer.from('{"b":2}'), 5_000), { status: 200 });
    assert.deepEqual(await p.post(Buffer.from('x'), 5_000), { status: 503 });
    assert.deepEqual(await p.post(Buffer.from('é'), 5_000), { status: 204 });
    assert.equal(s.connections, 1);
    assert.deepEqual(s.bodies, ['{"a":1}', '{"b":2}', 'x', 'é']);
    const head = (s.heads[0] ?? '').split('\r\n');
    assert.equal(head[0], 'POST /v1/traces HTTP/1.1');
    assert.ok(head.includes(`host: ${s.url.host}`));
    assert.ok(head.includes('authorization: Bearer t'));
    assert.ok(head.includes('content-length: 7'));
  });

  test('a body framed by the close, and connection: close, end the connection; the next POST opens another', async () => {
    const s = await server((n) => ['HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}', 'HTTP/1.0 202 Accepted\r\n\r\nbody until close', OK_LENGTH][n] ?? 'close');
    const p = poster(s.url);
    assert.deepEqual(await p.post(Buffer.from('1'), 5_000), { status: 200 });
    // HTTP/1.0 with no length: the server must close for the body to end. Ours does not, so close it from here.
    const framedByClose = p.post(Buffer.from('2'), 5_000);
    await new Promise((r) => setTimeout(r, 100));
    s.endAll();
    assert.deepEqual(await framedByClose, { status: 202 });
    assert.deepEqual(await p.post(Buffer.from('3'), 5_000), { status: 200 });
    assert.equal(s.connections, 3);
  });

  test('a server that closes, hangs, or answers garbage: every POST resolves with an error', async () => {
    const s = await server((n) => (['close', 'hang', 'SMTP ready\r\n\r\n', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n', `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`] as const)[n] ?? OK_LENGTH);
    const p = poster(s.url);
    assert.deepEqual(await p.post(Buffer.from('1'), 5_000), { error: 'connection closed' });
    assert.deepEqual(await p.post(Buffer.from('2'), 200), { error: 'timeout' });
    const garbage = await p.post(Buffer.from('3'), 5_000);
    assert.ok('error' in garbage && garbage.error.startsWith('not an HTTP/1.x response'), JSON.stringify(garbage));
    assert.deepEqual(await p.post(Buffer.from('4'), 5_000), { error: 'malformed chunk size' });
    assert.deepEqual(await p.post(Buffer.from('5'), 5_000), { error: 'response head too large' });
    assert.deepEqual(await p.post(Buffer.from('6'), 5_000), { status: 200 });
  });

  test('nothing listening, and a header value HTTP forbids: errors, no throw', async () => {
    const closed = await rawServer(() => OK_LENGTH);
    await closed.close();
    const nowhere = await poster(closed.url).post(Buffer.from('1'), 5_000);
    assert.ok('error' in nowhere && /ECONNREFUSED/.test(nowhere.error), JSON.stringify(nowhere));
    const s = await server(() => OK_LENGTH);
    assert.deepEqual(await poster(s.url, { 'x-evil': 'a\r\nx-injected: 1' }).post(Buffer.from('1'), 5_000), { error: 'invalid value for header "x-evil"' });
    assert.equal(s.heads.length, 0);
  });

  test('https: the collector certificate is verified (a self-signed one fails the POST)', async () => {
    const { createServer } = await import('node:https');
    const { key, cert } = await makeCert({ sans: ['localhost'] });
    const server = createServer({ key, cert }, (_req, res) => res.end('{}'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    try {
      const result = await poster(new URL(`https://localhost:${port}/v1/traces`)).post(Buffer.from('{}'), 5_000);
      assert.ok('error' in result && /self.signed|certificate/i.test(result.error), JSON.stringify(result));
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
