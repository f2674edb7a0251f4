/**
 * Authentication plugins attacked at the frame level while legitimate calls run beside them (issue #16): a raw
 * HTTP/2 client opens streams in batches with forged API keys on a key-auth route and junk or forged JSON Web Tokens
 * on a jwt-auth route. Every attack stream is answered and ended by the gateway itself (no attacker call reaches
 * the upstream), and every grpc-js call with a consumer's real credential succeeds. On a limit-count route keyed by a
 * header, one key's flood uses that key's quota and no more, while calls under other keys beside it succeed.
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
/** limit-count's quota per key on the quota route. */
const QUOTA = 5;

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
    await put('/routes/quota', { uri: SAY_HELLO, host: 'quota.example', plugins: { 'limit-count': { count: QUOTA, time_window: 3600, key: 'http_x_user' } }, upstream });
    await gw.waitForSnapshot((s) => s.targets.has('key') && s.targets.has('jwt') && s.targets.has('quota') && s.consumers.size === 1, 'routes and consumer');
  });

  after(async () => {
    for (const client of clients.values()) client.close();
    await gw.close();
    await node.close();
  });

  /**
   * BATCHES batches of PER_BATCH attack streams to `authority`, each a whole call (an empty HelloRequest) with the
   * extra header `attack(i)`; after each batch is sent, one legitimate call from `legit(batch)` runs beside it, and
   * the batch must be answered and ended before the next. Resolves with the legitimate calls' outcomes.
   */
  async function flood(authority: string, attack: (i: number) => [string, string], legit: (batch: number) => Promise<{ status: { code: number } }>): Promise<{ status: { code: number } }[]> {
    const [host, port] = gw.h2cAddress.split(':');
    const attacker = await AttackClient.open({ host: host ?? '127.0.0.1', port: Number(port) });
    const beside: Promise<{ status: { code: number } }>[] = [];
    try {
      await attacker.waitForSettings();
      let stream = 1;
      for (let batch = 0; batch < BATCHES; batch++) {
        const ids: number[] = [];
        attacker.batch(() => {
          for (let i = 0; i < PER_BATCH; i++, stream += 2) {
            attacker.headers(stream, grpcRequestHeaders(authority, SAY_HELLO, [attack(i)]), false);
            attacker.data(stream, Buffer.alloc(5), true);
            ids.push(stream);
          }
        });
        beside.push(legit(batch));
        await attacker.waitFor(() => ids.every((id) => attacker.streamEnded(id)), `batch ${batch} answered`, 20_000);
      }
    } finally {
      attacker.destroy();
    }
    return Promise.all(beside);
  }

  for (const kind of ['key', 'jwt'] as const) {
    test(`${kind}-auth: every forged stream is ended by the gateway, none reaches the node, legitimate calls succeed`, { timeout: 60_000 }, async () => {
      const authority = `${kind}.example`;
      const credential = (metadata: Metadata): Metadata => {
        if (kind === 'key') metadata.set('apikey', 'alice-key');
        else metadata.set('authorization', `Bearer ${hs256({ key: 'jwt-key', exp: Math.floor(Date.now() / 1000) + 600 }, 'jwt-secret')}`);
        return metadata;
      };
      const callsBefore = node.totalCalls;
      const outcomes = await flood(
        authority,
        (i) => (kind === 'key' ? ['apikey', randomBytes(12).toString('hex')] : ['authorization', `Bearer ${forgedToken(i)}`]),
        (batch) => sayHello(greeterClientFor(authority), `beside-${batch}`, credential(new Metadata())),
      );
      for (const outcome of outcomes) assert.equal(outcome.status.code, GrpcCode.OK);
      assert.equal(node.totalCalls - callsBefore, BATCHES, 'only the legitimate calls reached the node');
    });
  }

  /** The grpc-js client whose calls carry `authority` (the routes differ by host). */
  function greeterClientFor(authority: string): Client {
    let client = clients.get(authority);
    if (client === undefined) {
      client = greeterClient(gw.h2cAddress, { authority });
      clients.set(authority, client);
    }
    return client;
  }

  test("limit-count: one key's flood exhausts only that key's quota; other keys' calls beside it succeed", { timeout: 60_000 }, async () => {
    const callsBefore = node.totalCalls;
    const outcomes = await flood(
      'quota.example',
      () => ['x-user', 'mallory'],
      (batch) => {
        const metadata = new Metadata();
        metadata.set('x-user', `user-${batch}`);
        return sayHello(greeterClientFor('quota.example'), `beside-${batch}`, metadata);
      },
    );
    for (const outcome of outcomes) assert.equal(outcome.status.code, GrpcCode.OK);
    assert.equal(node.totalCalls - callsBefore, QUOTA + BATCHES, "the flood's key got its quota and no more; every other key its call");
  });
});
