/**
 * The control-plane process as an operator runs it: `node control-plane/main.ts` with GATEWAY_*
 * variables. It must refuse the documented admin key on a public address, and otherwise listen, write through to
 * etcd, and exit 0 on SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { DOCUMENTED_ADMIN_KEY, REPO_ROOT } from '../../shared/config.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { freePort } from '../helpers/ports.ts';
import { CURL_FORM_TYPE, SEED_ROUTE_BODY } from './admin-fixture.ts';

/** Generous: a cold start loads every module of the control plane, on a machine that may be busy. */
const START_DEADLINE_MS = 30_000;
const POLL_MS = 100;

interface Running {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function startControlPlane(env: Record<string, string>): Running {
  const base = { ...process.env };
  // The test decides every GATEWAY_* value; none may leak in from the developer's shell.
  for (const name of Object.keys(base)) if (name.startsWith('GATEWAY_')) delete base[name];
  const child = spawn(process.execPath, ['control-plane/main.ts'], {
    cwd: REPO_ROOT,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, output: () => output, exited };
}

async function waitForOutput(running: Running, text: string): Promise<void> {
  const deadline = Date.now() + START_DEADLINE_MS;
  while (!running.output().includes(text)) {
    if (running.child.exitCode !== null) throw new Error(`control plane exited early:\n${running.output()}`);
    if (Date.now() > deadline) throw new Error(`"${text}" never printed:\n${running.output()}`);
    await sleep(POLL_MS);
  }
}

describe('control-plane main', () => {
  let etcd: EtcdProcess;
  let raw: Etcd3;
  const children: ChildProcess[] = [];

  before(async () => {
    etcd = await startEtcd();
    raw = new Etcd3({ hosts: [etcd.endpoint] });
  });

  after(async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    raw.close();
    await etcd.close();
  });

  it('refuses to start with the documented admin key on 0.0.0.0, exiting 1 with the reason', async () => {
    const port = await freePort();
    const running = startControlPlane({ GATEWAY_ADMIN_LISTEN: `0.0.0.0:${port}`, GATEWAY_ETCD_HOSTS: etcd.endpoint });
    children.push(running.child);
    assert.equal(await running.exited, 1);
    assert.match(running.output(), /refusing to start/);
    assert.ok(running.output().includes(`0.0.0.0:${port}`), running.output());
    assert.ok(running.output().includes(DOCUMENTED_ADMIN_KEY), running.output());
    assert.doesNotMatch(running.output(), /listening/);
  });

  it('serves with its own key on 0.0.0.0, writes the seed route to etcd, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const key = 'main-test-key-3c9d';
    const running = startControlPlane({
      GATEWAY_ADMIN_LISTEN: `0.0.0.0:${port}`,
      GATEWAY_ADMIN_KEY: key,
      GATEWAY_ETCD_HOSTS: etcd.endpoint,
      LOG_LEVEL: 'info',
    });
    children.push(running.child);
    await waitForOutput(running, `admin API listening on http://0.0.0.0:${port}`);

    const res = await fetch(`http://127.0.0.1:${port}/apisix/admin/routes/1`, {
      method: 'PUT',
      headers: { 'X-API-KEY': key, 'Content-Type': CURL_FORM_TYPE },
      body: SEED_ROUTE_BODY,
    });
    assert.equal(res.status, 201, await res.clone().text());
    assert.equal(res.headers.get('x-api-version'), 'v3');
    const stored = JSON.parse((await raw.get('/apisix/routes/1').string()) ?? 'null') as Record<string, unknown>;
    assert.equal(stored['uri'], '/helloworld.Greeter/SayHello');

    running.child.kill('SIGTERM');
    assert.equal(await running.exited, 0, running.output());
  });

  it('writes the init_dir placeholders at start', async () => {
    await raw.delete().prefix('/apisix/').exec();
    const running = startControlPlane({
      GATEWAY_ADMIN_LISTEN: `127.0.0.1:${await freePort()}`,
      GATEWAY_ETCD_HOSTS: etcd.endpoint,
    });
    children.push(running.child);
    await waitForOutput(running, 'admin API listening on');
    // The placeholders are written one after another: wait for the last one, then check them all.
    const dirs = ['routes', 'upstreams', 'services', 'ssls'].map((type) => `/apisix/${type}/`);
    const read = async (): Promise<(string | null)[]> => Promise.all(dirs.map((dir) => raw.get(dir).string()));
    const deadline = Date.now() + START_DEADLINE_MS;
    let placeholders = await read();
    while (placeholders.includes(null) && Date.now() < deadline) {
      await sleep(POLL_MS);
      placeholders = await read();
    }
    assert.deepEqual(placeholders, dirs.map(() => 'init_dir'));
    running.child.kill('SIGINT');
    assert.equal(await running.exited, 0, running.output());
  });
});
