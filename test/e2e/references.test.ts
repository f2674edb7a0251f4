/**
 * Routes that reach their nodes through references (issue #4): `upstream_id`, `service_id` (a service with an
 * inline upstream or an `upstream_id`), live changes to the referenced objects, references to objects that are
 * missing, and mTLS to a grpcs upstream with the client certificate inline or from an ssl object of type client.
 */
import assert from 'node:assert/strict';
import http2, { type Http2SecureServer } from 'node:http2';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { status as GrpcCode, type Client } from '@grpc/grpc-js';
import { makeCert, type CertAndKey } from '../helpers/certs.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { startGateway, type GatewayFixture } from './gateway-fixture.ts';

const SAY_HELLO = '/helloworld.Greeter/SayHello';

/** A grpcs node that requires a client certificate signed by (here: equal to) `clientCa`, and tells whose it saw. */
async function startMtlsNode(server: CertAndKey, clientCa: string): Promise<{ port: number; close(): Promise<void> }> {
  const node: Http2SecureServer = http2.createSecureServer({
    cert: server.cert,
    key: server.key,
    ca: clientCa,
    requestCert: true,
    rejectUnauthorized: true,
  });
  node.on('stream', (stream) => {
    // An empty object when the client sent no certificate (the types promise a whole one).
    const peer = (stream.session?.socket as TLSSocket | undefined)?.getPeerCertificate() as Partial<PeerCertificate> | undefined;
    stream.on('data', () => undefined);
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'x-client-cn': String(peer?.subject?.CN ?? '') }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.from([0, 0, 0, 0, 0])); // one empty HelloReply
    });
  });
  await new Promise<void>((resolve) => node.listen(0, '127.0.0.1', resolve));
  const address = node.address();
  return {
    port: address !== null && typeof address === 'object' ? address.port : 0,
    close: () => new Promise<void>((resolve) => node.close(() => resolve())),
  };
}

describe('routes through upstream_id and service_id', () => {
  let gw: GatewayFixture;
  let a: GreeterNode;
  let b: GreeterNode;
  let client: Client;

  before(async () => {
    gw = await startGateway();
    a = await startGreeterNode({ id: 'a' });
    b = await startGreeterNode({ id: 'b' });
    client = greeterClient(gw.h2cAddress);
  });

  after(async () => {
    client.close();
    await gw.close();
    await Promise.all([a.close(), b.close()]);
  });

  const put = async (path: string, body: unknown): Promise<void> => {
    const res = await gw.admin('PUT', path, body);
    assert.ok(res.status === 200 || res.status === 201, `${path}: ${res.status} ${JSON.stringify(res.body)}`);
  };
  const nodesOf = (routeId: string): string => JSON.stringify(gw.routeNodes(routeId));
  const waitNodes = (routeId: string, port: number): Promise<void> =>
    gw.waitForSnapshot(() => nodesOf(routeId) === JSON.stringify([`grpc://127.0.0.1:${port}`]), `route ${routeId} → ${port}`);

  test('a route with upstream_id follows the upstream object, and live changes to it', async () => {
    await put('/upstreams/u1', { scheme: 'grpc', nodes: { [`127.0.0.1:${a.port}`]: 1 } });
    await put('/routes/r1', { uri: SAY_HELLO, upstream_id: 'u1' });
    await waitNodes('r1', a.port);
    assert.equal((await sayHello(client, 'x')).servedBy, 'a');
    await put('/upstreams/u1', { scheme: 'grpc', nodes: { [`127.0.0.1:${b.port}`]: 1 } });
    await waitNodes('r1', b.port);
    const result = await sayHello(client, 'x');
    assert.equal(result.status.code, GrpcCode.OK, result.status.details);
    assert.equal(result.servedBy, 'b');
  });

  test('a route with service_id inherits the service upstream (inline, then by upstream_id), live', async () => {
    await put('/services/s1', { upstream: { nodes: { [`127.0.0.1:${a.port}`]: 1 } } });
    await put('/routes/r1', { uri: SAY_HELLO, service_id: 's1' });
    await waitNodes('r1', a.port);
    assert.equal((await sayHello(client, 'x')).servedBy, 'a');
    await put('/upstreams/u2', { nodes: { [`127.0.0.1:${b.port}`]: 1 } });
    await put('/services/s1', { upstream_id: 'u2' });
    await waitNodes('r1', b.port);
    assert.equal((await sayHello(client, 'x')).servedBy, 'b');
  });

  test("the route's own upstream wins over its service's", async () => {
    await put('/services/s1', { upstream: { nodes: { [`127.0.0.1:${b.port}`]: 1 } } });
    await put('/routes/r1', { uri: SAY_HELLO, service_id: 's1', upstream: { nodes: { [`127.0.0.1:${a.port}`]: 1 } } });
    await waitNodes('r1', a.port);
    assert.equal((await sayHello(client, 'x')).servedBy, 'a');
  });

  test('two routes on one upstream share its balancer: weights 1/3 hold across both routes', async () => {
    await put('/upstreams/shared', { nodes: { [`127.0.0.1:${a.port}`]: 1, [`127.0.0.1:${b.port}`]: 3 } });
    await put('/routes/r1', { uri: SAY_HELLO, upstream_id: 'shared' });
    await put('/routes/r2', { uri: '/helloworld.Greeter/SayHelloServerStream', upstream_id: 'shared' });
    await gw.waitForSnapshot(() => (gw.routeNodes('r1')?.length ?? 0) === 2 && (gw.routeNodes('r2')?.length ?? 0) === 2, 'shared upstream');
    const snapshot = gw.dataPlane.snapshots.current();
    assert.equal(snapshot.targets.get('r1')?.upstream, snapshot.targets.get('r2')?.upstream);
    await gw.admin('DELETE', '/routes/r2');
  });

  test('when the referenced upstream is missing from etcd the call is UNAVAILABLE, not routed elsewhere', async () => {
    // Written past the admin API's integrity check, as another writer (or a half-applied change) could.
    const { Etcd3 } = await import('etcd3');
    const etcd = new Etcd3({ hosts: gw.etcd.endpoint });
    try {
      await etcd.put('/apisix/routes/r1').value(JSON.stringify({ uri: SAY_HELLO, upstream_id: 'absent' }));
      await etcd.put('/apisix/routes/r3').value(JSON.stringify({ uri: '/helloworld.Greeter/SayHelloClientStream', service_id: 'absent' }));
    } finally {
      etcd.close();
    }
    await gw.waitForSnapshot((snap) => snap.targets.get('r1')?.error !== undefined && snap.targets.has('r3'), 'dangling references');
    const result = await sayHello(client, 'x');
    assert.equal(result.status.code, GrpcCode.UNAVAILABLE);
    assert.match(result.status.details, /upstream absent not found/);
    assert.ok(gw.dataPlane.snapshots.current().targets.get('r3')?.error?.grpcStatus === GrpcCode.UNIMPLEMENTED);
  });

  test('mTLS to a grpcs upstream: inline client_cert/client_key, then client_cert_id of an ssl object of type client', async () => {
    const serverPem = await makeCert({ sans: ['localhost', '127.0.0.1'] });
    const clientPem = await makeCert({ sans: ['gateway-client'] });
    const node = await startMtlsNode(serverPem, clientPem.cert);
    try {
      await put('/routes/r1', {
        uri: SAY_HELLO,
        upstream: { scheme: 'grpcs', nodes: { [`127.0.0.1:${node.port}`]: 1 }, tls: { client_cert: clientPem.cert, client_key: clientPem.key } },
      });
      await gw.waitForSnapshot(() => (gw.routeNodes('r1')?.[0] ?? '').includes('#cert='), 'mTLS route');
      const inline = await sayHello(client, 'x');
      assert.equal(inline.status.code, GrpcCode.OK, inline.status.details);
      assert.ok(String(inline.headers?.get('x-client-cn')[0] ?? '').length > 0, 'the node saw no client certificate');

      await put('/ssls/client1', { type: 'client', cert: clientPem.cert, key: clientPem.key });
      await put('/routes/r1', { uri: SAY_HELLO, upstream: { scheme: 'grpcs', nodes: { [`127.0.0.1:${node.port}`]: 1 }, tls: { client_cert_id: 'client1' } } });
      await gw.waitForSnapshot(() => (gw.routeNodes('r1')?.[0] ?? '').includes('#cert=ssl/client1'), 'client_cert_id route');
      const byId = await sayHello(client, 'x');
      assert.equal(byId.status.code, GrpcCode.OK, byId.status.details);

      await put('/routes/r1', { uri: SAY_HELLO, upstream: { scheme: 'grpcs', nodes: { [`127.0.0.1:${node.port}`]: 1 } } });
      await gw.waitForSnapshot(() => gw.routeNodes('r1')?.[0] === `grpcs://127.0.0.1:${node.port}`, 'route without a client certificate');
      const without = await sayHello(client, 'x');
      assert.equal(without.status.code, GrpcCode.UNAVAILABLE, 'a node that requires a client certificate accepted a call without one');
    } finally {
      await node.close();
    }
  });
});
