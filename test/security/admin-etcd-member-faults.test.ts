/**
 * What a failed etcd call says about the member it ran on (control-plane/store/etcd-member.ts), with the errors
 * made the way etcd3 makes them (castGrpcError over a grpc-js error). A wrong answer either keeps sending calls to
 * a hung member (silence taken for an answer) or takes healthy members out of service and fails calls that another
 * member would have served (a refusal by etcd, the same everywhere, taken for a member fault).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { castGrpcError } from 'etcd3';
import { AttemptTimeout, isSilent, memberFault } from '../../control-plane/store/etcd-member.ts';

function grpcError(code: number, details: string): Error {
  return castGrpcError(Object.assign(new Error(`${code} ${details}`), { code, details }));
}

describe('member fault classification', () => {
  test('a member that lets the deadline pass is silent, and its circuit opens', () => {
    assert.equal(memberFault(grpcError(4, 'DEADLINE_EXCEEDED: Deadline exceeded')), 'silent');
    assert.equal(memberFault(new AttemptTimeout('127.0.0.1:2379', 1_000)), 'silent');
    assert.equal(isSilent('silent'), true);
  });

  test('a member that refuses connections is unreachable, and its circuit opens', () => {
    assert.equal(memberFault(grpcError(14, 'UNAVAILABLE: No connection established')), 'unreachable');
    assert.equal(isSilent('unreachable'), true);
  });

  test('a member without a leader answered: the call moves on but the member is not blamed', () => {
    for (const message of ['etcdserver: no leader', 'etcdserver: request timed out', 'etcdserver: leader changed']) {
      assert.equal(memberFault(grpcError(14, `UNAVAILABLE: ${message}`)), 'answered', message);
    }
    assert.equal(memberFault(grpcError(8, 'RESOURCE_EXHAUSTED: etcdserver: too many requests')), 'answered');
    assert.equal(isSilent('answered'), false);
  });

  test('a refusal that every member would give is fatal and not retried elsewhere', () => {
    assert.equal(memberFault(grpcError(7, 'PERMISSION_DENIED: etcdserver: permission denied')), 'fatal');
    assert.equal(memberFault(grpcError(3, 'INVALID_ARGUMENT: etcdserver: request is too large')), 'fatal');
    assert.equal(memberFault(new TypeError('not an etcd error')), 'fatal');
    assert.equal(memberFault('a string'), 'fatal');
  });
});
