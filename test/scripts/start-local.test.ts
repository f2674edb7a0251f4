/**
 * `npm start` on a machine without etcd must say how to install it rather than fail obscurely. The test runs the
 * start script with a PATH that has node but no etcd, against a local etcd endpoint where nothing listens.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../../shared/config.ts';
import { freePort } from '../helpers/ports.ts';

test('npm start without an etcd binary says how to install it and exits 1', async () => {
  const bin = mkdtempSync(join(tmpdir(), 'gw-noetcd-'));
  try {
    symlinkSync(process.execPath, join(bin, 'node'));
    const port = await freePort();
    const result = spawnSync(process.execPath, ['scripts/start-local.ts'], {
      cwd: REPO_ROOT,
      env: { PATH: bin, GATEWAY_ETCD_HOSTS: `http://127.0.0.1:${port}` },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(result.status, 1, result.stdout + result.stderr);
    assert.match(result.stdout, /etcd binary is not installed.*apt-get install etcd-server/);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});
