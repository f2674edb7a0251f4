/**
 * Issue #16: `api-breaker` keyed on gRPC statuses, through the admin API, etcd and the data plane with grpc-js
 * clients and a real greeter node (which answers the status a call asks for in `x-greeter-status`). Unhealthy
 * answers, the node's or the gateway's own (a node that refuses connections), open the breaker; while open, calls
 * are answered trailers-only with the configured status and message and never reach the node; once it lets calls
 * through again, a healthy answer closes it. Waiting for the break to pass polls (bounded); nothing asserts a time.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Metadata, status as GrpcCode, type Client } from '@grpc/grpc-js';
import { greeterClient, sayHello, startGreeterNode, STATUS_HEADER, type GreeterNode, type UnaryOutcome } from '../helpers/greeter.ts';
import { freePort } from '../helpers/ports.ts';
import { putRouteAndWait, startGateway, type GatewayFixture } from './gateway-fixture.ts';

const SAY_HELLO = '/helloworld.Greeter/SayHello';
/** The first break is 2 s; polling for its end gives up well after. */
const REOPEN_LIMIT_MS = 15_000;

describe('api-breaker', () => {
  let gw: GatewayFixture;
  let node: GreeterNode;
  let client: Client;
  const opened: { close(): unknown }[] = [];

  before(async () => {
    opened.push((gw = await startGateway()));
    opened.push((node = await startGreeterNode({ id: 'node' })));
    opened.push((client = greeterClient(gw.h2cAddress)));
  });

  after(async () => {
    for (const resource of opened.reverse()) await resource.close();
  });

  const breaker = {
    break_response_code: 503,
    break_response_body: 'breaker open',
    break_response_headers: [{ key: 'x-breaker', value: 'open' }],
    unhealthy: { grpc_statuses: [14], failures: 2 },
    healthy: { successes: 1 },
  };

  const asking = (status: number): Metadata => {
    const metadata = new Metadata();
    metadata.set(STATUS_HEADER, String(status));
    return metadata;
  };

  /** Calls until one is not refused by the breaker (bounded); returns it. */
  async function untilLetThrough(metadata = new Metadata()): Promise<UnaryOutcome> {
    const deadline = Date.now() + REOPEN_LIMIT_MS;
    for (;;) {
      const r = await sayHello(client, 'probe', metadata);
      if (r.status.details !== 'breaker open') return r;
      assert.ok(Date.now() < deadline, 'the breaker never let a call through');
      await sleep(200);
    }
  }

  test("the node's UNAVAILABLE answers open it: calls are refused trailers-only without reaching the node, until a healthy answer closes it", async () => {
    await putRouteAndWait(gw, 'breaker', { uri: SAY_HELLO, upstream: { nodes: { [`127.0.0.1:${String(node.port)}`]: 1 } }, plugins: { 'api-breaker': breaker } });
    assert.equal((await sayHello(client, 'ok')).status.code, GrpcCode.OK);
    assert.equal((await sayHello(client, 'x', asking(GrpcCode.INVALID_ARGUMENT))).status.code, GrpcCode.INVALID_ARGUMENT, 'not an unhealthy status');
    for (let i = 0; i < 2; i++) assert.equal((await sayHello(client, 'x', asking(GrpcCode.UNAVAILABLE))).status.code, GrpcCode.UNAVAILABLE);
    const callsBefore = node.totalCalls;
    for (let i = 0; i < 5; i++) {
      const refused = await sayHello(client, 'healthy but refused');
      assert.equal(refused.status.code, GrpcCode.UNAVAILABLE);
      assert.equal(refused.status.details, 'breaker open');
      assert.equal(refused.headers, undefined, 'trailers-only');
      assert.equal(refused.status.metadata.get('x-breaker')[0], 'open');
    }
    assert.equal(node.totalCalls, callsBefore, 'no call reached the node while the breaker was open');
    const through = await untilLetThrough();
    assert.equal(through.status.code, GrpcCode.OK, 'half-open: a call goes through, and its healthy answer closes the breaker');
    assert.equal((await sayHello(client, 'x', asking(GrpcCode.UNAVAILABLE))).status.code, GrpcCode.UNAVAILABLE);
    assert.equal((await sayHello(client, 'after one failure')).status.code, GrpcCode.OK, 'closed: one failure is not enough to open it again');
  });

  test("the gateway's own UNAVAILABLE (a node that refuses connections) opens it too", async () => {
    const dead = await freePort();
    await putRouteAndWait(gw, 'breaker', { uri: SAY_HELLO, upstream: { nodes: { [`127.0.0.1:${String(dead)}`]: 1 } }, plugins: { 'api-breaker': breaker } });
    for (let i = 0; i < 2; i++) {
      const failed = await sayHello(client, 'x');
      assert.equal(failed.status.code, GrpcCode.UNAVAILABLE);
      assert.notEqual(failed.status.details, 'breaker open', 'the gateway could not reach the node');
    }
    const refused = await sayHello(client, 'x');
    assert.equal(refused.status.details, 'breaker open');
    // The route changed (its node is the live one): a new build of the route, whose breaker starts closed.
    await putRouteAndWait(gw, 'breaker', { uri: SAY_HELLO, upstream: { nodes: { [`127.0.0.1:${String(node.port)}`]: 1 } }, plugins: { 'api-breaker': breaker } });
    assert.equal((await untilLetThrough()).status.code, GrpcCode.OK);
  });

  test('admin: a break_response_code out of range and an unknown grpc status are refused; the plugin is listed', async () => {
    const refused = async (conf: unknown): Promise<void> => {
      const res = await gw.admin('PUT', '/routes/bad', { uri: SAY_HELLO, upstream: { nodes: { '127.0.0.1:1': 1 } }, plugins: { 'api-breaker': conf } });
      assert.equal(res.status, 400, JSON.stringify(res.body));
    };
    await refused({ break_response_code: 600 });
    await refused({ break_response_code: 503, unhealthy: { grpc_statuses: [17] } });
    await refused({ break_response_code: 503, max_breaker_sec: 1 });
    const list = await gw.admin('GET', '/plugins/list');
    assert.ok((list.body as string[]).includes('api-breaker'));
  });
});
