/**
 * Issue #11, case 9: `tls.verify: true` on a `grpcs` upstream worked only with public CAs, since nothing let the
 * operator name the CA of a private PKI. `apisix.ssl.ssl_trusted_certificate` (APISIX's key, which this gateway
 * already read for etcd) is now the CA bundle for verified upstreams too. A verified call to a node signed by that
 * CA succeeds; without the bundle, or with a certificate for another name, the call is UNAVAILABLE with the public
 * text only. A bundle that cannot be read stops the start with the key's name in the message.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import { startGreeter, type GreeterServer } from '../../examples/greeter-server.ts';
import { PublicMessage } from '../../shared/errors.ts';
import { makeCert, type CertAndKey } from '../helpers/certs.ts';
import { greeterClient, sayHello } from '../helpers/greeter.ts';
import { ADDRESS_PATTERN, TLS_ERROR_PATTERN, greeterYaml, makePrivateCa, startTestPlane, type PrivateCa, type TestPlane } from './tls-kit.ts';

describe('upstream CA for grpcs nodes with tls.verify: true (apisix.ssl.ssl_trusted_certificate)', () => {
  let dir: string;
  let caFile: string;
  let ca: PrivateCa;
  let defaultCert: CertAndKey;
  let signed: GreeterServer;
  let wrongName: GreeterServer;
  let plain: GreeterServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sec-upstream-ca-'));
    ca = await makePrivateCa('gateway test private CA');
    caFile = join(dir, 'ca.pem');
    await writeFile(caFile, ca.cert);
    defaultCert = await makeCert({ sans: ['localhost', '127.0.0.1'] });
    signed = await startGreeter({ id: 'signed', tls: await ca.issue(['localhost', '127.0.0.1']) });
    wrongName = await startGreeter({ id: 'wrong-name', tls: await ca.issue(['elsewhere.example']) });
    plain = await startGreeter({ id: 'plain' });
  });

  after(async () => {
    await signed.close();
    await wrongName.close();
    await plain.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** One call through a fresh plane whose route points at `node` (verify: true). */
  async function callThrough(node: GreeterServer, ssl: string | undefined): Promise<{ code: number; details: string; servedBy: string | undefined }> {
    const gw: TestPlane = await startTestPlane({
      apisixYaml: greeterYaml({ [node.address]: 1 }, { scheme: 'grpcs', verify: true }),
      defaultCert,
      ...(ssl === undefined ? {} : { ssl }),
    });
    const client = greeterClient(gw.h2cAddress);
    try {
      const result = await sayHello(client, 'x');
      return { code: result.status.code, details: result.status.details, servedBy: result.servedBy };
    } finally {
      client.close();
      await gw.close();
    }
  }

  test('a verified call to a node signed by the configured private CA succeeds', async () => {
    const result = await callThrough(signed, `ssl_trusted_certificate: ${JSON.stringify(caFile)}`);
    assert.deepEqual([result.code, result.servedBy], [GrpcCode.OK, 'signed'], result.details);
  });

  test('without the CA configured a verified call to the private node is UNAVAILABLE and says nothing about TLS', async () => {
    signed.resetRecord();
    const result = await callThrough(signed, undefined);
    assert.equal(result.code, GrpcCode.UNAVAILABLE);
    assert.equal(result.details, PublicMessage.upstreamConnect);
    assert.doesNotMatch(result.details, TLS_ERROR_PATTERN);
    assert.doesNotMatch(result.details, ADDRESS_PATTERN);
    assert.equal(signed.totalCalls, 0, 'no call may reach an unverified node');
  });

  test('a node whose certificate names another host is refused even though the CA is trusted', async () => {
    wrongName.resetRecord();
    const result = await callThrough(wrongName, `ssl_trusted_certificate: ${JSON.stringify(caFile)}`);
    assert.equal(result.code, GrpcCode.UNAVAILABLE);
    assert.equal(result.details, PublicMessage.upstreamConnect);
    assert.equal(wrongName.totalCalls, 0, 'no call may reach a node with the wrong name');
  });

  test('the CA bundle does not apply to nodes with tls.verify false, which stay unverified as in APISIX', async () => {
    const gw = await startTestPlane({
      apisixYaml: greeterYaml({ [wrongName.address]: 1 }, { scheme: 'grpcs', verify: false }),
      defaultCert,
      ssl: `ssl_trusted_certificate: ${JSON.stringify(caFile)}`,
    });
    const client = greeterClient(gw.h2cAddress);
    try {
      const result = await sayHello(client, 'x');
      assert.deepEqual([result.status.code, result.servedBy], [GrpcCode.OK, 'wrong-name'], result.status.details);
    } finally {
      client.close();
      await gw.close();
    }
  });

  test('a missing or certificate-less CA bundle stops the data plane at start with the key in the message', async () => {
    const missing = join(dir, 'absent.pem');
    await assert.rejects(
      startTestPlane({ apisixYaml: greeterYaml({ [plain.address]: 1 }), defaultCert, ssl: `ssl_trusted_certificate: ${JSON.stringify(missing)}` }),
      /cannot read apisix\.ssl\.ssl_trusted_certificate/,
    );
    const junk = join(dir, 'junk.pem');
    await writeFile(junk, 'not a certificate\n');
    await assert.rejects(
      startTestPlane({ apisixYaml: greeterYaml({ [plain.address]: 1 }), defaultCert, ssl: `ssl_trusted_certificate: ${JSON.stringify(junk)}` }),
      /apisix\.ssl\.ssl_trusted_certificate \(.*junk\.pem\) holds no PEM certificate/,
    );
  });
});
