/**
 * Proof that test/helpers/browser.ts runs the official grpc-web runtime end to end in headless Chromium, before the
 * gateway speaks grpc-web: a minimal grpc-web server written here (node:http, another origin than the page, so every
 * call is a CORS request) answers the runtime in both wire formats, binary (`application/grpc-web+proto`) and text
 * (`application/grpc-web-text`, base64 both ways). Framing per gRPC's PROTOCOL-WEB.md: each message is a 5-byte
 * prefix (flag 0x00, 4-byte big-endian length) and its bytes; the trailers are the last frame, flag 0x80, as HTTP/1
 * header lines. The harness's own failure paths (a throwing script, a hung one) must leave no browser behind.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runInBrowser } from '../helpers/browser.ts';

const RUN_LIMIT_MS = 20_000;
const DATA_FRAME = 0x00;
/** The MSB of the flag byte marks the trailer frame (PROTOCOL-WEB.md, "Message framing"). */
const TRAILER_FRAME = 0x80;
/** Between the stream's messages, so that text mode sees them arrive in separate chunks. */
const STREAM_GAP_MS = 50;
const GREETER = '/helloworld.Greeter';

/** The request headers the runtime sends (grpc-timeout only with a `deadline`), plus this file's custom metadata. */
const ALLOWED_HEADERS = 'content-type,x-grpc-web,x-user-agent,grpc-timeout,x-greeting';
const CORS = { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'grpc-status,grpc-message' };

interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
}

interface GrpcWebServer {
  /** `http://127.0.0.1:<port>`, what the runtime takes as the host part of a method's URL. */
  readonly host: string;
  readonly requests: SeenRequest[];
  close(): Promise<void>;
}

/** `string name = 1` / `string message = 1`: tag 0x0a, a varint length, the UTF-8 bytes. */
function encodeStringField1(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  const length: number[] = [];
  let n = bytes.length;
  while (n >= 0x80) {
    length.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  length.push(n);
  return Buffer.concat([Buffer.from([0x0a, ...length]), bytes]);
}

/** The name in a HelloRequest this file's browser sent: field 1 only, its length below 128 bytes. */
function decodeName(message: Buffer): string {
  if (message.length === 0) return '';
  assert.equal(message[0], 0x0a, 'a HelloRequest starts with the tag of field 1');
  return message.subarray(2, 2 + (message[1] ?? 0)).toString('utf8');
}

function frame(flag: number, payload: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = flag;
  prefix.writeUInt32BE(payload.length, 1);
  return Buffer.concat([prefix, payload]);
}

function trailerFrame(status: number, message: string): Buffer {
  return frame(TRAILER_FRAME, Buffer.from(`grpc-status:${status}\r\ngrpc-message:${message}\r\n`));
}

async function startGrpcWebServer(): Promise<GrpcWebServer> {
  const requests: SeenRequest[] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { ...CORS, 'access-control-allow-methods': 'POST', 'access-control-allow-headers': ALLOWED_HEADERS }).end();
      return;
    }
    void answer(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the grpc-web server has no TCP address');
  return {
    host: `http://127.0.0.1:${address.port}`,
    requests,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** One call: the request's format decides the answer's; each frame is written (and, in text mode, encoded) alone. */
async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer); // an IncomingMessage without setEncoding() yields Buffers
  const text = (req.headers['content-type'] ?? '').startsWith('application/grpc-web-text');
  const body = Buffer.concat(chunks);
  const request = text ? Buffer.from(body.toString('ascii'), 'base64') : body;
  const name = decodeName(request.subarray(5));
  const contentType = text ? 'application/grpc-web-text' : 'application/grpc-web+proto';
  // Base64 per frame puts padding inside the body: the runtime decodes in 4-character groups, so that is fine.
  const send = (bytes: Buffer): boolean => res.write(text ? bytes.toString('base64') : bytes);
  switch (req.url) {
    case `${GREETER}/SayHello`:
      res.writeHead(200, { ...CORS, 'content-type': contentType });
      send(frame(DATA_FRAME, encodeStringField1(`Hello ${name}`)));
      send(trailerFrame(0, ''));
      break;
    case `${GREETER}/SayHelloNotFound`:
      res.writeHead(200, { ...CORS, 'content-type': contentType });
      send(trailerFrame(5, `no greeting for ${name}`));
      break;
    case `${GREETER}/SayHelloTrailersOnly`:
      // A trailers-only answer: the status in the HTTP headers, no body at all.
      res.writeHead(200, { ...CORS, 'content-type': contentType, 'grpc-status': '5', 'grpc-message': `no greeting for ${name}` });
      break;
    case `${GREETER}/SayHelloStream`:
      res.writeHead(200, { ...CORS, 'content-type': contentType });
      for (let i = 1; i <= 3; i++) {
        send(frame(DATA_FRAME, encodeStringField1(`Hello ${name} #${i}`)));
        await sleep(STREAM_GAP_MS);
      }
      send(trailerFrame(0, ''));
      break;
    default:
      res.writeHead(200, { ...CORS, 'content-type': contentType });
      send(trailerFrame(12, `unknown method ${req.url ?? ''}`));
  }
  res.end();
}

/** Processes whose command line names `dir`: the harness's browsers put their profile there. */
function processesNaming(dir: string): string {
  return spawnSync('pgrep', ['-af', dir], { encoding: 'utf8' }).stdout.trim();
}

describe('the browser harness runs the grpc-web runtime against a grpc-web server', () => {
  let server: GrpcWebServer | undefined;
  let scratch = '';

  before(async () => {
    server = await startGrpcWebServer();
    scratch = await mkdtemp(join(tmpdir(), 'gw-browser-harness-'));
  });

  after(async () => {
    await server?.close();
    if (scratch !== '') await rm(scratch, { recursive: true, force: true });
  });

  const run = (script: string): Promise<unknown> => runInBrowser(script, { timeoutMs: RUN_LIMIT_MS, tmpDir: scratch });
  const hostOf = (): string => {
    assert.ok(server, 'the grpc-web server is running');
    return JSON.stringify(server.host);
  };

  test('in both formats, a unary call, a grpc-status 5 trailer and a server stream of three messages (one browser run)', async () => {
    const results = (await run(`
      const out = {};
      for (const format of ['binary', 'text']) {
        out[format] = {
          unary: await unary(${hostOf()}, '${GREETER}/SayHello', { name: 'web' }, {}, format),
          notFound: await unary(${hostOf()}, '${GREETER}/SayHelloNotFound', { name: 'web' }, {}, format),
          stream: await serverStream(${hostOf()}, '${GREETER}/SayHelloStream', { name: 'web' }, {}, format),
        };
      }
      return out;
    `)) as Record<string, { unary: unknown; notFound: unknown; stream: { type: string }[] }>;
    for (const format of ['binary', 'text']) {
      const result = results[format];
      assert.ok(result, format);
      assert.deepEqual(result.unary, { message: 'Hello web' }, format);
      assert.deepEqual(result.notFound, { code: 5, message: 'no greeting for web', metadata: {} }, format);
      assert.deepEqual(result.stream.map((event) => event.type), ['data', 'data', 'data', 'status', 'metadata', 'end'], format);
      assert.deepEqual(result.stream.slice(0, 4), [
        { type: 'data', message: 'Hello web #1' },
        { type: 'data', message: 'Hello web #2' },
        { type: 'data', message: 'Hello web #3' },
        { type: 'status', code: 0, details: '', metadata: {} },
      ], format);
    }
  });

  test('a trailers-only answer (grpc-status in the exposed HTTP headers) arrives as an RpcError', async () => {
    const result = await run(`return unary(${hostOf()}, '${GREETER}/SayHelloTrailersOnly', { name: 'web' }, {}, 'binary');`);
    assert.ok(typeof result === 'object' && result !== null && 'code' in result && 'message' in result, 'an RpcError');
    assert.equal(result.code, 5);
    assert.equal(result.message, 'no greeting for web');
  });

  test('custom metadata reaches the server as a header, after a CORS preflight that asks for it', async () => {
    assert.ok(server, 'the grpc-web server is running');
    const before = server.requests.length;
    const result = await run(`return unary(${hostOf()}, '${GREETER}/SayHello', { name: 'web' }, { 'x-greeting': 'hi' }, 'text');`);
    assert.deepEqual(result, { message: 'Hello web' });
    const seen = server.requests.slice(before);
    assert.deepEqual(seen.map((r) => r.method), ['OPTIONS', 'POST']);
    const [preflight, call] = seen;
    assert.ok(preflight && call, 'a preflight, then the call');
    assert.match(String(preflight.headers['access-control-request-headers']), /x-greeting/);
    assert.equal(call.headers['x-greeting'], 'hi');
    assert.equal(call.headers['x-grpc-web'], '1');
    assert.equal(call.headers['content-type'], 'application/grpc-web-text');
  });

  test('a script that throws rejects runInBrowser with its error and leaves no browser behind', async () => {
    await assert.rejects(run(`throw new Error('the script failed on purpose');`), /the script failed on purpose/);
    assert.equal(processesNaming(scratch), '');
    assert.deepEqual(await readdir(scratch), []);
  });

  test('a script that never reports rejects on timeout and leaves no browser behind', async () => {
    const hung = runInBrowser(`console.log('waiting forever'); await new Promise(() => {});`, { timeoutMs: 3000, tmpDir: scratch });
    await assert.rejects(hung, /no result from the page within 3000 ms[\s\S]*waiting forever/);
    assert.equal(processesNaming(scratch), '');
    assert.deepEqual(await readdir(scratch), []);
  });
});
