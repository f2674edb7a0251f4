/**
 * Standalone mode end to end: a data plane started in-process with `config_provider: yaml` and no etcd anywhere,
 * its routes and certificates read from an apisix.yaml in a temp dir, real Greeter upstreams and real grpc-js
 * clients over h2c and TLS. The file is rewritten (by rename) while calls flow, and a rewrite without `#END` must
 * leave the previous configuration in service with the status port reporting it stale.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { status as GrpcCode, type Client } from '@grpc/grpc-js';
import { startDataPlane, type DataPlane } from '../../data-plane/data-plane.ts';
import { parseConfig } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import { makeCert, type CertAndKey } from '../helpers/certs.ts';
import { waitUntil } from '../helpers/fake-upstream.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { standaloneDeployment } from '../helpers/standalone.ts';

/** Small, so that a rewrite is picked up quickly; the default is APISIX's one second. */
const POLL_MS = 50;
const WAIT_MS = 10_000;

interface StatusBody {
  revision: string | null;
  routes: number;
  config_stale: boolean;
}

describe('standalone mode end to end (config_provider: yaml, no etcd)', () => {
  let dir: string;
  let file: string;
  let a: GreeterNode;
  let b: GreeterNode;
  let sniCert: CertAndKey;
  let plane: DataPlane;
  let h2cAddress: string;
  let tlsAddress: string;
  let statusUrl: string;
  let writes = 0;
  const clients: Client[] = [];

  /** The greeter route by upstream_id, and a certificate for test.com with its private key in plain PEM. */
  const apisixYaml = (node: GreeterNode, end = '#END\n'): string => `
upstreams:
  - id: greeter
    scheme: grpc
    type: roundrobin
    nodes:
      "127.0.0.1:${node.port}": 1
routes:
  - id: 1
    methods: [POST, GET]
    uri: /helloworld.Greeter/SayHello
    upstream_id: greeter
ssls:
  - id: 1
    snis: [test.com]
    cert: ${JSON.stringify(sniCert.cert)}
    key: ${JSON.stringify(sniCert.key)}
${end}`;

  const rewrite = async (text: string): Promise<void> => {
    const temp = join(dir, `next-${writes++}.yaml`);
    await writeFile(temp, text);
    await rename(temp, file);
  };

  const status = async (): Promise<StatusBody> => {
    const res = await fetch(`${statusUrl}/readyz`);
    return (await res.json()) as StatusBody;
  };

  const h2c = (): Client => {
    const client = greeterClient(h2cAddress);
    clients.push(client);
    return client;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'standalone-e2e-'));
    file = join(dir, 'apisix.yaml');
    a = await startGreeterNode({ id: 'a' });
    b = await startGreeterNode({ id: 'b' });
    sniCert = await makeCert({ sans: ['test.com'] });
    await rewrite(apisixYaml(a));
    const config = parseConfig(`
apisix:
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
  ssl: { listen: [{ ip: 127.0.0.1, port: 0 }] }
  status: { ip: 127.0.0.1, port: 0 }
${standaloneDeployment(file)}`);
    config.dataPlane.standalonePollMs = POLL_MS;
    const defaultCert = await makeCert({ sans: ['localhost', '127.0.0.1'] });
    plane = await startDataPlane({ config, log: silentLogger(), defaultCert });
    const port = (kind: 'h2c' | 'tls'): number => {
      const bound = plane.addresses.find((x) => x.kind === kind);
      if (bound === undefined) throw new Error(`no ${kind} listener`);
      return bound.port;
    };
    h2cAddress = `127.0.0.1:${port('h2c')}`;
    tlsAddress = `127.0.0.1:${port('tls')}`;
    if (plane.statusAddress === undefined) throw new Error('no status server');
    statusUrl = `http://127.0.0.1:${plane.statusAddress.port}`;
  });

  after(async () => {
    for (const client of clients) client.close();
    // Unset when before() failed part way (the declared types assume it finished).
    await (plane as DataPlane | undefined)?.close();
    await Promise.all([(a as GreeterNode | undefined)?.close(), (b as GreeterNode | undefined)?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  test('SayHello over h2c reaches the upstream the file names, with no etcd configured or running', async () => {
    const result = await sayHello(h2c(), 'apisix');
    assert.equal(result.status.code, GrpcCode.OK, result.status.details);
    assert.equal(result.message, 'Hello apisix');
    assert.equal(result.servedBy, 'a');
    const body = await status();
    assert.equal(body.revision, '1');
    assert.equal(body.routes, 1);
    assert.equal(body.config_stale, false);
  });

  test('TLS with SNI gets the certificate of the file\'s ssls entry, whose key is plain PEM', async () => {
    // Verifying against the test.com certificate as the only root proves which certificate was served.
    const client = greeterClient(tlsAddress, { tls: { rootCert: sniCert.cert, servername: 'test.com' } });
    clients.push(client);
    const result = await sayHello(client, 'apisix');
    assert.equal(result.status.code, GrpcCode.OK, result.status.details);
    assert.equal(result.servedBy, 'a');
  });

  test('rewriting the file to another node sends new calls there', async () => {
    await rewrite(apisixYaml(b));
    await waitUntil(() => plane.snapshots.current().revision === '2', WAIT_MS, () => 'the data plane applied revision 2');
    const result = await sayHello(h2c(), 'apisix');
    assert.equal(result.status.code, GrpcCode.OK, result.status.details);
    assert.equal(result.servedBy, 'b');
    assert.equal((await status()).revision, '2');
  });

  test('a rewrite without #END is not applied: calls keep going to the previous node, reported stale', async () => {
    await rewrite(apisixYaml(a, ''));
    let body: StatusBody | undefined;
    const deadline = Date.now() + WAIT_MS;
    while (!(body = await status()).config_stale) {
      if (Date.now() > deadline) throw new Error('the status port never reported config_stale');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(body.revision, '2');
    const result = await sayHello(h2c(), 'apisix');
    assert.equal(result.status.code, GrpcCode.OK, result.status.details);
    assert.equal(result.servedBy, 'b');
    assert.equal(plane.snapshots.current().revision, '2');
  });

  test('completing the file with #END applies it and clears config_stale', async () => {
    await rewrite(apisixYaml(a));
    await waitUntil(() => plane.snapshots.current().revision === '3', WAIT_MS, () => 'the data plane applied revision 3');
    const result = await sayHello(h2c(), 'apisix');
    assert.equal(result.servedBy, 'a');
    const body = await status();
    assert.equal(body.config_stale, false);
    assert.equal(body.revision, '3');
  });
});
