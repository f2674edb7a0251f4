/**
 * Issue #17: the official grpc-web client runtime (npm `grpc-web`, in Debian's Chromium, headless) calls a real
 * grpc-js greeter through the gateway's `grpc-web` route, from a page on another origin (so every call is a CORS
 * request, with preflights for custom metadata): over HTTP/1.1 on the h2c port and over HTTP/2 on the TLS port,
 * in both wire formats (binary and text). Unary calls, server streams, a trailers-only error, a unicode
 * grpc-message in the body trailers after a message, custom metadata both ways and a deadline. The results are what
 * the runtime's own API reported (test/helpers/browser.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Metadata, Server, ServerCredentials, status as GrpcCode, type ServerWritableStream } from '@grpc/grpc-js';
import { SERVER_STREAM_REPLIES } from '../../examples/greeter-service.ts';
import { runInBrowser } from '../helpers/browser.ts';
import { startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { putRouteAndWait, startGateway, type GatewayFixture } from './gateway-fixture.ts';

const RUN_LIMIT_MS = 30_000;
const UNICODE_MESSAGE = 'brûlé — 焦げた ✓';
/** What a preflight must allow: the runtime's own headers, a deadline, and the metadata this page sends. */
const ALLOW_HEADERS = 'content-type,x-grpc-web,x-user-agent,grpc-timeout,x-greeter-status,x-greeter-delay-ms,x-note';

interface BurningNode {
  port: number;
  close(): Promise<void>;
}

/** A grpc-js server whose server stream sends one reply, then fails with a unicode message and metadata. */
async function startBurningNode(): Promise<BurningNode> {
  const raw = { requestSerialize: (v: Buffer) => v, requestDeserialize: (v: Buffer) => v, responseSerialize: (v: Buffer) => v, responseDeserialize: (v: Buffer) => v };
  const server = new Server();
  server.addService(
    { SayHelloServerStream: { path: '/helloworld.Greeter/SayHelloServerStream', requestStream: false, responseStream: true, ...raw } },
    {
      SayHelloServerStream: (call: ServerWritableStream<Buffer, Buffer>) => {
        call.write(Buffer.from([0x0a, 5, ...Buffer.from('first')]));
        const metadata = new Metadata();
        metadata.set('x-why', 'oven');
        call.emit('error', { code: GrpcCode.DATA_LOSS, details: UNICODE_MESSAGE, metadata });
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err === null ? resolve(p) : reject(err))));
  return { port, close: () => new Promise((resolve) => server.tryShutdown(() => resolve())) };
}

/** The page's script: every call in both formats against `host`; what the runtime reported, by name. */
function script(host: string): string {
  return `
    const host = ${JSON.stringify(host)};
    const out = {};
    for (const format of ['binary', 'text']) {
      out[format + ':unary'] = await unary(host, '/helloworld.Greeter/SayHello', { name: 'browser' }, { 'x-note': 'hi' }, format);
      out[format + ':stream'] = await serverStream(host, '/helloworld.Greeter/SayHelloServerStream', { name: 'streamer' }, {}, format);
      out[format + ':notFound'] = await unary(host, '/helloworld.Greeter/SayHello', { name: 'x' }, { 'x-greeter-status': '5' }, format);
      out[format + ':late'] = await unary(host, '/helloworld.Greeter/SayHello', { name: 'x' }, { 'x-greeter-delay-ms': '5000', deadline: String(Date.now() + 200) }, format);
      out[format + ':burnt'] = await serverStream(host + '/burn', '/helloworld.Greeter/SayHelloServerStream', { name: 'x' }, {}, format);
    }
    return out;
  `;
}

type Results = Record<string, unknown>;

function check(results: Results, format: 'binary' | 'text'): void {
  const at = (name: string): Record<string, unknown> => results[`${format}:${name}`] as Record<string, unknown>;
  assert.deepEqual(at('unary'), { message: 'Hello browser' }, `${format} unary`);
  const stream = results[`${format}:stream`] as Record<string, unknown>[];
  const data = stream.filter((e) => e['type'] === 'data').map((e) => e['message']);
  assert.deepEqual(data, Array.from({ length: SERVER_STREAM_REPLIES }, () => 'Hello streamer'), `${format} stream`);
  assert.equal(stream.find((e) => e['type'] === 'status')?.['code'], GrpcCode.OK, `${format} stream status`);
  assert.equal(stream.at(-1)?.['type'], 'end');
  assert.equal(at('notFound')['code'], GrpcCode.NOT_FOUND, `${format} trailers-only error`);
  assert.equal(at('late')['code'], GrpcCode.DEADLINE_EXCEEDED, `${format} deadline`);
  const burnt = results[`${format}:burnt`] as Record<string, unknown>[];
  assert.deepEqual(burnt.filter((e) => e['type'] === 'data').map((e) => e['message']), ['first'], `${format}: the reply before the error`);
  const error = burnt.find((e) => e['type'] === 'error');
  assert.ok(error, `${format}: an error after the message`);
  assert.equal(error['code'], GrpcCode.DATA_LOSS, `${format} error after a message`);
  assert.equal(error['message'], UNICODE_MESSAGE, `${format}: the unicode grpc-message, percent-decoded by the runtime`);
  assert.equal((error['metadata'] as Record<string, string> | undefined)?.['x-why'], 'oven', `${format}: trailer metadata`);
}

describe('grpc-web in a real browser (official runtime, headless Chromium)', () => {
  let gw: GatewayFixture;
  let node: GreeterNode;
  let burning: BurningNode;

  before(async () => {
    gw = await startGateway();
    node = await startGreeterNode({ id: 'browser-node' });
    burning = await startBurningNode();
    const web = { 'grpc-web': { cors_allow_headers: ALLOW_HEADERS } };
    await putRouteAndWait(gw, 'greeter', { uri: '/helloworld.Greeter/*', methods: ['POST', 'OPTIONS'], upstream: { nodes: { [`127.0.0.1:${String(node.port)}`]: 1 } }, plugins: web });
    await putRouteAndWait(gw, 'burn', { uri: '/burn/*', upstream: { nodes: { [`127.0.0.1:${String(burning.port)}`]: 1 } }, plugins: web });
  });

  after(async () => {
    await burning.close();
    await node.close();
    await gw.close();
  });

  test('over HTTP/1.1 (the h2c port): unary, server stream, errors, metadata and deadlines in both formats', async () => {
    const results = (await runInBrowser(script(`http://${gw.h2cAddress}`), { timeoutMs: RUN_LIMIT_MS })) as Results;
    check(results, 'binary');
    check(results, 'text');
  });

  test('over HTTP/2 (the TLS port, ALPN h2)', async () => {
    const results = (await runInBrowser(script(`https://${gw.tlsAddress}`), { timeoutMs: RUN_LIMIT_MS, flags: ['--ignore-certificate-errors'] })) as Results;
    check(results, 'binary');
    check(results, 'text');
  });
});
