/**
 * Issue #11, case 9: `grpc-message` told clients where the upstreams are and why their connections failed
 * ("failed to connect to upstream grpc://127.0.0.1:50051: connect ECONNREFUSED …", "lost the connection to …",
 * OpenSSL's certificate errors). Across every way a call can fail at the gateway, the client now reads a stable
 * public text with no address and no socket or TLS error in it, with the right status, while the log line keeps the
 * node and the detail. A healthy route on the same listener keeps answering beside the failing ones.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { constants } from 'node:http2';
import { credentials, status as GrpcCode, Client, type StatusObject } from '@grpc/grpc-js';
import { PublicMessage } from '../../shared/errors.ts';
import { makeCert } from '../helpers/certs.ts';
import { DEFAULT_LIMIT_MS, startFakeUpstream, within, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { freePort } from '../helpers/ports.ts';
import { ADDRESS_PATTERN, TLS_ERROR_PATTERN, capturingLogger, startTestPlane, type TestPlane } from './tls-kit.ts';

/** One route per failure kind, each on its own path. */
const PATHS = {
  refused: '/leak.Probe/Refused',
  tlsVerify: '/leak.Probe/TlsVerify',
  reset: '/leak.Probe/Reset',
  lost: '/leak.Probe/Lost',
  protocol: '/leak.Probe/Protocol',
  noNode: '/leak.Probe/NoNode',
  noRoute: '/leak.Probe/NoRoute',
} as const;

interface Expected {
  code: number;
  details: string;
}

function route(id: string, uri: string, scheme: 'grpc' | 'grpcs', nodes: Record<string, number>, verify = true): string {
  const nodeLines = Object.entries(nodes).map(([address, weight]) => `        "${address}": ${weight}`).join('\n');
  return `  - id: ${id}
    uri: ${uri}
    upstream:
      scheme: ${scheme}
      type: roundrobin${scheme === 'grpcs' ? `\n      tls: { verify: ${String(verify)} }` : ''}
      nodes:
${nodeLines}`;
}

/** A unary call on any path with raw bytes: what the client sees as the status. */
function rawCall(client: Client, path: string): Promise<StatusObject> {
  return within(
    new Promise<StatusObject>((resolve) => {
      const call = client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), () => undefined);
      call.on('status', resolve);
    }),
    DEFAULT_LIMIT_MS,
    `call ${path}`,
  );
}

describe('grpc-message never reveals upstream addresses or TLS errors', () => {
  let healthy: GreeterNode;
  let scripted: FakeUpstream;
  let selfSigned: FakeUpstream;
  let closedPort: number;
  let gw: TestPlane;
  let client: Client;
  const { log, lines } = capturingLogger();

  before(async () => {
    healthy = await startGreeterNode({ id: 'healthy' });
    scripted = await startFakeUpstream();
    scripted.onStream((_stream, headers, ctl) => {
      if (headers[':path'] === PATHS.reset) ctl.reset(constants.NGHTTP2_INTERNAL_ERROR);
      else if (headers[':path'] === PATHS.lost) ctl.destroySession();
      else ctl.respondHttp(502, 'text/html', `<html>bad gateway at ${scripted.address}: connect ECONNREFUSED</html>`);
    });
    selfSigned = await startFakeUpstream({ tls: true });
    closedPort = await freePort();
    const yaml = `
routes:
  - id: ok
    uri: /helloworld.Greeter/SayHello
    upstream: { scheme: grpc, type: roundrobin, nodes: { "${healthy.address}": 1 } }
${route('refused', PATHS.refused, 'grpc', { [`127.0.0.1:${closedPort}`]: 1 })}
${route('tls', PATHS.tlsVerify, 'grpcs', { [selfSigned.address]: 1 })}
${route('reset', PATHS.reset, 'grpc', { [scripted.address]: 1 })}
${route('lost', PATHS.lost, 'grpc', { [scripted.address]: 1 })}
${route('protocol', PATHS.protocol, 'grpc', { [scripted.address]: 1 })}
${route('nonode', PATHS.noNode, 'grpc', { [healthy.address]: 0 })}
`;
    gw = await startTestPlane({ apisixYaml: yaml, defaultCert: await makeCert({ sans: ['localhost', '127.0.0.1'] }), log });
    client = new Client(gw.h2cAddress, credentials.createInsecure());
  });

  after(async () => {
    client.close();
    await gw.close();
    await scripted.close();
    await selfSigned.close();
    await healthy.close();
  });

  const cases: [string, string, Expected][] = [
    ['a refused connect', PATHS.refused, { code: GrpcCode.UNAVAILABLE, details: PublicMessage.upstreamConnect }],
    ['a failed certificate verification', PATHS.tlsVerify, { code: GrpcCode.UNAVAILABLE, details: PublicMessage.upstreamConnect }],
    ['an upstream reset', PATHS.reset, { code: GrpcCode.INTERNAL, details: PublicMessage.upstreamStream }],
    ['a lost upstream connection', PATHS.lost, { code: GrpcCode.UNAVAILABLE, details: PublicMessage.upstreamStream }],
    ['a non-gRPC upstream answer', PATHS.protocol, { code: GrpcCode.UNAVAILABLE, details: PublicMessage.upstreamProtocol }],
    ['an upstream without a usable node', PATHS.noNode, { code: GrpcCode.UNAVAILABLE, details: 'no valid upstream node for route/nonode' }],
    ['a path no route matches', PATHS.noRoute, { code: GrpcCode.UNIMPLEMENTED, details: `no route matched ${PATHS.noRoute}` }],
  ];

  for (const [kind, path, expected] of cases) {
    test(`${kind} gives the client a fixed text with no address and no TLS error`, async () => {
      const [status, legit] = await Promise.all([rawCall(client, path), sayHello(client, 'legit')]);
      assert.deepEqual({ code: status.code, details: status.details }, expected);
      assert.doesNotMatch(status.details, ADDRESS_PATTERN);
      assert.doesNotMatch(status.details, TLS_ERROR_PATTERN);
      for (const key of ['grpc-message', 'grpc-status-details-bin']) {
        for (const value of status.metadata.get(key)) assert.doesNotMatch(String(value), ADDRESS_PATTERN);
      }
      assert.equal(legit.status.code, GrpcCode.OK, `the healthy route beside it failed: ${legit.status.details}`);
    });
  }

  test('the log keeps the node and the detail the client was not told', () => {
    const logged = lines.map((line) => JSON.parse(line) as { msg?: string; node?: string; err?: string });
    const connect = logged.find((l) => l.msg === 'upstream connect failed' && l.node?.includes(String(closedPort)) === true);
    assert.match(connect?.err ?? '', /ECONNREFUSED/, 'refused connect not logged with its cause');
    const tls = logged.find((l) => l.msg === 'upstream connect failed' && l.node?.includes(String(selfSigned.port)) === true);
    assert.match(tls?.err ?? '', /self[- ]signed certificate/, 'certificate failure not logged with its cause');
    const lost = logged.find((l) => l.msg === 'call failed at the gateway' && /lost the connection to .*:\d+/.test(l.err ?? ''));
    assert.ok(lost !== undefined, 'lost connection not logged with the node address');
    const protocol = logged.find((l) => l.msg === 'call failed at the gateway' && /HTTP status 502/.test(l.err ?? ''));
    assert.ok(protocol !== undefined, 'non-gRPC answer not logged with its detail');
  });
});
