/**
 * Clients that do not speak gRPC over HTTP/2 at all must get a prompt, clear refusal, never a connection left
 * hanging (seen behind other proxies as "gRPC doesn't work at all": h2c/ALPN confusion; apache/apisix#1209, a plaintext
 * port that was not HTTP/2). And a request that is HTTP/2 but not gRPC (`content-type: text/plain`) gets a clear
 * error: HTTP 415 as grpc-go and grpc-js servers answer, or a gRPC status.
 */
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { describe, test } from 'node:test';
import { GrpcStatus } from '../../shared/grpc-status.ts';
import {
  ALL_LEGS,
  answerOk,
  DEFAULT_LIMIT_MS,
  describeResult,
  finish,
  legName,
  startRawCall,
  TEST_TIMEOUT_MS,
  useBench,
  within,
} from './fault-kit.ts';

const HTTP1_REQUEST =
  'POST /helloworld.Greeter/SayHello HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/grpc\r\nContent-Length: 0\r\n\r\n';

interface ConnectionEnd {
  /** Bytes the server sent before closing. */
  received: Buffer;
  /** TLS handshake or socket error, if the connection ended with one. */
  error: Error | undefined;
  /** The TLS handshake completed (only for TLS), and with which ALPN protocol. */
  alpn: string | false | undefined;
}

/** Types of the HTTP/2 frames in `bytes` (RFC 9113 §4.1: 24-bit length, 8-bit type, …). */
function frameTypes(bytes: Buffer): number[] {
  const types: number[] = [];
  for (let offset = 0; offset + 9 <= bytes.length; offset += 9 + bytes.readUIntBE(offset, 3)) types.push(bytes.readUInt8(offset + 3));
  return types;
}

/** A human-readable account of what the server sent: an HTTP/1.x status line, HTTP/2 frame types, or nothing. */
function describeBytes(bytes: Buffer): string {
  if (bytes.length === 0) return 'nothing';
  const text = bytes.toString('latin1');
  if (text.startsWith('HTTP/')) return `HTTP/1 response "${text.split('\r\n')[0] ?? ''}"`;
  return `HTTP/2 frames of types [${frameTypes(bytes).join(', ')}] (4 SETTINGS, 7 GOAWAY)`;
}

describe('clients that do not speak gRPC over HTTP/2', { timeout: TEST_TIMEOUT_MS * 12 }, () => {
  const bench = useBench();

  test('a plaintext HTTP/1.1 request to the h2c listener is refused and the connection closed promptly', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const [host, port] = bench().gw.h2cAddress.split(':');
    const socket = netConnect(Number(port), host ?? '127.0.0.1');
    const chunks: Buffer[] = [];
    try {
      const end = await within(
        new Promise<ConnectionEnd>((resolve) => {
          let error: Error | undefined;
          socket.on('data', (chunk: Buffer) => chunks.push(chunk));
          socket.on('error', (err: Error) => (error = err));
          socket.on('close', () => resolve({ received: Buffer.concat(chunks), error, alpn: undefined }));
          socket.write(HTTP1_REQUEST);
        }),
        DEFAULT_LIMIT_MS,
        `HTTP/1.1 request to the h2c listener left the connection open; received so far: ${describeBytes(Buffer.concat(chunks))}`,
      );
      t.diagnostic(`server sent ${describeBytes(end.received)}${end.error === undefined ? '' : `, error ${end.error.message}`}`);
      // Closing is required (the bound above), and a person must be able to read why: an HTTP/1.1 505 naming what
      // the port speaks, not binary HTTP/2 frames.
      assert.match(end.received.toString('latin1'), /^HTTP\/1\.1 505 [\s\S]*serves gRPC over HTTP\/2/, describeBytes(end.received));
    } finally {
      socket.destroy();
    }
  });

  test('a TLS client offering only ALPN http/1.1 gets http/1.1 (for grpc-web and transcoding routes), and for any other route the readable 505 and the connection closed', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const [host, port] = bench().gw.tlsAddress.split(':');
    const socket = tlsConnect({ host: host ?? '127.0.0.1', port: Number(port), ca: bench().gw.defaultCert.cert, ALPNProtocols: ['http/1.1'] });
    const chunks: Buffer[] = [];
    let alpn: string | false | undefined;
    try {
      const end = await within(
        new Promise<ConnectionEnd>((resolve) => {
          let error: Error | undefined;
          socket.on('secureConnect', () => {
            alpn = socket.alpnProtocol ?? false;
            socket.write(HTTP1_REQUEST);
          });
          socket.on('data', (chunk: Buffer) => chunks.push(chunk));
          socket.on('error', (err: Error) => (error = err));
          socket.on('close', () => resolve({ received: Buffer.concat(chunks), error, alpn }));
        }),
        DEFAULT_LIMIT_MS,
        `TLS client with ALPN http/1.1 only: connection still open (handshake ${alpn === undefined ? 'pending' : `done, ALPN ${String(alpn)}`}; received ${describeBytes(Buffer.concat(chunks))})`,
      );
      t.diagnostic(`handshake completed with ALPN ${String(end.alpn)}; server sent ${describeBytes(end.received)}`);
      assert.equal(end.alpn, 'http/1.1');
      assert.match(end.received.toString('latin1'), /^HTTP\/1\.1 505 [\s\S]*serves gRPC over HTTP\/2/, describeBytes(end.received));
    } finally {
      socket.destroy();
    }
  });

  test('a TLS client offering no ALPN at all gets a readable HTTP/1.1 505 and the connection closed', { timeout: TEST_TIMEOUT_MS }, async () => {
    const [host, port] = bench().gw.tlsAddress.split(':');
    const socket = tlsConnect({ host: host ?? '127.0.0.1', port: Number(port), ca: bench().gw.defaultCert.cert });
    const chunks: Buffer[] = [];
    try {
      const end = await within(
        new Promise<ConnectionEnd>((resolve) => {
          let error: Error | undefined;
          socket.on('secureConnect', () => socket.write(HTTP1_REQUEST));
          socket.on('data', (chunk: Buffer) => chunks.push(chunk));
          socket.on('error', (err: Error) => (error = err));
          socket.on('close', () => resolve({ received: Buffer.concat(chunks), error, alpn: undefined }));
        }),
        DEFAULT_LIMIT_MS,
        `TLS client without ALPN: connection still open; received ${describeBytes(Buffer.concat(chunks))}`,
      );
      assert.match(end.received.toString('latin1'), /^HTTP\/1\.1 505 [\s\S]*serves gRPC over HTTP\/2/, describeBytes(end.received));
    } finally {
      socket.destroy();
    }
  });

  for (const leg of ALL_LEGS.filter((l) => l.up === 'grpc')) {
    describe(legName(leg), () => {
      test('a text/plain request to a route gets HTTP 415 or a gRPC error from the gateway, not a forwarded call', { timeout: TEST_TIMEOUT_MS }, async (t) => {
        const fake = await bench().fake(leg);
        // An upstream that would happily answer anything: only the gateway can refuse the request.
        fake.onStream((_s, _h, ctl) => answerOk(ctl));
        const session = await bench().downSession(leg);
        const result = await finish(
          startRawCall(session, { headers: { 'content-type': 'text/plain' }, messages: [Buffer.from('hello')] }),
          'text/plain request',
        );
        t.diagnostic(`answer ${describeResult(result)}; upstream saw ${fake.streams.length} stream(s)`);
        const status = Number(result.headers?.[':status']);
        const clearError = status === 415 || (status === 200 && result.grpcStatus !== undefined && result.grpcStatus !== GrpcStatus.OK);
        assert.ok(clearError, `no HTTP 415 and no gRPC error: ${describeResult(result)}`);
        assert.equal(fake.streams.length, 0, 'the non-gRPC request was forwarded upstream');
      });
    });
  }
});
