/**
 * jwt-auth's decisions with tokens made here by node:crypto (RFC 7519 / 7515): HS256, HS512, RS256 and ES256
 * signatures from the consumer's credential pass; a wrong secret, a tampered payload, `alg: none` or another
 * algorithm than the consumer's, an unknown or missing key claim, an expired or not-yet-valid token (beyond the
 * grace period) are refused with APISIX's texts. The clock is set by the test.
 */
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { describe, test } from 'node:test';
import { ConsumerTable } from '../../data-plane/plugins/consumers.ts';
import { compileJwtAuth } from '../../data-plane/plugins/jwt-auth.ts';
import type { PluginRequest } from '../../data-plane/plugins/request.ts';
import { GrpcStatus } from '../../shared/grpc-status.ts';
import type { ConsumerConf } from '../../shared/schema/consumer.ts';
import { validateResource } from '../../shared/validate.ts';
import { accessNow } from '../helpers/plugin-request.ts';

const NOW_S = 1_800_000_000;
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const pem = (key: KeyObject): string => key.export({ type: 'spki', format: 'pem' }).toString();

const consumers = new ConsumerTable(
  (
    [
      { username: 'hs', plugins: { 'jwt-auth': { key: 'hs-key', secret: 'hs-secret' } } },
      { username: 'hs512', plugins: { 'jwt-auth': { key: 'hs512-key', secret: Buffer.from('b64-secret').toString('base64'), base64_secret: true, algorithm: 'HS512' } } },
      { username: 'rs', plugins: { 'jwt-auth': { key: 'rs-key', public_key: pem(rsa.publicKey), algorithm: 'RS256', lifetime_grace_period: 30 } } },
      { username: 'es', plugins: { 'jwt-auth': { key: 'es-key', public_key: pem(ec.publicKey), algorithm: 'ES256' } } },
    ] as ConsumerConf[]
  ).map((value) => ({ id: value.username, value, modRevision: '1' })),
);

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function token(alg: string, payload: Record<string, unknown>, signer: (input: string) => Buffer): string {
  const input = `${b64({ alg, typ: 'JWT' })}.${b64(payload)}`;
  return `${input}.${signer(input).toString('base64url')}`;
}

const hs = (secret: string | Buffer, hash = 'sha256') => (input: string): Buffer => createHmac(hash, secret).update(input).digest();
const rs = (input: string): Buffer => sign('sha256', Buffer.from(input), rsa.privateKey);
const es = (input: string): Buffer => sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });

function call(authorization: string | undefined): { code: number | undefined; message: string | undefined; consumer: string | undefined; upstream: string[] } {
  const upstream: string[] = [];
  const request: PluginRequest = {
    routeId: 'r1',
    path: '/a.B/C',
    host: 'gw',
    remoteAddress: '10.0.0.1',
    remotePort: 1,
    localAddress: '10.0.0.2',
    localPort: 9081,
    consumers,
    consumer: undefined,
    upstream: undefined,
    header: (name) => (name === 'authorization' ? authorization : undefined),
    setUpstreamHeader: (name, value) => void upstream.push(`${name}=${value}`),
    removeUpstreamHeader: (name) => void upstream.push(`-${name}`),
    addUpstreamHeader: () => undefined,
    onDone: () => undefined,
  };
  const verdict = accessNow(compileJwtAuth({ hide_credentials: true }, () => NOW_S * 1000), request);
  return { code: verdict?.error?.grpcStatus, message: verdict?.error?.publicMessage, consumer: request.consumer?.username, upstream };
}

describe('jwt-auth', () => {
  test('tokens signed with the consumer credential pass, with or without Bearer, and name the consumer upstream', () => {
    const ok = call(`Bearer ${token('HS256', { key: 'hs-key', exp: NOW_S + 60 }, hs('hs-secret'))}`);
    assert.deepEqual(ok, { code: undefined, message: undefined, consumer: 'hs', upstream: ['x-consumer-username=hs', '-authorization'] });
    assert.equal(call(token('HS512', { key: 'hs512-key' }, hs('b64-secret', 'sha512'))).consumer, 'hs512');
    assert.equal(call(token('RS256', { key: 'rs-key', nbf: NOW_S - 1 }, rs)).consumer, 'rs');
    assert.equal(call(token('ES256', { key: 'es-key' }, es)).consumer, 'es');
  });

  test("refusals: missing, malformed, no or unknown key claim, wrong signature, another algorithm than the consumer's", () => {
    const refused = (authorization: string | undefined): string | undefined => {
      const result = call(authorization);
      assert.equal(result.code, GrpcStatus.UNAUTHENTICATED, authorization);
      assert.equal(result.consumer, undefined);
      return result.message;
    };
    assert.equal(refused(undefined), 'Missing JWT token in request');
    assert.equal(refused('not-a-jwt'), 'JWT token invalid');
    assert.equal(refused(`${b64({ alg: 'HS256' })}.!!!.x`), 'JWT token invalid');
    assert.equal(refused(token('HS256', { sub: 'x' }, hs('hs-secret'))), 'missing user key in JWT token');
    assert.equal(refused(token('HS256', { key: 'nobody' }, hs('hs-secret'))), 'Invalid user key in JWT token');
    assert.equal(refused(token('HS256', { key: 'hs-key' }, hs('wrong-secret'))), 'failed to verify jwt');
    const good = token('HS256', { key: 'hs-key' }, hs('hs-secret')).split('.');
    assert.equal(refused(`${good[0] ?? ''}.${b64({ key: 'hs-key', admin: true })}.${good[2] ?? ''}`), 'failed to verify jwt', 'tampered payload');
    assert.equal(refused(`${b64({ alg: 'none' })}.${b64({ key: 'hs-key' })}.`), 'failed to verify jwt', 'alg none');
    // An HMAC keyed with the RSA consumer's public key (the classic algorithm confusion) does not pass.
    assert.equal(refused(token('HS256', { key: 'rs-key' }, hs(pem(rsa.publicKey)))), 'failed to verify jwt');
  });

  test('exp and nbf are checked, give or take the consumer lifetime_grace_period', () => {
    assert.equal(call(token('HS256', { key: 'hs-key', exp: NOW_S - 1 }, hs('hs-secret'))).message, 'failed to verify jwt', 'expired');
    assert.equal(call(token('HS256', { key: 'hs-key', nbf: NOW_S + 5 }, hs('hs-secret'))).message, 'failed to verify jwt', 'not yet valid');
    assert.equal(call(token('RS256', { key: 'rs-key', exp: NOW_S - 20 }, rs)).consumer, 'rs', 'within the 30 s grace');
    assert.equal(call(token('RS256', { key: 'rs-key', exp: NOW_S - 31 }, rs)).message, 'failed to verify jwt', 'beyond the grace');
    assert.equal(call(token('HS256', { key: 'hs-key', exp: 'soon' }, hs('hs-secret'))).message, 'failed to verify jwt', 'a non-numeric exp');
  });

  test('the admin API refuses a credential that cannot verify: no secret, no or a wrong public key', () => {
    const check = (jwt: Record<string, unknown>): string => {
      const result = validateResource('consumers', { username: 'c', plugins: { 'jwt-auth': jwt } });
      return result.ok ? 'ok' : result.error;
    };
    assert.match(check({ key: 'k' }), /"secret" is required for HS256/);
    assert.match(check({ key: 'k', algorithm: 'RS256' }), /"public_key" is required for RS256/);
    assert.match(check({ key: 'k', algorithm: 'RS256', public_key: 'junk' }), /not a PEM public key/);
    assert.match(check({ key: 'k', algorithm: 'ES256', public_key: pem(rsa.publicKey) }), /ES256 needs an EC P-256/);
    assert.match(check({ key: 'k', secret: 'not base64!', base64_secret: true }), /not base64/);
    assert.equal(check({ key: 'k', secret: 's' }), 'ok');
  });
});
