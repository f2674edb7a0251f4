/**
 * Issue #17: the `grpc-web` plugin, checked raw at each edge (no client library between the test and the bytes):
 * binary and text modes over HTTP/1.1 (keep-alive, TLS with ALPN http/1.1) and HTTP/2, trailers in the body,
 * trailers-only answers in the headers, server streaming, CORS preflight and headers, APISIX's refusals (405, 400),
 * prefix routes, plugins and deadlines applying to grpc-web calls, and every other HTTP/1.1 request still
 * refused with the readable 505. The upstream is a real grpc-js greeter, plus a grpc-js server of the test's that
 * fails with a unicode grpc-message and binary metadata.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Metadata, Server, ServerCredentials, status as GrpcCode, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { DELAY_HEADER, SERVER_STREAM_REPLIES } from '../../examples/greeter-service.ts';
import { startGreeterNode, STATUS_HEADER, type GreeterNode } from '../helpers/greeter.ts';
import { frame, helloMessage, helloText, http1Request, http2Request, parseWebBody } from '../helpers/grpc-web-raw.ts';
import { encodeFrame, literalWithoutIndexing } from '../faults/raw-frames.ts';
import { putRouteAndWait, startGateway, type GatewayFixture } from './gateway-fixture.ts';

const SAY_HELLO = '/helloworld.Greeter/SayHello';
const STREAM = '/helloworld.Greeter/SayHelloServerStream';
const BINARY = 'application/grpc-web+proto';
const TEXT = 'application/grpc-web-text';
const UNICODE_MESSAGE = 'déjà vu — 失败 ✓';
const BINARY_VALUE = Buffer.from([0, 1, 2, 254, 255]);

/**
 * A raw HTTP/2 upstream (no library between the test and the bytes) that answers every call with fields HTTP/2
 * carries but HTTP/1.1 cannot (a DEL and a control character in values, a name that is no HTTP/1.1 token), in the
 * response headers and the trailers, around one HelloReply "raw".
 */
async function startOddHeadersNode(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = Buffer.alloc(0);
    let prefaceSeen = false;
    socket.write(encodeFrame(4, 0, 0, Buffer.alloc(0)));
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (!prefaceSeen) {
        if (buffered.length < 24) return;
        buffered = buffered.subarray(24);
        prefaceSeen = true;
      }
      while (buffered.length >= 9) {
        const length = buffered.readUIntBE(0, 3);
        if (buffered.length < 9 + length) return;
        const type = buffered[3];
        const flags = buffered[4] ?? 0;
        const id = buffered.readUInt32BE(5) & 0x7fffffff;
        buffered = buffered.subarray(9 + length);
        if (type === 4 && (flags & 1) === 0) socket.write(encodeFrame(4, 1, 0, Buffer.alloc(0)));
        if (type === 1 && (flags & 1) === 1) answerOdd(socket, id);
        if (type === 0 && (flags & 1) === 1) answerOdd(socket, id);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : 0,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function answerOdd(socket: Socket, id: number): void {
  const headers = Buffer.concat([
    literalWithoutIndexing(':status', '200'),
    literalWithoutIndexing('content-type', 'application/grpc'),
    literalWithoutIndexing('x-del', 'a\x7fb'),
    literalWithoutIndexing('x-ctl', 'a\x01b'),
    literalWithoutIndexing('x-(odd)', 'v'),
    literalWithoutIndexing('x-fine', 'ok'),
  ]);
  const trailers = Buffer.concat([literalWithoutIndexing('grpc-status', '0'), literalWithoutIndexing('x-trailer-del', '\x7f')]);
  socket.write(Buffer.concat([encodeFrame(1, 4, id, headers), encodeFrame(0, 0, id, frame(helloMessage('raw'))), encodeFrame(1, 5, id, trailers)]));
}

/** A grpc-js server whose SayHello fails with a unicode message and a binary trailer. */
async function startFailingNode(): Promise<{ port: number; close(): Promise<void> }> {
  const server = new Server();
  server.addService(
    {
      SayHello: {
        path: SAY_HELLO,
        requestStream: false,
        responseStream: false,
        requestSerialize: (v: Buffer) => v,
        requestDeserialize: (v: Buffer) => v,
        responseSerialize: (v: Buffer) => v,
        responseDeserialize: (v: Buffer) => v,
      },
    },
    {
      SayHello: (_call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        const metadata = new Metadata();
        metadata.set('x-detail-bin', BINARY_VALUE);
        callback({ code: GrpcCode.FAILED_PRECONDITION, details: UNICODE_MESSAGE, metadata });
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err === null ? resolve(p) : reject(err))));
  return { port, close: () => new Promise((resolve) => server.tryShutdown(() => resolve())) };
}

describe('grpc-web', () => {
  let gw: GatewayFixture;
  let node: GreeterNode;
  let failing: { port: number; close(): Promise<void> };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  before(async () => {
    gw = await startGateway();
    node = await startGreeterNode({ id: 'web-node' });
    failing = await startFailingNode();
    const upstream = { nodes: { [`127.0.0.1:${String(node.port)}`]: 1 } };
    await putRouteAndWait(gw, 'web', { uri: '/helloworld.Greeter/*', upstream, plugins: { 'grpc-web': {} } });
    await putRouteAndWait(gw, 'web-prefix', { uri: '/grpc/web/*', upstream, plugins: { 'grpc-web': {} } });
    await putRouteAndWait(gw, 'failing', { uri: '/fail/*', upstream: { nodes: { [`127.0.0.1:${String(failing.port)}`]: 1 } }, plugins: { 'grpc-web': {} } });
    await putRouteAndWait(gw, 'plain', { uri: '/plain.Service/*', upstream });
  });

  after(async () => {
    agent.destroy();
    await failing.close();
    await node.close();
    await gw.close();
  });

  test('binary unary over HTTP/1.1: the reply, then the trailers frame in the body, CORS headers, on one keep-alive connection', async () => {
    for (const name of ['one', 'two']) {
      const answer = await http1Request(gw.h2cAddress, { path: SAY_HELLO, headers: { 'content-type': BINARY, 'x-grpc-web': '1' }, body: frame(helloMessage(name)), agent });
      assert.equal(answer.status, 200);
      assert.equal(answer.headers['content-type'], BINARY);
      assert.equal(answer.headers['access-control-allow-origin'], '*');
      assert.match(String(answer.headers['access-control-expose-headers']), /grpc-status,grpc-message/);
      const body = parseWebBody(answer.body);
      assert.deepEqual(body.messages.map(helloText), [`Hello ${name}`]);
      assert.equal(body.trailers?.['grpc-status'], '0');
      assert.equal(body.trailing, 0);
    }
    assert.equal(Object.values(agent.sockets).flat().length + Object.values(agent.freeSockets).flat().length, 1, 'one connection served both');
  });

  test('text mode over HTTP/1.1: a request body in several chunks padded mid-stream is decoded, the answer is base64', async () => {
    const request = frame(helloMessage('texty'));
    // Padded pieces: base64 of 1, 2, then the rest of the bytes, each with its own padding.
    const pieces = [request.subarray(0, 1), request.subarray(1, 3), request.subarray(3)].map((part) => Buffer.from(part.toString('base64')));
    // And split the text itself across writes at odd places.
    const text = Buffer.concat(pieces);
    const chunks = [text.subarray(0, 3), text.subarray(3, 9), text.subarray(9)];
    const answer = await http1Request(gw.h2cAddress, { path: SAY_HELLO, headers: { 'content-type': TEXT, accept: TEXT }, body: chunks });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-type'], TEXT);
    const body = parseWebBody(decodePaddedBase64(answer.body.toString('latin1')));
    assert.deepEqual(body.messages.map(helloText), ['Hello texty']);
    assert.equal(body.trailers?.['grpc-status'], '0');
  });

  test('a text body that is not base64 is answered INTERNAL, and the upstream never sees the call', async () => {
    const before = node.counts.SayHello;
    const answer = await http1Request(gw.h2cAddress, { path: SAY_HELLO, headers: { 'content-type': TEXT }, body: Buffer.from('AAAA!!!!') });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['grpc-status'], String(GrpcCode.INTERNAL));
    assert.match(decodeURIComponent(String(answer.headers['grpc-message'])), /not base64/);
    assert.equal(node.counts.SayHello, before);
  });

  test('server streaming over HTTP/1.1: every reply in order, then the trailers frame', async () => {
    const answer = await http1Request(gw.h2cAddress, { path: STREAM, headers: { 'content-type': BINARY }, body: frame(helloMessage('stream')) });
    const body = parseWebBody(answer.body);
    assert.equal(body.messages.length, SERVER_STREAM_REPLIES);
    for (const message of body.messages) assert.equal(helloText(message), 'Hello stream');
    assert.equal(body.trailers?.['grpc-status'], '0');
  });

  test("an upstream's trailers-only error stays in the headers, with an empty body and the status exposed to scripts", async () => {
    const answer = await http1Request(gw.h2cAddress, { path: SAY_HELLO, headers: { 'content-type': BINARY, [STATUS_HEADER]: String(GrpcCode.NOT_FOUND) }, body: frame(helloMessage('x')) });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['grpc-status'], String(GrpcCode.NOT_FOUND));
    assert.equal(answer.body.length, 0);
    assert.match(String(answer.headers['access-control-expose-headers']), /grpc-status/);
  });

  test('a unicode grpc-message and binary metadata reach the body trailers exactly as the upstream sent them', async () => {
    const answer = await http1Request(gw.h2cAddress, { path: '/fail/helloworld.Greeter/SayHello', headers: { 'content-type': BINARY }, body: frame(helloMessage('x')) });
    // grpc-js answers a failure without messages trailers-only: the fields are headers.
    assert.equal(answer.headers['grpc-status'], String(GrpcCode.FAILED_PRECONDITION));
    assert.equal(decodeURIComponent(String(answer.headers['grpc-message'])), UNICODE_MESSAGE);
    assert.deepEqual(Buffer.from(String(answer.headers['x-detail-bin']), 'base64'), BINARY_VALUE);
    assert.match(String(answer.headers['access-control-expose-headers']), /x-detail-bin/);
  });

  test('over HTTP/2 (h2c), binary and text modes work the same', async () => {
    const binary = await http2Request(gw.h2cAddress, { path: SAY_HELLO, headers: { 'content-type': BINARY }, body: frame(helloMessage('h2')) });
    assert.equal(binary.headers['content-type'], BINARY);
    assert.deepEqual(parseWebBody(binary.body).messages.map(helloText), ['Hello h2']);
    assert.equal(parseWebBody(binary.body).trailers?.['grpc-status'], '0');
    const text = await http2Request(gw.h2cAddress, { path: SAY_HELLO, headers: { 'content-type': TEXT }, body: Buffer.from(frame(helloMessage('h2text')).toString('base64')) });
    const body = parseWebBody(decodePaddedBase64(text.body.toString('latin1')));
    assert.deepEqual(body.messages.map(helloText), ['Hello h2text']);
    assert.equal(body.trailers?.['grpc-status'], '0');
  });

  test('over TLS with ALPN http/1.1', async () => {
    const answer = await http1Request(gw.tlsAddress, { path: SAY_HELLO, headers: { 'content-type': BINARY }, body: frame(helloMessage('tls')), tls: { ca: gw.defaultCert.cert } });
    assert.deepEqual(parseWebBody(answer.body).messages.map(helloText), ['Hello tls']);
  });

  test("a prefix route's prefix is stripped: the upstream is asked for what the * matched", async () => {
    const answer = await http1Request(gw.h2cAddress, { path: `/grpc/web${SAY_HELLO}`, headers: { 'content-type': BINARY }, body: frame(helloMessage('prefixed')) });
    assert.deepEqual(parseWebBody(answer.body).messages.map(helloText), ['Hello prefixed']);
    assert.equal(node.lastCall?.path, SAY_HELLO);
  });

  test("CORS preflight: 204 with the methods and the plugin's allowed headers; other methods 405, other content types 400", async () => {
    const preflight = await http1Request(gw.h2cAddress, { method: 'OPTIONS', path: SAY_HELLO, headers: { origin: 'http://page.test', 'access-control-request-method': 'POST' } });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], '*');
    assert.equal(preflight.headers['access-control-allow-methods'], 'POST');
    assert.match(String(preflight.headers['access-control-allow-headers']), /x-grpc-web/);
    const get = await http1Request(gw.h2cAddress, { method: 'GET', path: SAY_HELLO });
    assert.equal(get.status, 405);
    const json = await http1Request(gw.h2cAddress, { path: SAY_HELLO, headers: { 'content-type': 'application/json' }, body: Buffer.from('{}') });
    assert.equal(json.status, 400);
  });

  test('plugins apply to grpc-web calls (key-auth and limit-count refuse trailers-only) and grpc-timeout is enforced', async () => {
    await putRouteAndWait(gw, 'web-auth', { uri: '/auth/*', upstream: { nodes: { [`127.0.0.1:${String(node.port)}`]: 1 } }, plugins: { 'grpc-web': {}, 'key-auth': {} } });
    const refused = await http1Request(gw.h2cAddress, { path: `/auth${SAY_HELLO}`, headers: { 'content-type': BINARY }, body: frame(helloMessage('x')) });
    assert.equal(refused.headers['grpc-status'], String(GrpcCode.UNAUTHENTICATED));
    assert.equal(refused.headers['access-control-allow-origin'], '*');
    const late = await http1Request(gw.h2cAddress, { path: SAY_HELLO, headers: { 'content-type': BINARY, 'grpc-timeout': '100m', [DELAY_HEADER]: '5000' }, body: frame(helloMessage('x')) });
    assert.equal(late.headers['grpc-status'], String(GrpcCode.DEADLINE_EXCEEDED));
    await putRouteAndWait(gw, 'web-limited', { uri: '/limited/*', upstream: { nodes: { [`127.0.0.1:${String(node.port)}`]: 1 } }, plugins: { 'grpc-web': {}, 'limit-count': { count: 1, time_window: 60, key_type: 'constant', key: 'all' } } });
    const first = await http1Request(gw.h2cAddress, { path: `/limited${SAY_HELLO}`, headers: { 'content-type': BINARY }, body: frame(helloMessage('once')) });
    assert.equal(parseWebBody(first.body).trailers?.['grpc-status'], '0');
    const second = await http1Request(gw.h2cAddress, { path: `/limited${SAY_HELLO}`, headers: { 'content-type': BINARY }, body: frame(helloMessage('twice')) });
    assert.equal(second.headers['grpc-status'], String(GrpcCode.RESOURCE_EXHAUSTED), 'limit-count refuses trailers-only');
  });

  test("with the cors plugin its answers win: a listed origin is echoed (vary: Origin), another gets no CORS fields; its preflight is 200", async () => {
    const cors = { allow_origins: 'http://app.test,http://other.test', allow_methods: 'POST', allow_headers: '**', expose_headers: 'x-served-by', max_age: 60, allow_credential: true };
    await putRouteAndWait(gw, 'web-cors', { uri: '/cors/*', upstream: { nodes: { [`127.0.0.1:${String(node.port)}`]: 1 } }, plugins: { 'grpc-web': {}, cors } });
    const allowed = await http1Request(gw.h2cAddress, { path: `/cors${SAY_HELLO}`, headers: { 'content-type': BINARY, origin: 'http://app.test' }, body: frame(helloMessage('cors')) });
    assert.deepEqual(parseWebBody(allowed.body).messages.map(helloText), ['Hello cors']);
    assert.equal(allowed.headers['access-control-allow-origin'], 'http://app.test');
    assert.equal(allowed.headers['access-control-allow-credentials'], 'true');
    assert.equal(allowed.headers.vary, 'Origin');
    assert.match(String(allowed.headers['access-control-expose-headers']), /^x-served-by,grpc-status,grpc-message/);
    const stranger = await http1Request(gw.h2cAddress, { path: `/cors${SAY_HELLO}`, headers: { 'content-type': BINARY, origin: 'http://evil.test' }, body: frame(helloMessage('cors')) });
    assert.equal(stranger.headers['access-control-allow-origin'], undefined, 'an origin not listed gets no CORS fields');
    const preflight = await http1Request(gw.h2cAddress, { method: 'OPTIONS', path: `/cors${SAY_HELLO}`, headers: { origin: 'http://other.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-custom,content-type' } });
    assert.equal(preflight.status, 200);
    assert.equal(preflight.headers['access-control-allow-origin'], 'http://other.test');
    assert.equal(preflight.headers['access-control-allow-methods'], 'POST');
    assert.equal(preflight.headers['access-control-allow-headers'], 'x-custom,content-type', '** echoes what the preflight asks');
    assert.equal(preflight.headers['access-control-max-age'], '60');
    const refused = await gw.admin('PUT', '/routes/web-cors-bad', { uri: '/bad/*', upstream: { nodes: { '127.0.0.1:1': 1 } }, plugins: { cors: { allow_credential: true } } });
    assert.equal(refused.status, 400, "allow_credential with the default '*' is refused");
  });

  test('a grpcs upstream: grpc-web and JSON transcoding reach a TLS node', async () => {
    const tlsNode = await startGreeterNode({ tls: true, id: 'tls-node' });
    try {
      const upstream = { scheme: 'grpcs', nodes: { [`127.0.0.1:${String(tlsNode.port)}`]: 1 } };
      await putRouteAndWait(gw, 'web-grpcs', { uri: '/secure/*', upstream, plugins: { 'grpc-web': {} } });
      const web = await http1Request(gw.h2cAddress, { path: `/secure${SAY_HELLO}`, headers: { 'content-type': BINARY }, body: frame(helloMessage('over tls')) });
      assert.deepEqual(parseWebBody(web.body).messages.map(helloText), ['Hello over tls']);
      const proto = 'syntax = "proto3";\npackage helloworld;\nservice Greeter { rpc SayHello (HelloRequest) returns (HelloReply) {} }\nmessage HelloRequest { string name = 1; }\nmessage HelloReply { string message = 1; }\n';
      assert.equal((await gw.admin('PUT', '/protos/hello', { content: proto })).status, 201);
      await putRouteAndWait(gw, 'json-grpcs', { uri: '/secure-json', upstream, plugins: { 'grpc-transcode': { proto_id: 'hello', service: 'helloworld.Greeter', method: 'SayHello' } } });
      const json = await http1Request(gw.h2cAddress, { method: 'GET', path: '/secure-json?name=tls' });
      assert.equal(json.status, 200, json.body.toString());
      assert.deepEqual(JSON.parse(json.body.toString()), { message: 'Hello tls' });
      assert.ok(tlsNode.handshakes > 0, 'the node was reached over TLS');
    } finally {
      await tlsNode.close();
    }
  });

  test("an upstream's fields that HTTP/1.1 cannot carry are left out of the answer, never crash the worker (grpc-web and transcoding)", async () => {
    const odd = await startOddHeadersNode();
    try {
      const upstream = { nodes: { [`127.0.0.1:${String(odd.port)}`]: 1 } };
      await putRouteAndWait(gw, 'web-odd', { uri: '/odd/*', upstream, plugins: { 'grpc-web': {} } });
      const web = await http1Request(gw.h2cAddress, { path: `/odd${SAY_HELLO}`, headers: { 'content-type': BINARY }, body: frame(helloMessage('x')) });
      assert.equal(web.status, 200);
      assert.equal(web.headers['x-fine'], 'ok');
      for (const name of ['x-del', 'x-ctl', 'x-(odd)']) assert.equal(web.headers[name], undefined, name);
      assert.deepEqual(parseWebBody(web.body).messages.map(helloText), ['raw']);
      const proto = 'syntax = "proto3";\npackage helloworld;\nservice Greeter { rpc SayHello (HelloRequest) returns (HelloReply) {} }\nmessage HelloRequest { string name = 1; }\nmessage HelloReply { string message = 1; }\n';
      const put = await gw.admin('PUT', '/protos/hello', { content: proto });
      assert.ok(put.status === 200 || put.status === 201);
      await putRouteAndWait(gw, 'json-odd', { uri: '/odd-json', upstream, plugins: { 'grpc-transcode': { proto_id: 'hello', service: 'helloworld.Greeter', method: 'SayHello' } } });
      const json = await http1Request(gw.h2cAddress, { method: 'GET', path: '/odd-json?name=x' });
      assert.equal(json.status, 200);
      assert.deepEqual(JSON.parse(json.body.toString()), { message: 'raw' });
      assert.equal(json.headers['x-trailer-del'], undefined);
      // The worker is alive and serving.
      const after = await http1Request(gw.h2cAddress, { path: SAY_HELLO, headers: { 'content-type': BINARY }, body: frame(helloMessage('still here')) });
      assert.deepEqual(parseWebBody(after.body).messages.map(helloText), ['Hello still here']);
    } finally {
      await odd.close();
    }
  });

  test('HTTP/1.1 to a route without grpc-web (or to no route) is still the readable 505, and the connection closes', async () => {
    for (const path of ['/plain.Service/Method', '/nothing/here']) {
      const answer = await http1Request(gw.h2cAddress, { path, headers: { 'content-type': 'application/grpc' }, body: Buffer.alloc(0) });
      assert.equal(answer.status, 505);
      assert.match(answer.body.toString(), /serves gRPC over HTTP\/2/);
      assert.equal(answer.headers.connection, 'close');
    }
  });
});

/** Concatenated padded base64 chunks, decoded chunk by chunk (Node's decoder stops at the first padding). */
function decodePaddedBase64(text: string): Buffer {
  const parts: Buffer[] = [];
  let from = 0;
  for (let i = 0; i < text.length; i += 4) {
    if (text[i + 3] === '=' || i + 4 >= text.length) {
      parts.push(Buffer.from(text.slice(from, i + 4), 'base64'));
      from = i + 4;
    }
  }
  return Buffer.concat(parts);
}
