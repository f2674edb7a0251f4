/**
 * Issue #16: `limit-req` and `limit-conn` through the admin API, etcd and the data plane, with real grpc-js clients,
 * a real greeter upstream and a frame-level attacker. Refusals are asserted by status, message and trailers-only
 * shape; limit-conn's release by what the route admits afterwards: exactly `conn` calls in flight and one more
 * refused, after calls that ended by themselves, were cancelled by their client, failed upstream, were refused by
 * a later plugin, or were reset (or lost with their connection) by a flood of raw HTTP/2 streams. Nothing here
 * asserts how long something took. test/engines/node-engine.test.ts runs this file on the node:http2 engine too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Metadata, status as GrpcCode, type Client, type StatusObject } from '@grpc/grpc-js';
import { PluginsSchema } from '../../shared/schema/plugins.ts';
import { DELAY_HEADER, greeterClient, greeterMethod, sayHello, sayHelloServerStream, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { waitUntil } from '../helpers/fake-upstream.ts';
import { AttackClient, FrameFlag, FrameType, grpcRequestHeaders } from '../security/h2-attack-client.ts';
import { type GatewayFixture, putRouteAndWait, startGateway } from './gateway-fixture.ts';

const SAY_HELLO = '/helloworld.Greeter/SayHello';
/** How long the greeter holds a call open (it stops early when the call is cancelled). */
const HOLD_MS = 30_000;
const WAIT_MS = 10_000;
/** RESOURCE_EXHAUSTED as the number capacity() reports. */
const REFUSED: number = GrpcCode.RESOURCE_EXHAUSTED;

/** A unary call in flight, with its status once it ends. */
interface OpenCall {
  cancel(): void;
  readonly status: Promise<StatusObject>;
  settled: boolean;
}

/** The hosts of the routes below: each has its own grpc-js client, whose calls carry it as `:authority`. */
const HOSTS = ['plain', 'req', 'conn', 'conn-count', 'up', 'none', 'flood'] as const;
type Host = (typeof HOSTS)[number];

describe('limit-req and limit-conn', () => {
  let gw: GatewayFixture;
  let node: GreeterNode;
  let clients: Record<Host, Client>;

  before(async () => {
    gw = await startGateway();
    node = await startGreeterNode({ id: 'node' });
    const entries = HOSTS.map((host) => [host, greeterClient(gw.h2cAddress, { authority: `${host}.example` })] as const);
    clients = Object.fromEntries(entries) as Record<Host, Client>;
    // A route without plugins, called beside the limited ones.
    await putRoute('plain', 'plain', undefined, { uri: '/helloworld.Greeter/SayHelloServerStream' });
  });

  after(async () => {
    for (const client of Object.values(clients)) client.close();
    await gw.close();
    await node.close();
  });

  const upstreamOf = (port: number): unknown => ({ scheme: 'grpc', type: 'roundrobin', nodes: { [`127.0.0.1:${port}`]: 1 } });

  /** PUTs route `id` for calls to `<host>.example` and waits until the data plane has rebuilt it. */
  const putRoute = (id: string, host: Host, plugins: unknown, extra: Record<string, unknown> = {}, port = node.port): Promise<void> =>
    putRouteAndWait(gw, id, { uri: SAY_HELLO, host: `${host}.example`, upstream: upstreamOf(port), ...(plugins === undefined ? {} : { plugins }), ...extra });

  /** SayHello held open by the greeter for `holdMs` (until cancelled). */
  function openCall(client: Client, holdMs = HOLD_MS): OpenCall {
    const { path, requestSerialize, responseDeserialize } = greeterMethod('SayHello');
    const metadata = new Metadata();
    metadata.set(DELAY_HEADER, String(holdMs));
    const call = client.makeUnaryRequest(path, requestSerialize, responseDeserialize, { name: 'held' }, metadata, () => undefined);
    const open: OpenCall = {
      cancel: () => call.cancel(),
      status: new Promise((resolve) => call.on('status', resolve)),
      settled: false,
    };
    void open.status.then(() => (open.settled = true));
    return open;
  }

  /** Opens `n` held calls and waits until each has reached `upstream` or ended; returns them and how many reached it. */
  async function openCalls(client: Client, n: number, upstream: GreeterNode = node, holdMs = HOLD_MS): Promise<{ calls: OpenCall[]; reached: number }> {
    const before = upstream.counts.SayHello;
    const calls = Array.from({ length: n }, () => openCall(client, holdMs));
    const reached = (): number => upstream.counts.SayHello - before;
    // A held call settles only once it is over; one that settled without reaching the node was refused.
    await waitUntil(() => reached() + calls.filter((c) => c.settled).length >= n, WAIT_MS, () => `${n} held calls reached the node or ended (${reached()} reached)`);
    return { calls, reached: reached() };
  }

  /**
   * What the route admits now: `conn` held calls must all reach the node and one more must be refused; then they are
   * cancelled. A count leaked by an earlier call would refuse one of the held ones; a count released twice would
   * admit the extra one.
   */
  async function capacity(host: Host, conn: number): Promise<{ admitted: number; extra: number }> {
    const client = clients[host];
    const { calls, reached } = await openCalls(client, conn);
    const extra = await sayHello(client, 'extra');
    for (const call of calls) call.cancel();
    await Promise.all(calls.map((c) => c.status));
    return { admitted: reached, extra: extra.status.code };
  }

  /** capacity(), asked again for a while: releases after a reset or a lost connection happen as the gateway reads them. */
  async function eventuallyCapacity(host: Host, conn: number): Promise<{ admitted: number; extra: number }> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const seen = await capacity(host, conn);
      if ((seen.admitted === conn && seen.extra === REFUSED) || Date.now() > deadline) return seen;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async function assertPlainRouteServes(): Promise<void> {
    const result = await sayHelloServerStream(clients.plain, 'beside');
    assert.equal(result.status.code, GrpcCode.OK, result.status.details);
    assert.ok(result.messages.length > 0);
  }

  describe('admin API', () => {
    test('refuses unknown key variables in APISIX\'s words, a Redis policy, and missing required fields, writing nothing', async () => {
      const cases: [plugins: unknown, message: RegExp][] = [
        [{ 'limit-req': { rate: 1, burst: 0, key: 'no_such_var' } }, /failed to check the configuration of plugin limit-req err: unknown variable "no_such_var"/],
        [{ 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 1, key_type: 'var_combination', key: '$remote_addr $bogus' } }, /failed to check the configuration of plugin limit-conn err: unknown variable "\$bogus"/],
        [{ 'limit-req': { rate: 1, burst: 0, key: 'remote_addr', policy: 'redis' } }, /"policy" validation failed: must be one of \["local"\]/],
        [{ 'limit-req': { rate: 0, burst: 0, key: 'remote_addr' } }, /"rate" validation failed/],
        [{ 'limit-conn': { conn: 1, burst: 0, key: 'remote_addr' } }, /"default_conn_delay" is required/],
      ];
      for (const [plugins, message] of cases) {
        const answer = await gw.admin('PUT', '/routes/invalid', { uri: SAY_HELLO, host: 'req.example', upstream: upstreamOf(node.port), plugins });
        assert.equal(answer.status, 400, JSON.stringify(answer.body));
        assert.match((answer.body as { error_msg: string }).error_msg, message);
      }
      assert.equal((await gw.admin('GET', '/routes/invalid')).status, 404, 'nothing was written');
    });

    test('lists both plugins and serves their schemas', async () => {
      const list = await gw.admin('GET', '/plugins/list');
      assert.equal(list.status, 200);
      const names = list.body as string[];
      assert.ok(names.includes('limit-req') && names.includes('limit-conn'), JSON.stringify(names));
      for (const name of ['limit-req', 'limit-conn'] as const) {
        const schema = await gw.admin('GET', `/plugins/${name}`);
        assert.equal(schema.status, 200);
        assert.deepEqual(schema.body, JSON.parse(JSON.stringify(PluginsSchema.properties[name])));
      }
    });
  });

  describe('limit-req', () => {
    test('calls beyond rate + burst get RESOURCE_EXHAUSTED with rejected_msg, trailers-only, and never reach the node', async () => {
      await putRoute('req', 'req', { 'limit-req': { rate: 0.01, burst: 2, nodelay: true, key: 'remote_addr', rejected_msg: 'too fast' } });
      const callsBefore = node.counts.SayHello;
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => sayHello(clients.req, `r${i}`)));
      const served = results.filter((r) => r.status.code === GrpcCode.OK);
      const refused = results.filter((r) => r.status.code === GrpcCode.RESOURCE_EXHAUSTED);
      assert.equal(served.length, 3, 'the first call and a burst of 2');
      assert.equal(refused.length, 3);
      for (const r of refused) {
        assert.equal(r.status.details, 'too fast');
        assert.equal(r.headers, undefined, 'trailers-only');
      }
      assert.equal(node.counts.SayHello - callsBefore, 3, 'only the admitted calls reached the node');
      await assertPlainRouteServes();
    });

    test('a call within the burst is held until its turn and then served', async () => {
      await putRoute('req', 'req', { 'limit-req': { rate: 4, burst: 1, key: 'remote_addr' } });
      const [first, second] = await Promise.all([sayHello(clients.req, 'a'), sayHello(clients.req, 'b')]);
      assert.equal(first.status.code, GrpcCode.OK, first.status.details);
      assert.equal(second.status.code, GrpcCode.OK, second.status.details);
      assert.deepEqual([first.message, second.message].sort(), ['Hello a', 'Hello b']);
    });

    test('a held call is not forwarded while it waits: a client deadline within the wait ends it before the node sees it', async () => {
      // rate 0.05: the second call waits 20 s for its turn; its client gives up after 500 ms.
      await putRoute('req', 'req', { 'limit-req': { rate: 0.05, burst: 1, key: 'remote_addr' } });
      const callsBefore = node.counts.SayHello;
      assert.equal((await sayHello(clients.req, 'first')).status.code, GrpcCode.OK);
      const late = await sayHello(clients.req, 'held', new Metadata(), { deadline: Date.now() + 500 });
      assert.equal(late.status.code, GrpcCode.DEADLINE_EXCEEDED);
      assert.equal(node.counts.SayHello - callsBefore, 1, 'the held call never reached the node');
      await assertPlainRouteServes();
      await gw.admin('DELETE', '/routes/req');
    });
  });

  describe('limit-conn', () => {
    test('conn 2, burst 0: a third concurrent call is refused; once the two have ended, calls pass again', async () => {
      await putRoute('conn', 'conn', { 'limit-conn': { conn: 2, burst: 0, default_conn_delay: 0.1, key: 'remote_addr', rejected_msg: 'busy' } });
      const client = clients.conn;
      const { calls, reached } = await openCalls(client, 2, node, 4000);
      assert.equal(reached, 2);
      const third = await sayHello(client, 'third');
      assert.equal(third.status.code, GrpcCode.RESOURCE_EXHAUSTED);
      assert.equal(third.status.details, 'busy');
      assert.equal(third.headers, undefined, 'trailers-only');
      for (const call of calls) assert.equal((await call.status).code, GrpcCode.OK, 'the held calls end by themselves, served');
      assert.deepEqual(await capacity('conn', 2), { admitted: 2, extra: GrpcCode.RESOURCE_EXHAUSTED });
      await assertPlainRouteServes();
    });

    test('calls cancelled by their client give their places back', async () => {
      await putRoute('conn', 'conn', { 'limit-conn': { conn: 2, burst: 0, default_conn_delay: 0.1, key: 'remote_addr' } });
      const client = clients.conn;
      const { calls } = await openCalls(client, 2);
      const third = await sayHello(client, 'third');
      assert.equal(third.status.code, GrpcCode.RESOURCE_EXHAUSTED);
      assert.equal(third.status.details, 'too many concurrent calls');
      for (const call of calls) call.cancel();
      for (const call of calls) assert.equal((await call.status).code, GrpcCode.CANCELLED);
      assert.deepEqual(await eventuallyCapacity('conn', 2), { admitted: 2, extra: GrpcCode.RESOURCE_EXHAUSTED });
    });

    test('a call within the burst waits, counted, then goes on; one beyond conn + burst is refused', async () => {
      await putRoute('conn', 'conn', { 'limit-conn': { conn: 1, burst: 1, default_conn_delay: 0.2, only_use_default_delay: true, key: 'remote_addr' } });
      const client = clients.conn;
      const { calls } = await openCalls(client, 1);
      const { calls: delayed, reached } = await openCalls(client, 1);
      assert.equal(reached, 1, 'the call over conn went on after its delay');
      assert.equal((await sayHello(client, 'third')).status.code, GrpcCode.RESOURCE_EXHAUSTED);
      for (const call of [...calls, ...delayed]) call.cancel();
      await Promise.all([...calls, ...delayed].map((c) => c.status));
      await gw.admin('DELETE', '/routes/conn');
    });

    test('a call cancelled while it waits in the burst gives its place back', async () => {
      // default_conn_delay 30 s: the call over conn waits at the gateway until its client gives up.
      await putRoute('conn', 'conn', { 'limit-conn': { conn: 1, burst: 1, default_conn_delay: 30, only_use_default_delay: true, key: 'remote_addr' } });
      const client = clients.conn;
      const { calls } = await openCalls(client, 1);
      const callsBefore = node.counts.SayHello;
      const waiting = openCall(client);
      assert.equal((await sayHello(client, 'third')).status.code, GrpcCode.RESOURCE_EXHAUSTED, 'the waiting call is counted');
      waiting.cancel();
      assert.equal((await waiting.status).code, GrpcCode.CANCELLED);
      for (const call of calls) call.cancel();
      await Promise.all(calls.map((c) => c.status));
      assert.equal(node.counts.SayHello, callsBefore, 'the waiting call never reached the node');
      // Both places are free again: a call goes straight on (a kept place would make it wait 30 s).
      const { calls: after, reached } = await openCalls(client, 1);
      assert.equal(reached, 1);
      for (const call of after) call.cancel();
      await Promise.all(after.map((c) => c.status));
      await gw.admin('DELETE', '/routes/conn');
    });

    test('a call answered for want of a node gives its place back', async () => {
      await putRoute('conn-none', 'none', { 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr' } }, { upstream: { scheme: 'grpc', type: 'roundrobin', nodes: { [`127.0.0.1:${node.port}`]: 0 } } });
      for (let i = 0; i < 3; i++) {
        const result = await sayHello(clients.none, `n${i}`);
        assert.equal(result.status.code, GrpcCode.UNAVAILABLE);
        assert.match(result.status.details, /no valid upstream node/);
      }
      await gw.admin('DELETE', '/routes/conn-none');
    });

    test('a call refused by a plugin after limit-conn gives its place back', async () => {
      await putRoute('conn-count', 'conn-count', {
        'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr', rejected_msg: 'limit-conn refused' },
        'limit-count': { count: 1, time_window: 3600, rejected_msg: 'limit-count refused', show_limit_quota_header: false },
      });
      const client = clients['conn-count'];
      assert.equal((await sayHello(client, 'first')).status.code, GrpcCode.OK);
      for (let i = 0; i < 3; i++) {
        const result = await sayHello(client, `again-${i}`);
        assert.equal(result.status.code, GrpcCode.RESOURCE_EXHAUSTED);
        assert.equal(result.status.details, 'limit-count refused', 'limit-conn admitted it: the refused calls before it were released');
      }
      await gw.admin('DELETE', '/routes/conn-count');
    });

    test('calls that fail upstream give their places back: a node that dies under held calls, then one that refuses connections', async () => {
      const doomed = await startGreeterNode({ id: 'doomed' });
      try {
        await putRoute('conn-up', 'up', { 'limit-conn': { conn: 2, burst: 0, default_conn_delay: 0.1, key: 'remote_addr' } }, {}, doomed.port);
        const client = clients.up;
        const { calls, reached } = await openCalls(client, 2, doomed);
        assert.equal(reached, 2);
        assert.equal((await sayHello(client, 'third')).status.code, GrpcCode.RESOURCE_EXHAUSTED);
        await doomed.close(0);
        for (const call of calls) assert.equal((await call.status).code, GrpcCode.UNAVAILABLE, 'the node went away under the call');
        for (let round = 0; round < 3; round++) {
          const both = await Promise.all([sayHello(client, 'a'), sayHello(client, 'b')]);
          assert.deepEqual(both.map((r) => r.status.code), [GrpcCode.UNAVAILABLE, GrpcCode.UNAVAILABLE], 'both admitted: no place was kept by a failed call');
        }
      } finally {
        await doomed.close(0);
        await gw.admin('DELETE', '/routes/conn-up');
      }
    });
  });

  describe('under a frame-level flood', () => {
    const CONN = 5;
    const BATCHES = 6;
    const PER_BATCH = 40;

    test('streams opened and reset (or dropped with their connection) leak no count; calls on another route succeed beside them', { timeout: 120_000 }, async () => {
      await putRoute('flood', 'flood', { 'limit-conn': { conn: CONN, burst: 0, default_conn_delay: 0.1, key: 'remote_addr' } });
      const [host, port] = gw.h2cAddress.split(':');
      const floodCallsBefore = node.counts.SayHello;
      const beside: Promise<{ status: { code: number } }>[] = [];
      for (let batch = 0; batch < BATCHES; batch++) {
        const attacker = await AttackClient.open({ host: host ?? '127.0.0.1', port: Number(port) });
        try {
          await attacker.waitForSettings();
          const kept: number[] = [];
          attacker.batch(() => {
            for (let i = 0, id = 1; i < PER_BATCH; i++, id += 2) {
              attacker.headers(id, grpcRequestHeaders('flood.example', SAY_HELLO, [[DELAY_HEADER, String(HOLD_MS)]]));
              attacker.data(id, Buffer.alloc(5), true);
              // Every third stream is reset in the same write (rapid reset); the others wait for the gateway.
              if (i % 3 === 0) attacker.rstStream(id);
              else kept.push(id);
            }
          });
          beside.push(sayHelloServerStream(clients.plain, `beside-${batch}`));
          // At most CONN of the kept streams are admitted (held at the node); every other one is refused at once.
          await attacker.waitFor(() => kept.filter((id) => attacker.streamEnded(id)).length >= kept.length - CONN, `batch ${batch}: refusals`, WAIT_MS);
          for (const id of kept.filter((k) => attacker.streamEnded(k))) {
            assert.equal(attacker.dataBytes.get(id), undefined, `stream ${id}: a refusal carries no DATA (trailers-only)`);
          }
          // Even batches reset the admitted streams (the PING's answer says the gateway read the resets); odd ones
          // drop the connection under them.
          if (batch % 2 === 0) {
            attacker.batch(() => {
              for (const id of kept) attacker.rstStream(id);
              attacker.ping();
            });
            await attacker.waitFor(() => attacker.received(FrameType.PING).some((f) => (f.flags & FrameFlag.ACK) !== 0), `batch ${batch}: PING answered`, WAIT_MS);
          }
        } finally {
          attacker.destroy();
        }
      }
      for (const outcome of await Promise.all(beside)) assert.equal(outcome.status.code, GrpcCode.OK);
      assert.ok(node.counts.SayHello > floodCallsBefore, 'admitted flood calls reached the node');
      assert.deepEqual(await eventuallyCapacity('flood', CONN), { admitted: CONN, extra: GrpcCode.RESOURCE_EXHAUSTED });
      await assertPlainRouteServes();
    });
  });
});
