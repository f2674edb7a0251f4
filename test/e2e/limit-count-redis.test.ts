/**
 * Issue #16: `limit-count` with `policy: redis` and `redis-cluster`, against real redis-server processes, through
 * the admin API, etcd and two data planes that share one quota. The access phase waits on Redis while the call's
 * stream is held: its DATA must reach the node whole and in order, a client that resets a held stream must cost
 * nothing, and a Redis that is stopped or frozen must end every call by `allow_degradation` (UNAVAILABLE, or through
 * uncounted) rather than leave it hanging: each call below has a 10 s deadline, far above redis_timeout, so a
 * hung call would fail its assertion with DEADLINE_EXCEEDED. Calls on a route without plugins run beside it.
 */
import assert from 'node:assert/strict';
import { constants, type ClientHttp2Session } from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { Metadata, status as GrpcCode, type Client } from '@grpc/grpc-js';
import type { DataPlane } from '../../data-plane/data-plane.ts';
import { greeterClient, sayHello, sayHelloClientStream, startGreeterNode, type GreeterNode, type UnaryOutcome } from '../helpers/greeter.ts';
import { redisCli, startRedis, startRedisCluster, type RedisCluster, type RedisProcess } from '../helpers/redis.ts';
import { gatewaySession, startGateway, type GatewayFixture } from './gateway-fixture.ts';

const SAY_HELLO = '/helloworld.Greeter/SayHello';
const DEADLINE_MS = 10_000;
const WAIT_LIMIT_MS = 10_000;
const PASSWORD = 'redis-secret-7c1f';

describe('limit-count with a Redis policy', () => {
  let gw: GatewayFixture;
  let second: DataPlane;
  let redis: RedisProcess;
  let locked: RedisProcess;
  let node: GreeterNode;
  let clients: Client[];
  let raw: ClientHttp2Session;
  /** What before() opened, closed by after() in reverse even when before() failed part way. */
  const opened: { close(): unknown }[] = [];

  before(async () => {
    opened.push((redis = await startRedis()));
    opened.push((locked = await startRedis({ password: PASSWORD })));
    opened.push((gw = await startGateway())); // closes `second` too
    second = await gw.startAnotherDataPlane({});
    opened.push((node = await startGreeterNode({ id: 'node' })));
    const secondH2c = second.addresses.find((a) => a.kind === 'h2c');
    assert.ok(secondH2c !== undefined);
    clients = [greeterClient(gw.h2cAddress), greeterClient(`127.0.0.1:${String(secondH2c.port)}`)];
    opened.push(...clients);
    opened.push((raw = await gatewaySession(gw, 'h2c')));
    await putRoute('plain', { uri: '/helloworld.Greeter/SayHelloServerStream' });
  });

  after(async () => {
    for (const resource of opened.reverse()) await resource.close();
  });

  const upstream = (): unknown => ({ scheme: 'grpc', type: 'roundrobin', nodes: { [`127.0.0.1:${String(node.port)}`]: 1 } });
  const redisPolicy = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    policy: 'redis',
    redis_host: '127.0.0.1',
    redis_port: redis.port,
    redis_timeout: 500,
    ...extra,
  });

  /** Routes on SayHello: one at a time, so that the route a test PUT is the one its calls match. */
  const sayHelloRoutes = new Set<string>();

  /** PUTs a route and waits until both data planes have rebuilt it (and dropped the previous SayHello route). */
  async function putRoute(id: string, body: Record<string, unknown>): Promise<void> {
    const planes = [gw.dataPlane, second];
    if (body['uri'] === SAY_HELLO) {
      for (const other of sayHelloRoutes) {
        if (other === id) continue;
        assert.equal((await gw.admin('DELETE', `/routes/${other}`)).status, 200);
        sayHelloRoutes.delete(other);
        const deadline = Date.now() + WAIT_LIMIT_MS;
        while (planes.some((plane) => plane.snapshots.current().targets.has(other))) {
          if (Date.now() > deadline) throw new Error(`route ${other} not removed`);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
      sayHelloRoutes.add(id);
    }
    const before = planes.map((plane) => plane.snapshots.current().targets.get(id));
    const res = await gw.admin('PUT', `/routes/${id}`, { upstream: upstream(), ...body });
    assert.ok(res.status === 200 || res.status === 201, `PUT /routes/${id}: ${String(res.status)} ${JSON.stringify(res.body)}`);
    const deadline = Date.now() + WAIT_LIMIT_MS;
    for (const [i, plane] of planes.entries()) {
      for (;;) {
        const target = plane.snapshots.current().targets.get(id);
        if (target !== undefined && target !== before[i]) break;
        if (Date.now() > deadline) throw new Error(`route ${id} not rebuilt on data plane ${String(i)}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  }

  const call = (client: Client, name: string, metadata = new Metadata()): Promise<UnaryOutcome> =>
    sayHello(client, name, metadata, { deadline: Date.now() + DEADLINE_MS });

  async function assertPlainRouteServes(): Promise<void> {
    const answer = await new Promise<{ status: unknown; bytes: number }>((resolve, reject) => {
      const stream = raw.request({ ':method': 'POST', ':path': '/helloworld.Greeter/SayHelloServerStream', 'content-type': 'application/grpc', te: 'trailers' });
      let status: unknown;
      let bytes = 0;
      stream.on('response', (headers) => (status = headers[':status']));
      stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
      stream.on('error', reject);
      stream.on('close', () => resolve({ status, bytes }));
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    });
    assert.equal(answer.status, 200);
    assert.ok(answer.bytes > 0, 'the route without plugins is served');
  }

  test('admin validation: redis needs redis_host, redis-cluster needs nodes and a name, nodes are host:port', async () => {
    const refused = async (conf: Record<string, unknown>, message: RegExp): Promise<void> => {
      const res = await gw.admin('PUT', '/routes/bad', { uri: SAY_HELLO, upstream: upstream(), plugins: { 'limit-count': { count: 1, time_window: 1, ...conf } } });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.match((res.body as { error_msg: string }).error_msg, message);
      assert.equal((await gw.admin('GET', '/routes/bad')).status, 404, 'nothing was written');
    };
    await refused({ policy: 'redis' }, /plugin limit-count err: property "redis_host" is required when "policy" is "redis"/);
    await refused({ policy: 'redis-cluster', redis_cluster_name: 'c' }, /"redis_cluster_nodes" is required/);
    await refused({ policy: 'redis-cluster', redis_cluster_nodes: ['127.0.0.1:7000'] }, /"redis_cluster_name" is required/);
    await refused({ policy: 'redis-cluster', redis_cluster_name: 'c', redis_cluster_nodes: ['127.0.0.1'] }, /"127.0.0.1" in "redis_cluster_nodes" is not host:port/);
    await refused({ policy: 'redis', redis_host: '127.0.0.1', redis_timeout: 0 }, /redis_timeout/);
  });

  test('two data planes share one quota: exactly `count` calls pass in total, the rest are RESOURCE_EXHAUSTED', async () => {
    await putRoute('shared', { uri: SAY_HELLO, plugins: { 'limit-count': { count: 10, time_window: 60, key_type: 'constant', key: 'all', rejected_msg: 'shared quota used up', ...redisPolicy() } } });
    const outcomes: UnaryOutcome[] = [];
    for (let i = 0; i < 30; i++) outcomes.push(await call(clients[i % 2] as Client, `c${String(i)}`));
    const passed = outcomes.filter((o) => o.status.code === GrpcCode.OK);
    const refused = outcomes.filter((o) => o.status.code !== GrpcCode.OK);
    assert.equal(passed.length, 10, 'the quota is shared, not counted per data plane');
    for (const o of refused) {
      assert.equal(o.status.code, GrpcCode.RESOURCE_EXHAUSTED);
      assert.equal(o.status.details, 'shared quota used up');
      assert.equal(o.status.metadata.get('x-ratelimit-remaining')[0], '0');
    }
    const remaining = passed.map((o) => o.headers?.get('x-ratelimit-remaining')[0]).sort();
    assert.deepEqual(remaining, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    assert.equal(passed[0]?.headers?.get('x-ratelimit-limit')[0], '10');
    // The window is Redis's: one key, counted 30 times, expiring with the window.
    assert.equal(redisCli(redis.port, 'get', 'limit-count:routes/shared:all').trim(), '30');
    const ttl = Number(redisCli(redis.port, 'pttl', 'limit-count:routes/shared:all'));
    assert.ok(ttl > 0 && ttl <= 60_000, `the key expires with the window (pttl ${String(ttl)})`);
    await assertPlainRouteServes();
  });

  test('a password-protected Redis: redis_password is used, stored encrypted and never returned', async () => {
    await putRoute('locked', { uri: SAY_HELLO, plugins: { 'limit-count': { count: 2, time_window: 60, key: 'http_x_user', ...redisPolicy({ redis_port: locked.port, redis_password: PASSWORD }) } } });
    const user = new Metadata();
    user.set('x-user', 'ann');
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await call(clients[i % 2] as Client, 'x', user)).status.code);
    assert.deepEqual(codes, [GrpcCode.OK, GrpcCode.OK, GrpcCode.RESOURCE_EXHAUSTED]);
    assert.equal(redisCli(locked.port, '-a', PASSWORD, '--no-auth-warning', 'get', 'limit-count:routes/locked:ann').trim(), '3');
    const got = await gw.admin('GET', '/routes/locked');
    assert.doesNotMatch(JSON.stringify(got.body), new RegExp(PASSWORD), 'the admin API never returns the password');
  });

  test('Redis stopped: allow_degradation false answers UNAVAILABLE, true lets calls through; counting resumes when it is back', async () => {
    await putRoute('closed', { uri: SAY_HELLO, plugins: { 'limit-count': { count: 100, time_window: 60, ...redisPolicy() } } });
    await putRoute('open', { uri: '/helloworld.Greeter/SayHelloClientStream', plugins: { 'limit-count': { count: 100, time_window: 60, allow_degradation: true, ...redisPolicy() } } });
    assert.equal((await call(clients[0] as Client, 'before')).status.code, GrpcCode.OK);
    await redis.stop();
    try {
      for (const client of clients) {
        for (let i = 0; i < 5; i++) {
          const failed = await call(client, 'down');
          assert.equal(failed.status.code, GrpcCode.UNAVAILABLE, 'fail closed');
          assert.match(failed.status.details, /^rate limit store unavailable: /);
          const open = await sayHelloClientStream(client, ['a', 'b'], new Metadata(), { deadline: Date.now() + DEADLINE_MS });
          assert.equal(open.status.code, GrpcCode.OK, 'fail open');
          assert.equal(open.message, 'Hello a!Hello b!');
          assert.equal(open.headers?.get('x-ratelimit-remaining').length, 0, 'uncounted: no quota headers');
        }
      }
      await assertPlainRouteServes();
    } finally {
      await redis.start();
    }
    // ioredis reconnects in the background: calls are counted again once it has.
    const deadline = Date.now() + WAIT_LIMIT_MS;
    let back: UnaryOutcome;
    do {
      back = await call(clients[1] as Client, 'back');
      if (back.status.code === GrpcCode.OK) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    } while (Date.now() < deadline);
    assert.equal(back.status.code, GrpcCode.OK);
    assert.ok(Number(back.headers?.get('x-ratelimit-remaining')[0]) < 100, 'counted again');
  });

  test('Redis frozen (accepts, never answers): calls end after redis_timeout by allow_degradation, none hangs', async () => {
    await putRoute('closed', { uri: SAY_HELLO, plugins: { 'limit-count': { count: 100, time_window: 60, ...redisPolicy({ redis_timeout: 300 }) } } });
    await putRoute('open', { uri: '/helloworld.Greeter/SayHelloClientStream', plugins: { 'limit-count': { count: 100, time_window: 60, allow_degradation: true, ...redisPolicy({ redis_timeout: 300 }) } } });
    assert.equal((await call(clients[0] as Client, 'warm')).status.code, GrpcCode.OK);
    redis.pause();
    try {
      const closed = await Promise.all(clients.flatMap((client) => [0, 1, 2, 3].map(() => call(client, 'frozen'))));
      for (const o of closed) {
        assert.equal(o.status.code, GrpcCode.UNAVAILABLE);
        assert.match(o.status.details, /rate limit store unavailable: .*did not answer within 300 ms|command timed out/i);
      }
      // A client stream whose messages arrive while the call is held: all reach the node, in order.
      const names = Array.from({ length: 20 }, (_, i) => `n${String(i)}`);
      const open = await sayHelloClientStream(clients[0] as Client, names, new Metadata(), { deadline: Date.now() + DEADLINE_MS });
      assert.equal(open.status.code, GrpcCode.OK);
      assert.equal(open.message, names.map((n) => `Hello ${n}!`).join(''));
      await assertPlainRouteServes();
    } finally {
      redis.resume();
    }
  });

  test('a client that resets held streams costs nothing: the gateway goes on, later calls are counted', async () => {
    await putRoute('closed', { uri: SAY_HELLO, plugins: { 'limit-count': { count: 1000, time_window: 60, ...redisPolicy({ redis_timeout: 2000 }) } } });
    assert.equal((await call(clients[0] as Client, 'warm')).status.code, GrpcCode.OK);
    redis.pause();
    const resets: Promise<number>[] = [];
    try {
      for (let i = 0; i < 50; i++) {
        resets.push(
          new Promise((resolve) => {
            const stream = raw.request({ ':method': 'POST', ':path': SAY_HELLO, 'content-type': 'application/grpc', te: 'trailers' });
            stream.on('error', () => undefined);
            stream.on('close', () => resolve(stream.rstCode));
            stream.write(Buffer.from([0, 0, 0, 0, 3, 10, 1, 0x78]), () => setTimeout(() => stream.close(constants.NGHTTP2_CANCEL), 20));
          }),
        );
      }
      assert.deepEqual(new Set(await Promise.all(resets)), new Set([constants.NGHTTP2_CANCEL]));
    } finally {
      redis.resume();
    }
    const after = await call(clients[1] as Client, 'after');
    assert.equal(after.status.code, GrpcCode.OK);
    await assertPlainRouteServes();
  });

  describe('policy redis-cluster', () => {
    let cluster: RedisCluster | undefined;

    before(async () => {
      cluster = await startRedisCluster();
    });

    after(async () => {
      await cluster?.close();
    });

    test('keys spread over a 3-master cluster, each counted once for both data planes', async () => {
      await putRoute('cluster', {
        uri: SAY_HELLO,
        plugins: {
          'limit-count': { count: 3, time_window: 60, key: 'http_x_user', policy: 'redis-cluster', redis_cluster_name: 'test-cluster', redis_cluster_nodes: cluster?.nodes, redis_timeout: 1000 },
        },
      });
      for (const name of ['ann', 'bob', 'cid', 'dee', 'eve']) {
        const user = new Metadata();
        user.set('x-user', name);
        const codes = [];
        for (let i = 0; i < 5; i++) codes.push((await call(clients[i % 2] as Client, name, user)).status.code);
        assert.deepEqual(codes, [GrpcCode.OK, GrpcCode.OK, GrpcCode.OK, GrpcCode.RESOURCE_EXHAUSTED, GrpcCode.RESOURCE_EXHAUSTED], `user ${name}`);
      }
      await assertPlainRouteServes();
    });
  });
});
