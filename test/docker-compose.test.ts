/**
 * No Docker engine runs here, so the compose file is checked by docker-compose itself (`config` needs no engine)
 * and the Dockerfile by reading it: every path it copies and every program the services run must exist.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { REPO_ROOT } from '../shared/config.ts';

function composeConfig(env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env['PATH'] ?? '', ...env },
    encoding: 'utf8',
  });
  if (result.error !== undefined) throw new Error(`docker-compose is not installed (apt-get install docker-compose): ${result.error.message}`);
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

interface Service {
  build?: unknown;
  command?: string[];
  container_name?: string;
  ports?: unknown[];
}

describe('docker-compose.yml', () => {
  test('is valid for docker-compose and defines etcd, control plane, data plane and an example upstream', () => {
    const result = composeConfig({ ADMIN_KEY: 'a-test-key' });
    assert.equal(result.status, 0, result.stderr);
    const config = parse(result.stdout) as { services: Record<string, Service> };
    assert.deepEqual(Object.keys(config.services).sort(), ['control-plane', 'data-plane', 'etcd', 'greeter']);
  });

  test('the data plane scales: no fixed container name, host ports given as ranges', () => {
    const config = parse(composeConfig({ ADMIN_KEY: 'k' }).stdout) as { services: Record<string, Service> };
    const dataPlane = config.services['data-plane'];
    assert.ok(dataPlane);
    assert.equal(dataPlane.container_name, undefined);
    const published = JSON.stringify(dataPlane.ports);
    assert.match(published, /9081-\d+/);
    assert.match(published, /9443-\d+/);
  });

  test('refuses to start without an admin key instead of falling back to the documented one', () => {
    const result = composeConfig({});
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /ADMIN_KEY/);
  });

  test('every program a service runs exists in the image', () => {
    const config = parse(composeConfig({ ADMIN_KEY: 'k' }).stdout) as { services: Record<string, Service> };
    for (const [name, service] of Object.entries(config.services)) {
      if (service.build === undefined) continue;
      // The gateway's processes run what `npm run build` emits to dist/ (the image's build stage runs it); the
      // example upstream runs its TypeScript source.
      const entry = service.command?.find((arg) => arg.endsWith('.ts') || arg.endsWith('.js'));
      assert.ok(entry, `${name} runs a script`);
      const source = entry.startsWith('dist/') ? entry.slice('dist/'.length).replace(/\.js$/, '.ts') : entry;
      if (entry.startsWith('dist/')) assert.ok(entry.endsWith('.js'), `${name}: ${entry} is built JavaScript`);
      assert.ok(existsSync(resolve(REPO_ROOT, source)), `${name}: ${source} exists`);
    }
  });

  test('the image builds dist/ and runs it', () => {
    const dockerfile = readFileSync(resolve(REPO_ROOT, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /^RUN npm run build$/m);
    assert.match(dockerfile, /^COPY --from=build \/app\/dist \.\/dist$/m);
    assert.match(dockerfile, /^CMD \["node", "dist\/data-plane\/main\.js"\]$/m);
  });

  test('every path the Dockerfile copies from the repository exists', () => {
    const dockerfile = readFileSync(resolve(REPO_ROOT, 'Dockerfile'), 'utf8');
    // COPY --from=<stage> copies out of an earlier stage of the image, not out of the repository.
    const copies = [...dockerfile.matchAll(/^COPY\s+(?!--from=)(.+)\s+\S+$/gm)].flatMap((m) => (m[1] ?? '').split(/\s+/));
    assert.ok(copies.length > 0);
    for (const path of copies) assert.ok(existsSync(resolve(REPO_ROOT, path)), `${path} exists`);
  });
});
