/**
 * The seed document end to end: admin API → etcd → data plane → real Greeter upstreams, over h2c and TLS
 * downstream and to grpc and grpcs upstreams, with config changes applied live.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Metadata, status as GrpcCode, type Client } from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { makeCert } from '../helpers/certs.ts';
import {
  greeterClient,
  openBidirectionalStream,
  sayHello,
  sayHelloBidirectionalStream,
  sayHelloClientStream,
  sayHelloServerStream,
  startGreeterNode,
  messageOf,
  type GreeterNode,
} from '../helpers/greeter.ts';
import { freePort } from '../helpers/ports.ts';
import { seedRoute, startGateway, type GatewayFixture } from './gateway-fixture.ts';

describe('gRPC proxy end to end', () => {
  let gw: GatewayFixture;
  let a: GreeterNode; // grpc
  let b: GreeterNode; // grpc
  let s: GreeterNode; // grpcs
  const clients: Client[] = [];
  const h2c = (): Client => {
    const client = greeterClient(gw.h2cAddress);
    clients.push(client);
    return client;
  };

  before(async () => {
    gw = await startGateway();
    a = await startGreeterNode({ id: 'a' });
    b = await startGreeterNode({ id: 'b' });
    s = await startGreeterNode({ id: 's', tls: true });
  });

  after(async () => {
    for (const client of clients) client.close();
    await gw.close();
    await Promise.all([a.close(), b.close(), s.close()]);
  });

  const putRoute = async (id: string, route: unknown, expectNodes: string[]): Promise<void> => {
    const res = await gw.admin('PUT', `/routes/${id}`, route);
    assert.ok(res.status === 201 || res.status === 200, JSON.stringify(res.body));
    await gw.waitForSnapshot(() => JSON.stringify(gw.routeNodes(id)) === JSON.stringify(expectNodes), `route ${id}`);
  };

  test('the seed route answers SayHello over h2c to a grpc upstream', async () => {
    await putRoute('1', seedRoute({ [`127.0.0.1:${a.port}`]: 1 }), [`grpc://127.0.0.1:${a.port}`]);
    const result = await sayHello(h2c(), 'apisix');
    assert.equal(result.status.code, GrpcCode.OK, result.status.details);
    assert.equal(result.message, 'Hello apisix');
    assert.equal(result.servedBy, 'a');
  });

  test('TLS downstream without SNI gets the default certificate and the same answer', async () => {
    const client = greeterClient(gw.tlsAddress, { tls: { rootCert: gw.defaultCert.cert } });
    clients.push(client);
    const result = await sayHello(client, 'apisix');
    assert.equal(result.status.code, GrpcCode.OK, result.status.details);
    assert.equal(result.message, 'Hello apisix');
  });

  test('TLS downstream with SNI gets the certificate of the matching ssl object', async () => {
    const pem = await makeCert({ sans: ['test.com', '*.test.com'] });
    const res = await gw.admin('PUT', '/ssls/1', { cert: pem.cert, key: pem.key, snis: ['test.com', '*.test.com'] });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    await gw.waitForSnapshot((snap) => snap.sni.contexts.has('1'), 'ssl 1');
    for (const servername of ['test.com', 'api.test.com']) {
      // Verification against the test.com certificate as the only root proves which certificate was served.
      const client = greeterClient(gw.tlsAddress, { tls: { rootCert: pem.cert, servername } });
      clients.push(client);
      const result = await sayHello(client, 'apisix');
      assert.equal(result.status.code, GrpcCode.OK, `${servername}: ${result.status.details}`);
      assert.equal(result.message, 'Hello apisix');
    }
  });

  test('fallback_sni picks the certificate for clients that send no SNI', async () => {
    const pem = await makeCert({ sans: ['fallback.example'] });
    const res = await gw.admin('PUT', '/ssls/fallback', { cert: pem.cert, key: pem.key, sni: 'fallback.example' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const plane = await gw.startAnotherDataPlane({ fallbackSni: 'fallback.example' });
    const port = plane.addresses.find((x) => x.kind === 'tls')?.port;
    // No servername: grpcurl's behaviour for an IP address; the name is then checked against the authority.
    const client = greeterClient(`127.0.0.1:${String(port)}`, { tls: { rootCert: pem.cert }, authority: 'fallback.example' });
    clients.push(client);
    const result = await sayHello(client, 'apisix');
    assert.equal(result.status.code, GrpcCode.OK, result.status.details);
  });

  test('a grpcs upstream is reached over TLS, from h2c and from TLS clients', async () => {
    await putRoute('1', seedRoute({ [`127.0.0.1:${s.port}`]: 1 }, 'grpcs'), [`grpcs://127.0.0.1:${s.port}`]);
    const plain = await sayHello(h2c(), 'apisix');
    assert.equal(plain.status.code, GrpcCode.OK, plain.status.details);
    assert.equal(plain.servedBy, 's');
    const tlsClient = greeterClient(gw.tlsAddress, { tls: { rootCert: gw.defaultCert.cert } });
    clients.push(tlsClient);
    const secure = await sayHello(tlsClient, 'apisix');
    assert.equal(secure.status.code, GrpcCode.OK, secure.status.details);
    assert.equal(secure.message, 'Hello apisix');
    assert.equal(secure.servedBy, 's');
  });

  test('PUT of a changed upstream sends new calls to the new node without a restart', async () => {
    await putRoute('1', seedRoute({ [`127.0.0.1:${a.port}`]: 1 }), [`grpc://127.0.0.1:${a.port}`]);
    assert.equal((await sayHello(h2c(), 'x')).servedBy, 'a');
    await putRoute('1', seedRoute({ [`127.0.0.1:${b.port}`]: 1 }), [`grpc://127.0.0.1:${b.port}`]);
    assert.equal((await sayHello(h2c(), 'x')).servedBy, 'b');
  });

  test('weights 1 and 3 share 100 calls on one client connection 25/75', async () => {
    await putRoute('1', seedRoute({ [`127.0.0.1:${a.port}`]: 1, [`127.0.0.1:${b.port}`]: 3 }), [
      `grpc://127.0.0.1:${a.port}`,
      `grpc://127.0.0.1:${b.port}`,
    ]);
    const client = h2c();
    const served: Record<string, number> = {};
    for (let i = 0; i < 100; i++) {
      const result = await sayHello(client, `n${i}`);
      assert.equal(result.status.code, GrpcCode.OK);
      served[result.servedBy ?? '?'] = (served[result.servedBy ?? '?'] ?? 0) + 1;
    }
    assert.deepEqual(served, { a: 25, b: 75 });
  });

  test('all streaming kinds pass through with their messages and trailers', async () => {
    await putRoute('stream', { uri: '/helloworld.Greeter/*', upstream: { nodes: { [`127.0.0.1:${a.port}`]: 1 } } }, [
      `grpc://127.0.0.1:${a.port}`,
    ]);
    const client = h2c();
    const server = await sayHelloServerStream(client, 'apisix');
    assert.equal(server.status.code, GrpcCode.OK, server.status.details);
    assert.deepEqual(server.messages, Array(5).fill('Hello apisix'));
    const clientStream = await sayHelloClientStream(client, ['a', 'b']);
    assert.equal(clientStream.message, 'Hello a!Hello b!');
    const bidi = await sayHelloBidirectionalStream(client, ['x', 'y']);
    assert.deepEqual(bidi.messages, ['Hello x', 'Hello y', 'stream ended']);
  });

  test('metadata, -bin values and an upstream error status pass through unchanged', async () => {
    await putRoute('1', seedRoute({ [`127.0.0.1:${a.port}`]: 1 }), [`grpc://127.0.0.1:${a.port}`]);
    const metadata = new Metadata();
    metadata.set('x-greeter-status', String(GrpcCode.FAILED_PRECONDITION));
    metadata.set('trace-bin', Buffer.from([0xab, 0xcd, 0x00]));
    const result = await sayHello(h2c(), 'apisix', metadata);
    assert.equal(result.status.code, GrpcCode.FAILED_PRECONDITION);
    assert.equal(result.servedBy, 'a');
    assert.deepEqual(a.lastCall?.metadata['trace-bin'], Buffer.from([0xab, 0xcd, 0x00]).toString('base64'));
  });

  test('a call in flight keeps its node when the route changes under it', async () => {
    await putRoute('stream', { uri: '/helloworld.Greeter/*', upstream: { nodes: { [`127.0.0.1:${a.port}`]: 1 } } }, [
      `grpc://127.0.0.1:${a.port}`,
    ]);
    const client = h2c();
    const call = openBidirectionalStream(client);
    const replies: string[] = [];
    let servedBy: string | undefined;
    call.on('metadata', (md: Metadata) => {
      servedBy = String(md.get('x-served-by')[0]);
    });
    const next = (): Promise<string> => new Promise((resolve) => call.once('data', (reply: object) => resolve(messageOf(reply))));
    call.write({ name: 'before' });
    replies.push(await next());
    await putRoute('stream', { uri: '/helloworld.Greeter/*', upstream: { nodes: { [`127.0.0.1:${b.port}`]: 1 } } }, [
      `grpc://127.0.0.1:${b.port}`,
    ]);
    call.write({ name: 'after' });
    replies.push(await next());
    const ended = next();
    call.end();
    replies.push(await ended);
    assert.deepEqual(replies, ['Hello before', 'Hello after', 'stream ended']);
    assert.equal(servedBy, 'a');
    const fresh = await sayHelloBidirectionalStream(client, ['new']);
    assert.equal(fresh.messages[0], 'Hello new');
    assert.equal(fresh.servedBy, 'b');
  });

  test('DELETE of the route turns calls into UNIMPLEMENTED', async () => {
    await putRoute('1', seedRoute({ [`127.0.0.1:${a.port}`]: 1 }), [`grpc://127.0.0.1:${a.port}`]);
    const del = await gw.admin('DELETE', '/routes/stream');
    assert.equal(del.status, 200);
    const res = await gw.admin('DELETE', '/routes/1');
    assert.equal(res.status, 200);
    await gw.waitForSnapshot((snap) => snap.router.size === 0, 'routes deleted');
    const result = await sayHello(h2c(), 'apisix');
    assert.equal(result.status.code, GrpcCode.UNIMPLEMENTED);
    assert.match(result.status.details, /no route matched \/helloworld\.Greeter\/SayHello/);
  });

  test('a node that refuses connections is UNAVAILABLE, and the next node is tried first', async () => {
    const closed = await freePort();
    await putRoute('1', seedRoute({ [`127.0.0.1:${closed}`]: 1 }), [`grpc://127.0.0.1:${closed}`]);
    const down = await sayHello(h2c(), 'apisix');
    assert.equal(down.status.code, GrpcCode.UNAVAILABLE);
    assert.equal(down.status.details, 'upstream connect failed');
    assert.doesNotMatch(down.status.details, new RegExp(String(closed)));

    await putRoute('1', seedRoute({ [`127.0.0.1:${closed}`]: 1, [`127.0.0.1:${a.port}`]: 1 }), [
      `grpc://127.0.0.1:${closed}`,
      `grpc://127.0.0.1:${a.port}`,
    ]);
    for (let i = 0; i < 4; i++) {
      const result = await sayHello(h2c(), 'apisix');
      assert.equal(result.status.code, GrpcCode.OK, result.status.details);
      assert.equal(result.servedBy, 'a');
    }
  });

  test('an upstream with only weight-0 nodes answers UNAVAILABLE', async () => {
    await putRoute('1', seedRoute({ [`127.0.0.1:${a.port}`]: 0 }), [`grpc://127.0.0.1:${a.port}`]);
    const result = await sayHello(h2c(), 'apisix');
    assert.equal(result.status.code, GrpcCode.UNAVAILABLE);
    assert.match(result.status.details, /no valid upstream node/);
  });

  test('an invalid value written to etcd is skipped and the last good route stays in service', async () => {
    await putRoute('1', seedRoute({ [`127.0.0.1:${a.port}`]: 1 }), [`grpc://127.0.0.1:${a.port}`]);
    const etcd = new Etcd3({ hosts: gw.etcd.endpoint });
    try {
      await etcd.put('/apisix/routes/1').value(JSON.stringify({ uri: '/helloworld.Greeter/SayHello', upstream: { scheme: 'http' } }));
      await etcd.put('/apisix/routes/marker').value(JSON.stringify(seedRoute({ [`127.0.0.1:${b.port}`]: 1 })));
      await gw.waitForSnapshot((snap) => snap.targets.has('marker'), 'marker route');
    } finally {
      etcd.close();
    }
    const result = await sayHello(h2c(), 'apisix');
    assert.equal(result.status.code, GrpcCode.OK, result.status.details);
    assert.equal(result.servedBy, 'a');
  });
});
