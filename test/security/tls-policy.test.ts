/**
 * Issue #11, case 9: the TLS listeners negotiated suites HTTP/2 forbids (RFC 9113 §9.2.2: TLS 1.2 only with an
 * ephemeral key exchange and an AEAD cipher), e.g. AES128-SHA with ALPN h2. The default policy is TLS 1.2 and 1.3,
 * TLS 1.2 with Envoy's ECDHE+AEAD list; `apisix.ssl.ssl_protocols` narrows it. Both certificate paths are checked:
 * a client without SNI (the server's own context) and one whose SNI selects an ssl object's context, plus the
 * context the server is given when the certificate for clients without SNI changes (setSecureContext). Each attack
 * runs beside a legitimate grpc-js call over the same listener, which must succeed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createSecureContext, type ConnectionOptions } from 'node:tls';
import { credentials, status as GrpcCode, Client, type ChannelOptions } from '@grpc/grpc-js';
import { parseConfig } from '../../shared/config.ts';
import { ConfigError } from '../../shared/errors.ts';
import { makeCert, type CertAndKey } from '../helpers/certs.ts';
import { sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { greeterYaml, handshake, sslsYaml, startTestPlane, type HandshakeResult, type TestPlane } from './tls-kit.ts';

const SNI = 'test.com';
const WEAK_TLS12: readonly string[] = ['AES128-SHA', 'AES256-SHA256', 'AES128-GCM-SHA256'];
const TLS12: ConnectionOptions = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' };
const WAIT_MS = 10_000;

/** A grpc-js client whose TLS is exactly `options` (ciphers, versions), trusting `root`, optionally with SNI. */
function policyClient(address: string, root: string, options: ConnectionOptions, servername?: string): Client {
  const context = createSecureContext({ ca: root, ...(options.ciphers === undefined ? {} : { ciphers: options.ciphers }), ...versions(options) });
  const channel: ChannelOptions = servername === undefined ? {} : { 'grpc.ssl_target_name_override': servername, 'grpc.default_authority': servername };
  return new Client(address, credentials.createFromSecureContext(context), channel);
}

function versions(options: ConnectionOptions): ConnectionOptions {
  return {
    ...(options.minVersion === undefined ? {} : { minVersion: options.minVersion }),
    ...(options.maxVersion === undefined ? {} : { maxVersion: options.maxVersion }),
  };
}

async function callOk(client: Client, what: string): Promise<void> {
  try {
    const result = await sayHello(client, 'legit');
    assert.equal(result.status.code, GrpcCode.OK, `${what}: ${result.status.details}`);
  } finally {
    client.close();
  }
}

function refused(result: HandshakeResult, what: string): void {
  assert.equal(result.ok, false, `${what} negotiated ${String(result.protocol)} ${String(result.cipher)} with ALPN ${String(result.alpn)}`);
}

describe('TLS listener policy (RFC 9113 §9.2): no non-AEAD or non-forward-secret suites, TLS 1.2 or later', () => {
  let node: GreeterNode;
  let defaultCert: CertAndKey;
  let sniCert: CertAndKey;
  let gw: TestPlane;

  before(async () => {
    node = await startGreeterNode({ id: 'a' });
    // RSA certificates: the suites under test (ECDHE-RSA-*, AES128-SHA) need an RSA key on the server.
    defaultCert = await makeCert({ sans: ['localhost', '127.0.0.1'], keyType: 'rsa' });
    sniCert = await makeCert({ sans: [SNI], keyType: 'rsa' });
    gw = await startTestPlane({ apisixYaml: greeterYaml({ [node.address]: 1 }, { ssls: sslsYaml(sniCert, [SNI]) }), defaultCert });
  });

  after(async () => {
    await gw.close();
    await node.close();
  });

  for (const [path, servername] of [['without SNI', undefined], ['with an SNI that selects an ssl object', SNI]] as const) {
    test(`a TLS 1.2 client offering only non-forward-secret or non-AEAD suites fails the handshake ${path}`, async () => {
      for (const cipher of WEAK_TLS12) {
        const result = await handshake(gw.tlsPort, { ...TLS12, ciphers: cipher, ...(servername === undefined ? {} : { servername }) });
        refused(result, `${cipher} ${path}`);
      }
      await callOk(policyClient(gw.tlsAddress, servername === undefined ? defaultCert.cert : sniCert.cert, {}, servername), `legitimate call ${path}`);
    });

    test(`ECDHE-RSA-AES128-GCM-SHA256 over TLS 1.2 is negotiated and carries a gRPC call ${path}`, async () => {
      const options: ConnectionOptions = { ...TLS12, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' };
      const result = await handshake(gw.tlsPort, { ...options, ...(servername === undefined ? {} : { servername }) });
      assert.deepEqual([result.ok, result.protocol, result.cipher, result.alpn], [true, 'TLSv1.2', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'h2'], result.error);
      if (servername !== undefined) assert.equal(result.subject, SNI);
      await callOk(policyClient(gw.tlsAddress, servername === undefined ? defaultCert.cert : sniCert.cert, options, servername), `TLS 1.2 call ${path}`);
    });

    test(`TLS 1.3 is negotiated and carries a gRPC call ${path}`, async () => {
      const options: ConnectionOptions = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' };
      const result = await handshake(gw.tlsPort, { ...options, ...(servername === undefined ? {} : { servername }) });
      assert.deepEqual([result.ok, result.protocol, result.alpn], [true, 'TLSv1.3', 'h2'], result.error);
      await callOk(policyClient(gw.tlsAddress, servername === undefined ? defaultCert.cert : sniCert.cert, options, servername), `TLS 1.3 call ${path}`);
    });

    test(`a TLS 1.1 client is refused ${path}`, async () => {
      const result = await handshake(gw.tlsPort, {
        minVersion: 'TLSv1.1',
        maxVersion: 'TLSv1.1',
        ciphers: 'DEFAULT@SECLEVEL=0', // let the client offer 1.1 at all: the refusal must be the gateway's
        ...(servername === undefined ? {} : { servername }),
      });
      refused(result, `TLS 1.1 ${path}`);
      await callOk(policyClient(gw.tlsAddress, servername === undefined ? defaultCert.cert : sniCert.cert, {}, servername), `legitimate call ${path}`);
    });
  }
});

describe('ssl_protocols and the certificate for clients without SNI', () => {
  let node: GreeterNode;
  let defaultCert: CertAndKey;
  let sniCert: CertAndKey;

  before(async () => {
    node = await startGreeterNode({ id: 'a' });
    defaultCert = await makeCert({ sans: ['localhost', '127.0.0.1'], keyType: 'rsa' });
    sniCert = await makeCert({ sans: [SNI], keyType: 'rsa' });
  });

  after(async () => {
    await node.close();
  });

  test('ssl_protocols TLSv1.3 refuses TLS 1.2 clients with and without SNI, and serves TLS 1.3', async () => {
    const gw = await startTestPlane({
      apisixYaml: greeterYaml({ [node.address]: 1 }, { ssls: sslsYaml(sniCert, [SNI]) }),
      defaultCert,
      ssl: 'ssl_protocols: TLSv1.3',
    });
    try {
      refused(await handshake(gw.tlsPort, { ...TLS12, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }), 'TLS 1.2 without SNI');
      refused(await handshake(gw.tlsPort, { ...TLS12, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256', servername: SNI }), 'TLS 1.2 with SNI');
      const ok = await handshake(gw.tlsPort, { servername: SNI });
      assert.deepEqual([ok.ok, ok.protocol], [true, 'TLSv1.3'], ok.error);
      await callOk(policyClient(gw.tlsAddress, defaultCert.cert, {}), 'TLS 1.3 call');
    } finally {
      await gw.close();
    }
  });

  test('the policy still holds after the certificate for clients without SNI is replaced (setSecureContext)', async () => {
    const gw = await startTestPlane({ apisixYaml: greeterYaml({ [node.address]: 1 }), defaultCert, ssl: `fallback_sni: ${SNI}` });
    try {
      assert.equal((await handshake(gw.tlsPort, {})).subject, 'localhost');
      await gw.rewrite(greeterYaml({ [node.address]: 1 }, { ssls: sslsYaml(sniCert, [SNI]) }));
      let last: HandshakeResult | undefined;
      const deadline = Date.now() + WAIT_MS;
      while (last?.subject !== SNI && Date.now() < deadline) {
        last = await handshake(gw.tlsPort, {});
        if (last.subject !== SNI) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(last?.subject, SNI, 'the fallback certificate was not applied');
      for (const cipher of WEAK_TLS12) refused(await handshake(gw.tlsPort, { ...TLS12, ciphers: cipher }), `${cipher} after setSecureContext`);
      refused(await handshake(gw.tlsPort, { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }), 'TLS 1.1 after setSecureContext');
      await callOk(policyClient(gw.tlsAddress, sniCert.cert, TLS12, SNI), 'TLS 1.2 call after setSecureContext');
    } finally {
      await gw.close();
    }
  });
});

describe('invalid TLS settings are configuration errors at start', () => {
  const parse = (ssl: string): unknown => parseConfig(`apisix: { ssl: { ${ssl} } }`);

  test('ssl_protocols naming TLSv1.1 is refused with a message citing RFC 9113', () => {
    assert.throws(() => parse('ssl_protocols: "TLSv1.1 TLSv1.2"'), (err: unknown) => err instanceof ConfigError && /ssl_protocols: TLSv1\.1 is not allowed.*RFC 9113/.test(err.message));
  });

  test('ssl_protocols naming an unknown protocol or none is refused', () => {
    assert.throws(() => parse('ssl_protocols: TLSv1.4'), /apisix\.ssl\.ssl_protocols: unknown protocol "TLSv1\.4"/);
    assert.throws(() => parse('ssl_protocols: ""'), /apisix\.ssl\.ssl_protocols names no protocol/);
  });

  test('ssl_ciphers that OpenSSL cannot parse, or that only name suites HTTP/2 forbids, is refused', () => {
    assert.throws(() => parse('ssl_ciphers: not-a-cipher'), /apisix\.ssl\.ssl_ciphers "not-a-cipher" leaves no cipher suite HTTP\/2 may use/);
    assert.throws(() => parse('ssl_ciphers: "AES128-SHA:AES256-SHA256"'), /apisix\.ssl\.ssl_ciphers "AES128-SHA:AES256-SHA256" leaves no cipher suite/);
  });

  test('ssl_ciphers with forbidden suites among allowed ones keeps only the allowed ones', async () => {
    const node = await startGreeterNode({ id: 'a' });
    const defaultCert = await makeCert({ sans: ['localhost', '127.0.0.1'], keyType: 'rsa' });
    const gw = await startTestPlane({
      apisixYaml: greeterYaml({ [node.address]: 1 }),
      defaultCert,
      ssl: 'ssl_ciphers: "HIGH:!aNULL:!MD5"', // nginx's own default, which includes AES128-SHA
    });
    try {
      for (const cipher of WEAK_TLS12) refused(await handshake(gw.tlsPort, { ...TLS12, ciphers: cipher }), `${cipher} with ssl_ciphers HIGH`);
      const ok = await handshake(gw.tlsPort, { ...TLS12, ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' });
      assert.deepEqual([ok.ok, ok.cipher], [true, 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384'], ok.error);
      await callOk(policyClient(gw.tlsAddress, defaultCert.cert, TLS12), 'TLS 1.2 call');
    } finally {
      await gw.close();
      await node.close();
    }
  });
});
