/**
 * api-breaker's counting with the clock set by the test: every `failures`-th unhealthy answer opens the breaker for
 * 2, 4, … seconds (capped), healthy answers close it for good, cancelled calls count for nothing, and HTTP statuses
 * are matched through gRPC's HTTP mapping.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileApiBreaker } from '../../data-plane/plugins/api-breaker.ts';
import { GrpcStatus } from '../../shared/grpc-status.ts';
import type { ApiBreakerConf } from '../../shared/schema/plugin-policies.ts';
import { accessNow, testRequest } from '../helpers/plugin-request.ts';

/** One call through the breaker: its verdict's error code, or ends the call with `status` when admitted. */
function breaker(conf: ApiBreakerConf): { call(status: number): string | undefined; at: (ms: number) => void } {
  let now = 1_000_000;
  const plugin = compileApiBreaker(conf, () => now);
  return {
    call(status) {
      const request = testRequest();
      const verdict = accessNow(plugin, request);
      if (verdict?.error !== undefined) return verdict.error.code;
      for (const release of request.releases) release(status);
      return undefined;
    },
    at: (ms) => void (now += ms),
  };
}

describe('api-breaker', () => {
  test('opens after `failures` unhealthy answers for 2 s, then 4 s after as many more, and closes after `successes` healthy ones', () => {
    const b = breaker({ break_response_code: 503, unhealthy: { grpc_statuses: [14], failures: 2 }, healthy: { successes: 2 } });
    assert.equal(b.call(GrpcStatus.UNAVAILABLE), undefined);
    assert.equal(b.call(GrpcStatus.UNAVAILABLE), undefined);
    assert.equal(b.call(GrpcStatus.OK), 'CIRCUIT_OPEN', 'open after 2 failures');
    b.at(1999);
    assert.equal(b.call(GrpcStatus.OK), 'CIRCUIT_OPEN');
    b.at(2);
    assert.equal(b.call(GrpcStatus.UNAVAILABLE), undefined, 'half-open after 2 s: calls go through');
    assert.equal(b.call(GrpcStatus.UNAVAILABLE), undefined);
    b.at(3999);
    assert.equal(b.call(GrpcStatus.OK), 'CIRCUIT_OPEN', 'the 4th failure: open for 4 s');
    b.at(2);
    assert.equal(b.call(GrpcStatus.OK), undefined);
    assert.equal(b.call(GrpcStatus.OK), undefined, 'two successes close it');
    assert.equal(b.call(GrpcStatus.UNAVAILABLE), undefined);
    assert.equal(b.call(GrpcStatus.OK), undefined, 'one failure after closing: counted afresh, still closed');
  });

  test('a healthy answer between failures resets the successes, not the failures; cancelled calls count for nothing', () => {
    const b = breaker({ break_response_code: 502, unhealthy: { grpc_statuses: [14, 4], failures: 3 }, healthy: { successes: 2 } });
    b.call(GrpcStatus.UNAVAILABLE);
    b.call(GrpcStatus.OK);
    b.call(GrpcStatus.DEADLINE_EXCEEDED);
    b.call(GrpcStatus.CANCELLED);
    b.call(-1);
    assert.equal(b.call(GrpcStatus.UNAVAILABLE), undefined);
    assert.equal(b.call(GrpcStatus.OK), 'CIRCUIT_OPEN', 'three unhealthy answers (one success between them did not close it)');
  });

  test('the break time is capped by max_breaker_sec; http_statuses match through gRPC\'s HTTP mapping', () => {
    const b = breaker({ break_response_code: 503, max_breaker_sec: 3, unhealthy: { http_statuses: [500], failures: 1 } });
    for (let i = 0; i < 5; i++) {
      b.at(10_000);
      assert.equal(b.call(GrpcStatus.INTERNAL), undefined, 'INTERNAL is HTTP 500');
    }
    b.at(2999);
    assert.equal(b.call(GrpcStatus.OK), 'CIRCUIT_OPEN');
    b.at(2);
    assert.equal(b.call(GrpcStatus.UNAVAILABLE), undefined, 'capped at 3 s; UNAVAILABLE (503) is not in http_statuses [500]');
  });

  test('the answer while open: break_response_code mapped to a gRPC status, the body as message, the headers added', () => {
    let now = 0;
    const plugin = compileApiBreaker(
      { break_response_code: 429, break_response_body: 'upstream is resting', break_response_headers: [{ key: 'X-Breaker', value: 'open' }], unhealthy: { failures: 1 } },
      () => now,
    );
    const first = testRequest();
    assert.equal(accessNow(plugin, first), undefined);
    for (const release of first.releases) release(GrpcStatus.UNAVAILABLE);
    now += 1;
    const verdict = accessNow(plugin, testRequest());
    assert.equal(verdict?.error?.grpcStatus, GrpcStatus.UNAVAILABLE, '429 → UNAVAILABLE');
    assert.equal(verdict.error.publicMessage, 'upstream is resting');
    assert.deepEqual(verdict.fields, ['x-breaker', 'open']);
  });
});
