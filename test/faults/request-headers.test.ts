/**
 * What reaches the upstream: `te: trailers` always (gRPC PROTOCOL-HTTP2.md; apache/apisix#10686 is a Java server
 * refusing calls without it), no connection-specific header (RFC 9113 §8.2.2), `:authority` per APISIX's
 * `pass_host`, and request metadata (including `-bin` values) unchanged.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Metadata, status as GrpcCode } from '@grpc/grpc-js';
import { sayHello } from '../helpers/greeter.ts';
import {
  ALL_LEGS,
  answerOk,
  DEFAULT_LIMIT_MS,
  finish,
  legName,
  SAY_HELLO,
  startRawCall,
  TEST_TIMEOUT_MS,
  useBench,
  within,
} from './fault-kit.ts';
import { openRawConnection } from './raw-frames.ts';

/** RFC 9113 §8.2.2 (and `host`, which HTTP/2 carries as `:authority`). */
const CONNECTION_SPECIFIC = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host'];

describe('request headers sent upstream', { timeout: TEST_TIMEOUT_MS * 20 }, () => {
  const bench = useBench();

  for (const leg of ALL_LEGS) {
    describe(legName(leg), () => {
      test('te: trailers reaches the upstream even when the client sent none', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream((_s, _h, ctl) => answerOk(ctl));
        const session = await bench().downSession(leg);
        const result = await finish(startRawCall(session, { headers: { te: undefined } }), 'call without te');
        assert.equal(result.grpcStatus, 0, JSON.stringify(result.trailers));
        const [seen] = await fake.waitForStreams(1);
        assert.equal(seen?.headers.te, 'trailers');
      });

      test('a grpc-js call arrives with one te: trailers and no connection-specific header', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream((_s, _h, ctl) => answerOk(ctl));
        const result = await within(sayHello(bench().grpcClient(leg), 'x'), DEFAULT_LIMIT_MS, 'grpc-js SayHello');
        assert.equal(result.status.code, GrpcCode.OK, result.status.details);
        const [seen] = await fake.waitForStreams(1);
        assert.equal(seen?.headers.te, 'trailers');
        for (const name of CONNECTION_SPECIFIC) assert.equal(seen.headers[name], undefined, `${name} was forwarded`);
        assert.equal(seen.headers['content-type'], 'application/grpc');
      });

      test('a host header next to :authority is not forwarded', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream((_s, _h, ctl) => answerOk(ctl));
        const session = await bench().downSession(leg);
        const result = await finish(
          startRawCall(session, { headers: { ':authority': 'svc.example:8443', host: 'other.example' } }),
          'call with host',
        );
        assert.equal(result.grpcStatus, 0, JSON.stringify(result.trailers));
        const [seen] = await fake.waitForStreams(1);
        assert.equal(seen?.headers.host, undefined);
        assert.equal(seen?.headers[':authority'], 'svc.example:8443');
      });

      test('a request with connection-specific headers never reaches the upstream with them', { timeout: TEST_TIMEOUT_MS }, async (t) => {
        const fake = await bench().fake(leg);
        fake.onStream((_s, _h, ctl) => answerOk(ctl));
        const [host, port] = (leg.down === 'h2c' ? bench().gw.h2cAddress : bench().gw.tlsAddress).split(':');
        const conn = await openRawConnection({
          host: host ?? '127.0.0.1',
          port: Number(port),
          ...(leg.down === 'tls' ? { tls: { ca: bench().gw.defaultCert.cert } } : {}),
        });
        try {
          const base: [string, string][] = [
            [':method', 'POST'],
            [':scheme', leg.down === 'h2c' ? 'http' : 'https'],
            [':path', SAY_HELLO],
            [':authority', 'svc.example'],
            ['content-type', 'application/grpc'],
            ['te', 'trailers'],
          ];
          // A control stream first: the route works over this hand-made connection.
          conn.sendHeaders(1, base);
          assert.equal(await conn.waitForStreamEnd(1), 'end-stream', 'the control request got no response');
          const bad: [string, string][] = [
            ['connection', 'keep-alive'],
            ['keep-alive', 'timeout=5'],
            ['proxy-connection', 'keep-alive'],
            ['transfer-encoding', 'chunked'],
            ['upgrade', 'h2c'],
          ];
          let id = 3;
          for (const header of bad) {
            conn.sendHeaders(id, [...base, header]);
            // Any end is fine (nghttp2 answers RST_STREAM PROTOCOL_ERROR for a malformed request): not a hang.
            const end = await conn.waitForStreamEnd(id);
            t.diagnostic(`${header[0]}: ${end}${end === 'rst-stream' ? ` code ${String(conn.rstCode(id))}` : ''}`);
            id += 2;
          }
        } finally {
          conn.destroy();
        }
        for (const seen of fake.streams) {
          for (const name of CONNECTION_SPECIFIC) assert.equal(seen.headers[name], undefined, `${name} reached the upstream`);
        }
        assert.ok(fake.streams.length >= 1, 'the control request never reached the upstream');
      });

      test('pass_host pass sends the client :authority', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg, { upstream: { pass_host: 'pass' } });
        fake.onStream((_s, _h, ctl) => answerOk(ctl));
        const session = await bench().downSession(leg);
        await finish(startRawCall(session, { headers: { ':authority': 'client.example:9443' } }), 'pass');
        const [seen] = await fake.waitForStreams(1);
        assert.equal(seen?.headers[':authority'], 'client.example:9443');
      });

      test('pass_host node sends the node address', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg, { upstream: { pass_host: 'node' } });
        fake.onStream((_s, _h, ctl) => answerOk(ctl));
        const session = await bench().downSession(leg);
        await finish(startRawCall(session, { headers: { ':authority': 'client.example:9443' } }), 'node');
        const [seen] = await fake.waitForStreams(1);
        assert.equal(seen?.headers[':authority'], fake.address);
      });

      test('pass_host rewrite sends upstream_host', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg, { upstream: { pass_host: 'rewrite', upstream_host: 'rewritten.example' } });
        fake.onStream((_s, _h, ctl) => answerOk(ctl));
        const session = await bench().downSession(leg);
        await finish(startRawCall(session, { headers: { ':authority': 'client.example:9443' } }), 'rewrite');
        const [seen] = await fake.waitForStreams(1);
        assert.equal(seen?.headers[':authority'], 'rewritten.example');
      });

      test('metadata and -bin values reach the upstream unchanged', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fake = await bench().fake(leg);
        fake.onStream((_s, _h, ctl) => answerOk(ctl));
        const metadata = new Metadata();
        metadata.set('x-tenant', 'acme');
        metadata.set('trace-bin', Buffer.from([0x00, 0xff, 0x10, 0x80]));
        const result = await within(sayHello(bench().grpcClient(leg), 'x', metadata), DEFAULT_LIMIT_MS, 'grpc-js SayHello');
        assert.equal(result.status.code, GrpcCode.OK, result.status.details);
        const [seen] = await fake.waitForStreams(1);
        assert.equal(seen?.headers['x-tenant'], 'acme');
        const bin = seen.headers['trace-bin'];
        assert.deepEqual(Buffer.from(String(bin), 'base64'), Buffer.from([0x00, 0xff, 0x10, 0x80]));
        assert.equal(seen.messages.length, 1);
        assert.equal(seen.endStreamReceived, true);
      });
    });
  }
});
