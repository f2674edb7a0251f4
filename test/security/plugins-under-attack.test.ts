/**
 * Authentication plugins attacked at the frame level while legitimate calls run beside them (issue #16): a raw
 * HTTP/2 client opens streams in batches with forged API keys on a key-auth route and junk or forged JSON Web Tokens
 * on a jwt-auth route. Every attack stream is answered and ended by the gateway itself (no attacker call reaches
 * the upstream), and every grpc-js call with a consumer's real credential succeeds.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Metadata, status as GrpcCode, type Client } from '@grpc/grpc-js';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { startGateway, type GatewayFixture } from '../e2e/gateway-fixture.ts';
import { AttackClient, grpcRequestHeaders } from './h2-attack-client.ts';

const SAY_HELLO = '/helloworld.Greeter/SayHello';
const BATCHES = 8;
const PER_BATCH = 50;

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function hs256(payload: unknown, secret: string): string {
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** One forged credential of several kinds, for the stream numbered `i`. */
function forgedToken(i: number): string {
  switch (i % 4) {
    case 0:
      return hs256({ key: 'jwt-key', exp: 4_000_000_000 }, randomBytes(8).toString('hex')); // guessed secret
    case 1:
      return `${b64({ alg: 'none' })}.${b64({ key: 'jwt-key' })}.`; // unsigned
    case 2:
      return `${randomBytes(600).toString('base64url')}.${randomBytes(600).toString('base64url')}.x`; // junk
    default:
      return 'x'.repeat(2000); // not a JWT at all
  }
}

describe('authentication plugins under a frame-level flood of forged credentials', () => {
  let gw: GatewayFixture;
  let node: GreeterNode;
  const clients = new Map<string, Client>();

  before(async () => {
    gw = await startGateway();
    node = await startGreeterNode({ id: 'node' });
    const put = async (path: string, body: unknown): Promise<void> => {
      const res = await gw.admin('PUT', path, body);
      assert.ok(res.status === 200 || res.status === 201, `${path}: ${res.status} ${JSON.stringify(res.body)}`);
    };
    await put('/consumers', { username: 'alice', plugins: { 'key-auth': { key: 'alice-key' }, 'jwt-auth': { key: 'jwt-key', secret: 'jwt-secret' } } });
    const upstream = { scheme: 'grpc', type: 'roundrobin', nodes: { [`127.0.0.1:${node.port}`]: 1 } };
    await put('/routes/key', { uri: SAY_HELLO, host: 'key.example', plugins: { 'key-auth': {} }, upstream });
    await put('/routes/jwt', { uri: SAY_HELLO, host: 'jwt.example', plugins: { 'jwt-auth': {} }, upstream });
    await gw.waitForSnapshot((s) => s.targets.has('key') && s.targets.has('jwt') && s.consumers.size === 1, 'routes and consumer');
  });

  after(async () => {
    for (const client of clients.values()) client.close();
    await gw.close();
    await node.close();
  });

  for (const kind of ['key', 'jwt'] as const) {
    test(`${kind}-auth: every forged stream is ended by the gateway, none reaches the node, legitimate calls succeed`, { timeout: 60_000 }, async () => {
      const authority = `${kind}.example`;
      const credential = (metadata: Metadata): Metadata => {
        if (kind === 'key') metadata.set('apikey', 'alice-key');
        else metadata.set('authorization', `Bearer ${hs256({ key: 'jwt-key', exp: Math.floor(Date.now() / 1000) + 600 }, 'jwt-secret')}`);
        return metadata;
      };
      const [host, port] = gw.h2cAddress.split(':');
      const attacker = await AttackClient.open({ host: host ?? '127.0.0.1', port: Number(port) });
      const callsBefore = node.totalCalls;
      const beside: Promise<{ status: { code: number } }>[] = [];
      try {
        await attacker.waitForSettings();
        let stream = 1;
        for (let batch = 0; batch < BATCHES; batch++) {
          const ids: number[] = [];
          attacker.batch(() => {
            for (let i = 0; i < PER_BATCH; i++, stream += 2) {
              const forged: [string, string] = kind === 'key' ? ['apikey', randomBytes(12).toString('hex')] : ['authorization', `Bearer ${forgedToken(i)}`];
              attacker.headers(stream, grpcRequestHeaders(authority, SAY_HELLO, [forged]), true);
              ids.push(stream);
            }
          });
          beside.push(sayHello(greeterClientFor(authority), `beside-${batch}`, credential(new Metadata())));
          await attacker.waitFor(() => ids.every((id) => attacker.streamEnded(id)), `batch ${batch} answered`, 20_000);
        }
      } finally {
        attacker.destroy();
      }
      const outcomes = await Promise.all(beside);
      for (const outcome of outcomes) assert.equal(outcome.status.code, GrpcCode.OK);
      assert.equal(node.totalCalls - callsBefore, BATCHES, 'only the legitimate calls reached the node');
    });
  }

  /** The grpc-js client whose calls carry `authority` (the two routes differ by host). */
  function greeterClientFor(authority: string): Client {
    let client = clients.get(authority);
    if (client === undefined) {
      client = greeterClient(gw.h2cAddress, { authority });
      clients.set(authority, client);
    }
    return client;
  }
});
