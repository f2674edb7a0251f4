/**
 * docs/errors.md is the reference of the gateway's stable error codes: this test keeps it and shared/errors.ts in
 * step (as Fastify's errors.test.js does for its docs). Every code has one row, every row names a real code, and each
 * row's class, gRPC status and HTTP status are what an instance of that class carries.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  AccessDenied,
  AdminBadRequest,
  AdminForbidden,
  AdminMethodNotAllowed,
  AdminRouteNotFound,
  AuthenticationFailed,
  BadRequest,
  ConfigError,
  DeadlineExceeded,
  FaultInjected,
  GatewayErrorCode,
  InvalidConfiguration,
  JsonMappingError,
  KeyNotFound,
  MessageTooLarge,
  NoHealthyNode,
  RateLimited,
  RateLimitStoreUnavailable,
  CircuitOpen,
  RewriteFailed,
  RouteNotFound,
  SecretDecryptFailed,
  StoreConflict,
  StoreUnavailable,
  Unauthorized,
  UnsupportedMediaType,
  UnsupportedResourceType,
  UpstreamConnectError,
  UpstreamProtocolError,
  UpstreamReset,
  UpstreamTimeout,
  type GatewayError,
} from '../../shared/errors.ts';
import { GrpcStatus } from '../../shared/grpc-status.ts';
import { Overloaded } from '../../data-plane/limits/memory-watermark.ts';

/** One instance of every error class, built as the gateway builds it (default statuses). */
const instances: readonly GatewayError[] = [
  new RouteNotFound('/a.B/C'),
  new NoHealthyNode('up-1'),
  new UpstreamConnectError('127.0.0.1:1', new Error('ECONNREFUSED')),
  new UpstreamReset('reset'),
  new UpstreamProtocolError('not gRPC'),
  new DeadlineExceeded('deadline'),
  new UpstreamTimeout('idle'),
  new UnsupportedMediaType('text/html'),
  new MessageTooLarge('request', 10, 5),
  new BadRequest('bad'),
  new Overloaded(),
  new AccessDenied('Your IP address is not allowed'),
  new AuthenticationFailed('Missing API key in request'),
  new RateLimited('quota exceeded'),
  new RateLimitStoreUnavailable('redis 127.0.0.1:6379/0 is unreachable'),
  new CircuitOpen('circuit breaker is open', 14, 503),
  new FaultInjected('injected'),
  new RewriteFailed('route 1: the rewritten path is not a gRPC path: "x"'),
  new JsonMappingError('field "user.age": expected an integer, got "x"'),
  new InvalidConfiguration('bad'),
  new AdminBadRequest('wrong route id'),
  new KeyNotFound('/apisix/routes/1'),
  new Unauthorized('missing apikey'),
  new UnsupportedResourceType('plugins'),
  new AdminRouteNotFound(),
  new AdminMethodNotAllowed('POST', 'consumer'),
  new StoreConflict('/apisix/routes/1'),
  new AdminForbidden('10.0.0.1'),
  new SecretDecryptFailed('key', 1),
  new StoreUnavailable(new Error('timeout')),
  new ConfigError('bad'),
];

interface Row {
  code: string;
  className: string;
  grpcName: string;
  grpcNumber: number;
  httpStatus: number;
}

/** The rows of the doc's tables: `| \`CODE\` | Class | NAME (n) | http | when |`. */
function documentedRows(): Row[] {
  const text = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'errors.md'), 'utf8');
  const rows: Row[] = [];
  for (const line of text.split('\n')) {
    const match = /^\| `([A-Z_]+)` \| (\w+) \| ([A-Z_]+) \((\d+)\) \| (\d{3}) \|/.exec(line);
    if (match === null) continue;
    const [, code, className, grpcName, grpcNumber, httpStatus] = match;
    if (code === undefined || className === undefined || grpcName === undefined || grpcNumber === undefined || httpStatus === undefined) continue;
    rows.push({ code, className, grpcName, grpcNumber: Number(grpcNumber), httpStatus: Number(httpStatus) });
  }
  return rows;
}

describe('docs/errors.md', () => {
  const rows = documentedRows();
  const byCode = new Map(rows.map((row) => [row.code, row]));

  it('documents every error code once, and no code that does not exist', () => {
    const codes = Object.values(GatewayErrorCode);
    assert.deepEqual(rows.map((row) => row.code).sort(), [...codes].sort());
    assert.equal(byCode.size, rows.length, 'a code has two rows');
  });

  it('has an error class for every code', () => {
    assert.deepEqual(instances.map((err) => err.code).sort(), Object.values(GatewayErrorCode).sort());
  });

  it("gives each code its class's name and statuses", () => {
    const statusNames = new Map<number, string>(Object.entries(GrpcStatus).map(([name, value]) => [value, name]));
    for (const err of instances) {
      const row = byCode.get(err.code);
      assert.ok(row, `${err.code} is not documented`);
      assert.equal(row.className, err.name, `${err.code}: class`);
      assert.equal(row.grpcNumber, err.grpcStatus, `${err.code}: gRPC status`);
      assert.equal(row.grpcName, statusNames.get(err.grpcStatus), `${err.code}: gRPC status name`);
      assert.equal(row.httpStatus, err.httpStatus, `${err.code}: HTTP status`);
    }
  });
});
