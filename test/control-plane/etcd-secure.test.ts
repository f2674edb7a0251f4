/**
 * The control plane's etcd store against a secured etcd: password authentication (`deployment.etcd.user` /
 * `password`) and TLS with a client certificate (`deployment.etcd.tls` + `apisix.ssl.ssl_trusted_certificate`).
 * The TLS member is started here with the same flags an operator would use; its certificates are made per run.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { createEtcdStore } from '../../control-plane/store/etcd-store.ts';
import { createEtcdConfigSource } from '../../data-plane/config/etcd-source.ts';
import { StoreUnavailable } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logger.ts';
import { makeCert } from '../helpers/certs.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { freePort } from '../helpers/ports.ts';

const PREFIX = '/secure';
const ROOT_PASSWORD = 'root-password-for-tests';
const START_DEADLINE_MS = 20_000;

describe('etcd store: password authentication', () => {
  let etcd: EtcdProcess;

  before(async () => {
    etcd = await startEtcd();
    const setup = new Etcd3({ hosts: [etcd.endpoint] });
    try {
      await setup.role('root').create();
      await setup.user('root').create(ROOT_PASSWORD);
      await setup.user('root').addRole('root');
      await setup.auth.authEnable({});
    } finally {
      setup.close();
    }
  });

  after(async () => {
    await etcd.close();
  });

  it('writes and reads with the configured user and password', async () => {
    const store = createEtcdStore({ hosts: [etcd.endpoint], prefix: PREFIX, timeoutMs: 3000, username: 'root', password: ROOT_PASSWORD, log: silentLogger() });
    try {
      await store.put('routes', '1', () => ({ value: { uri: '/a' } }));
      assert.deepEqual((await store.get('routes', '1'))?.value, { uri: '/a' });
    } finally {
      await store.close();
    }
  });

  it('fails with StoreUnavailable (503) without credentials or with a wrong password', async () => {
    for (const credentials of [{}, { username: 'root', password: 'wrong' }]) {
      const store = createEtcdStore({ hosts: [etcd.endpoint], prefix: PREFIX, timeoutMs: 2000, ...credentials, log: silentLogger() });
      try {
        await assert.rejects(store.get('routes', '1'), StoreUnavailable);
      } finally {
        await store.close();
      }
    }
  });
});

describe('etcd store: TLS with a client certificate', () => {
  let dir: string;
  let child: ChildProcess | undefined;
  let endpoint: string;
  const files = { ca: '', cert: '', key: '' };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-etcd-tls-'));
    const server = await makeCert({ sans: ['127.0.0.1', 'localhost'], ca: true });
    files.ca = join(dir, 'ca.pem');
    files.cert = join(dir, 'server.pem');
    files.key = join(dir, 'server-key.pem');
    await writeFile(files.ca, server.cert);
    await writeFile(files.cert, server.cert);
    await writeFile(files.key, server.key);
    const clientPort = await freePort();
    const peerPort = await freePort();
    endpoint = `https://127.0.0.1:${clientPort}`;
    // The self-signed certificate is its own CA, for etcd's server side and for the client certificate alike.
    child = spawn(
      'etcd',
      [
        '--name', 'tls', '--data-dir', join(dir, 'data'),
        '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
        '--listen-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
        '--initial-cluster', `tls=http://127.0.0.1:${peerPort}`,
        '--cert-file', files.cert, '--key-file', files.key, '--client-cert-auth', '--trusted-ca-file', files.ca,
        '--logger', 'zap', '--log-level', 'error',
      ],
      { stdio: 'ignore' },
    );
    await waitReachable();
  });

  after(async () => {
    child?.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  /** Polls with the store itself: the member is up once a read through TLS succeeds. */
  async function waitReachable(): Promise<void> {
    const deadline = Date.now() + START_DEADLINE_MS;
    for (;;) {
      const store = createEtcdStore({ hosts: [endpoint], prefix: PREFIX, timeoutMs: 1000, tls: tlsConfig(), log: silentLogger() });
      try {
        await store.list('routes');
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
      } finally {
        await store.close();
      }
      await sleep(100);
    }
  }

  function tlsConfig(withClientCert = true): { caFile: string; certFile: string | undefined; keyFile: string | undefined; sni: undefined } {
    return { caFile: files.ca, certFile: withClientCert ? files.cert : undefined, keyFile: withClientCert ? files.key : undefined, sni: undefined };
  }

  it('writes and reads over TLS with the configured CA and client certificate', async () => {
    const store = createEtcdStore({ hosts: [endpoint], prefix: PREFIX, timeoutMs: 3000, tls: tlsConfig(), log: silentLogger() });
    try {
      await store.put('ssls', '1', () => ({ value: { n: 1 } }));
      assert.deepEqual((await store.get('ssls', '1'))?.value, { n: 1 });
    } finally {
      await store.close();
    }
  });

  it("the data plane's config source loads and watches over the same TLS settings", async () => {
    const route = { uri: '/helloworld.Greeter/SayHello', upstream: { nodes: { '127.0.0.1:50051': 1 } } };
    const store = createEtcdStore({ hosts: [endpoint], prefix: PREFIX, timeoutMs: 3000, tls: tlsConfig(), log: silentLogger() });
    let changed: (() => void) | undefined;
    const source = createEtcdConfigSource({
      hosts: [endpoint],
      prefix: PREFIX,
      timeoutMs: 3000,
      tls: tlsConfig(),
      log: silentLogger(),
      onChange: (state) => {
        if (state.routes.has('2')) changed?.();
      },
    });
    try {
      await store.put('routes', '1', () => ({ value: route }));
      const initial = await source.start();
      assert.equal(initial.routes.get('1')?.value.uri, route.uri);
      const seen = new Promise<void>((resolve) => (changed = resolve));
      await store.put('routes', '2', () => ({ value: route }));
      await seen;
    } finally {
      await source.close();
      await store.close();
    }
  });

  it('fails with StoreUnavailable when etcd demands a client certificate and none is given', async () => {
    const store = createEtcdStore({ hosts: [endpoint], prefix: PREFIX, timeoutMs: 2000, tls: tlsConfig(false), log: silentLogger() });
    try {
      await assert.rejects(store.get('ssls', '1'), StoreUnavailable);
    } finally {
      await store.close();
    }
  });
});
