/**
 * Production runs what `npm run build` emits (dist/, tsc with tsconfig.build.json), not the TypeScript sources the
 * rest of the suite runs: this test builds it and proves the build is whole. Every relative import in dist/ names a
 * .js file that exists, and a data plane started from dist/ with two workers (as `npm run data-plane` starts it)
 * follows etcd and proxies a real grpc-js call to a real greeter upstream.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Metadata, status as GrpcCode, type Client } from '@grpc/grpc-js';
import { REPO_ROOT } from '../../shared/config.ts';
import { putEtcdJson, spawnChildGateway, type ChildGateway } from '../flow/child-gateway.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';

const READY_LIMIT_MS = 30_000;

function keyMetadata(key: string): Metadata {
  const metadata = new Metadata();
  metadata.set('apikey', key);
  return metadata;
}
const DIST = join(REPO_ROOT, 'dist');

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.js'))
    .map((entry) => join(entry.parentPath, entry.name));
}

describe('npm run build', () => {
  let etcd: EtcdProcess | undefined;
  let upstream: GreeterNode | undefined;
  let gateway: ChildGateway | undefined;
  let client: Client | undefined;

  before(() => {
    const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const build = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, encoding: 'utf8' });
    assert.equal(build.status, 0, build.stdout + build.stderr);
  });

  after(async () => {
    client?.close();
    await gateway?.stop();
    await upstream?.close();
    await etcd?.close();
  });

  test('emits JavaScript whose relative imports all name .js files that exist', () => {
    const files = jsFiles(DIST);
    assert.ok(files.some((file) => file.endsWith(join('data-plane', 'main.js'))));
    assert.ok(files.some((file) => file.endsWith(join('control-plane', 'main.js'))));
    assert.ok(files.some((file) => file.endsWith(join('scripts', 'start-local.js'))));
    // tsc writes rewritten specifiers in double quotes, kept ones as written: match either.
    const specifier = /(?:from\s+|import\s*\(\s*)(['"])(\.{1,2}\/[^'"]+)\1/g;
    let checked = 0;
    for (const file of files) {
      for (const match of readFileSync(file, 'utf8').matchAll(specifier)) {
        const target = match[2] ?? '';
        assert.ok(target.endsWith('.js') || target.endsWith('.json'), `${file} imports ${target}`);
        assert.ok(existsSync(resolve(dirname(file), target)), `${file} imports ${target}, which was not emitted`);
        checked++;
      }
    }
    assert.ok(checked > 100, `only ${checked} imports seen`);
  });

  test('a data plane started from dist/ with two workers proxies a gRPC call', async () => {
    etcd = await startEtcd();
    upstream = await startGreeterNode();
    gateway = await spawnChildGateway(etcd.endpoint, { workers: 2, entry: 'dist/data-plane/main.js' });
    await putEtcdJson(etcd.endpoint, '/apisix/routes/1', {
      id: '1',
      uri: '/helloworld.Greeter/*',
      upstream: { type: 'roundrobin', scheme: 'grpc', nodes: { [upstream.address]: 1 } },
    });
    client = greeterClient(gateway.h2cAddress);
    const deadline = Date.now() + READY_LIMIT_MS;
    let last = '';
    for (;;) {
      const outcome = await sayHello(client, 'dist');
      if (outcome.status.code === GrpcCode.OK) {
        assert.match(outcome.message ?? '', /dist/);
        break;
      }
      last = `${outcome.status.code} ${outcome.status.details}`;
      assert.ok(!gateway.exited, `the data plane exited:\n${gateway.output()}`);
      assert.ok(Date.now() < deadline, `no OK call within ${READY_LIMIT_MS} ms (last: ${last})\n${gateway.output()}`);
      await sleep(100);
    }
  });

  test('its workers get consumers from their primary: key-auth admits a consumer\'s key on every connection', async () => {
    assert.ok(etcd !== undefined && upstream !== undefined && gateway !== undefined);
    await putEtcdJson(etcd.endpoint, '/apisix/consumers/jack', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } });
    await putEtcdJson(etcd.endpoint, '/apisix/routes/1', {
      id: '1',
      uri: '/helloworld.Greeter/*',
      plugins: { 'key-auth': {} },
      upstream: { type: 'roundrobin', scheme: 'grpc', nodes: { [upstream.address]: 1 } },
    });
    const address = gateway.h2cAddress;
    const deadline = Date.now() + READY_LIMIT_MS;
    // New connections are handed to the workers in turn: 4 clients reach both.
    for (let i = 0; i < 4; i++) {
      const each = greeterClient(address);
      try {
        for (;;) {
          const refused = await sayHello(each, 'no key');
          const admitted = await sayHello(each, 'key', keyMetadata('jack-key'));
          if (refused.status.code === GrpcCode.UNAUTHENTICATED && admitted.status.code === GrpcCode.OK) break;
          assert.ok(Date.now() < deadline, `connection ${i}: no key → ${refused.status.code}, key → ${admitted.status.code}\n${gateway.output()}`);
          await sleep(100);
        }
      } finally {
        each.close();
      }
    }
  });
});
