/**
 * Large unary messages cross the gateway whole and unchanged: 16 MiB and 64 MiB requests and responses between
 * real grpc-js clients and servers with unlimited message sizes, h2c → grpc and TLS → grpcs. The gateway
 * never buffers a message whole (docs/architecture.md) and has no message size cap unless a route configures
 * `grpc-limits`, so what both ends accept must pass. Bytes are checked by sha256 on both sides.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import { status as GrpcCode, type Client } from '@grpc/grpc-js';
import { startGateway, type GatewayFixture } from '../e2e/gateway-fixture.ts';
import { makeCert } from '../helpers/certs.ts';
import { greeterClient } from '../helpers/greeter.ts';
import {
  TEST_TIMEOUT_MS,
  UNLIMITED_MESSAGES,
  callReverse,
  putRoute,
  sha256,
  startBytesServer,
  within,
  type BytesServer,
} from './flow-kit.ts';

const MiB = 1024 * 1024;
const CALL_LIMIT_MS = 20_000;

const LEGS = [
  { down: 'h2c', up: 'grpc' },
  { down: 'tls', up: 'grpcs' },
] as const;

describe('large messages through the gateway', { timeout: TEST_TIMEOUT_MS * 6 }, () => {
  let gw: GatewayFixture;
  let servers: BytesServer[] = [];
  let clients: Client[] = [];

  before(async () => {
    gw = await startGateway();
  });
  afterEach(async () => {
    for (const client of clients) client.close();
    await Promise.all(servers.map((s) => s.close()));
    clients = [];
    servers = [];
  });
  after(async () => gw.close());

  for (const leg of LEGS) {
    for (const size of [16, 64]) {
      test(`a ${size} MiB request and a ${size} MiB response pass unchanged, ${leg.down} client → ${leg.up} upstream`, { timeout: TEST_TIMEOUT_MS }, async () => {
        const server = await startBytesServer(leg.up === 'grpcs' ? await makeCert({ sans: ['localhost', '127.0.0.1'] }) : undefined);
        servers.push(server);
        await putRoute(gw, 'large', {
          uri: '/flow.Bytes/*',
          upstream: { scheme: leg.up, type: 'roundrobin', nodes: { [server.address]: 1 } },
        });
        const client =
          leg.down === 'h2c'
            ? greeterClient(gw.h2cAddress, { channelOptions: UNLIMITED_MESSAGES })
            : greeterClient(gw.tlsAddress, { tls: { rootCert: gw.defaultCert.cert }, channelOptions: UNLIMITED_MESSAGES });
        clients.push(client);

        const request = randomBytes(size * MiB);
        const requestHash = sha256(request);
        const outcome = await within(callReverse(client, request), CALL_LIMIT_MS, `${size} MiB unary call`);
        assert.equal(outcome.status.code, GrpcCode.OK, `status ${outcome.status.code}: ${outcome.status.details}`);
        assert.deepEqual(server.received, [{ sha256: requestHash, length: request.length }], 'the upstream got other bytes');
        assert.ok(outcome.reply !== undefined, 'no reply');
        assert.equal(outcome.reply.length, request.length, 'reply length');
        assert.equal(sha256(outcome.reply), sha256(request.reverse()), 'the client got other bytes than the upstream sent');
      });
    }
  }
});
