/**
 * The etcd config source against a real etcd 3.4: bootstrap, watch events, coalescing, invalid values, compaction,
 * restarts and data loss. A small TCP proxy in front of etcd lets a test cut the source off (its watch falls behind)
 * or point it at another etcd, while the test writes straight to etcd with a raw etcd3 client.
 */
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { after, before, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import {
  createEtcdConfigSource,
  type ConfigState,
  type EtcdConfigSource,
} from '../../data-plane/config/etcd-source.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { freePort } from '../helpers/ports.ts';

const WAIT_MS = 30_000;
const POLL_MS = 20;
const BURST_SIZE = 50;
const RETRY_MESSAGE = 'cannot read the configuration from etcd, retrying';

let etcd: EtcdProcess;
let raw: Etcd3;

before(async () => {
  etcd = await startEtcd();
  raw = new Etcd3({ hosts: etcd.endpoint });
});

after(async () => {
  raw.close();
  await etcd.close();
});

function route(uri: string, extra: Record<string, unknown> = {}): string {
  const upstream = { scheme: 'grpc', type: 'roundrobin', nodes: { '127.0.0.1:50051': 1 } };
  return JSON.stringify({ uri, upstream, ...extra });
}

interface LogLine {
  msg: string;
  key?: string;
  modRevision?: string;
}

interface Harness {
  source: EtcdConfigSource;
  changes: ConfigState[];
  logs: LogLine[];
}

function open(t: TestContext, prefix: string, hosts: string[] = [etcd.endpoint]): Harness {
  const changes: ConfigState[] = [];
  const logs: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  const source = createEtcdConfigSource({ hosts, prefix, timeoutMs: 2_000, log, onChange: (s) => changes.push(s) });
  t.after(() => source.close());
  return { source, changes, logs };
}

/** Polls until `check` holds; a bounded wait for a condition, not a timing assertion. */
async function waitFor(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

function uriOf(state: ConfigState | undefined, id: string): string | undefined {
  return state?.routes.get(id)?.value.uri;
}

test('the initial load keeps valid routes and skips invalid JSON, invalid schemas and placeholders', async (t) => {
  await raw.put('/p1/routes/').value('init_dir');
  const good = await raw.put('/p1/routes/1').value(route('/helloworld.Greeter/SayHello', { id: 99 })).exec();
  const badJson = await raw.put('/p1/routes/2').value('{not json').exec();
  const badSchema = await raw.put('/p1/routes/3').value(JSON.stringify({ uri: 5 })).exec();
  await raw.put('/p1/stream_routes/1').value('{}'); // a type this gateway does not serve: not even looked at
  const { source, logs } = open(t, '/p1');

  const state = await source.start();

  assert.deepEqual([...state.routes.keys()], ['1']);
  const item = state.routes.get('1');
  assert.equal(item?.value.id, '1', 'value.id is forced to the key suffix');
  assert.equal(item.value.uri, '/helloworld.Greeter/SayHello');
  assert.equal(item.modRevision, good.header.revision);
  const warned = logs.filter((l) => l.msg === 'skipped an invalid configuration value from etcd');
  assert.deepEqual(
    warned.map((l) => [l.key, l.modRevision]),
    [['/p1/routes/2', badJson.header.revision], ['/p1/routes/3', badSchema.header.revision]],
  );
});

test('a put after start arrives through onChange and leaves the earlier state untouched', async (t) => {
  await raw.put('/p2/routes/1').value(route('/a'));
  const { source, changes } = open(t, '/p2');
  const first = await source.start();

  await raw.put('/p2/routes/2').value(route('/b'));
  await waitFor('route 2', () => uriOf(source.current(), '2') === '/b');

  assert.equal(uriOf(changes.at(-1), '2'), '/b');
  assert.equal(first.routes.has('2'), false, 'a state handed out is never mutated');
});

test('a delete after start removes the route', async (t) => {
  await raw.put('/p3/routes/1').value(route('/a'));
  await raw.put('/p3/routes/2').value(route('/b'));
  const { source } = open(t, '/p3');
  await source.start();

  await raw.delete().key('/p3/routes/1');
  await waitFor('route 1 gone', () => source.current()?.routes.has('1') === false);

  assert.deepEqual([...(source.current()?.routes.keys() ?? [])], ['2']);
});

test('an invalid put is logged with its key and revision and the last good value stays', async (t) => {
  const good = await raw.put('/p4/routes/1').value(route('/good')).exec();
  const { source, logs } = open(t, '/p4');
  await source.start();

  const bad = await raw.put('/p4/routes/1').value(route('/bad', { upstream: { nodes: 'x' } })).exec();
  await raw.put('/p4/routes/2').value(route('/marker'));
  await waitFor('the marker route', () => source.current()?.routes.has('2') === true);

  assert.equal(uriOf(source.current(), '1'), '/good');
  assert.equal(source.current()?.routes.get('1')?.modRevision, good.header.revision);
  assert.ok(logs.some((l) => l.key === '/p4/routes/1' && l.modRevision === bad.header.revision));
});

test('a burst of puts in one etcd transaction produces one state holding all of them', async (t) => {
  const { source, changes } = open(t, '/p5');
  await source.start();
  const ids = Array.from({ length: BURST_SIZE }, (_, i) => String(i + 1));
  const success = ids.map((id) => ({
    request_put: { key: Buffer.from(`/p5/routes/${id}`), value: Buffer.from(route(`/r${id}`)) },
  }));

  await raw.kv.txn({ success });
  await waitFor('all routes of the burst', () => source.current()?.routes.size === BURST_SIZE);

  assert.deepEqual([...(source.current()?.routes.keys() ?? [])].sort(), [...ids].sort());
  assert.ok(changes.length < BURST_SIZE, `${changes.length} onChange calls for one transaction`);
  assert.equal(changes.at(-1), source.current());
});

test('a watch that fell behind a compaction re-reads everything and ends with the right state', async (t) => {
  await raw.put('/p6/routes/1').value(route('/one'));
  await raw.put('/p6/routes/2').value(route('/two'));
  await raw.put('/p6/routes/3').value(route('/three'));
  const proxy = await startProxy(t, portOf(etcd.endpoint));
  const { source, logs } = open(t, '/p6', [proxy.endpoint]);
  await source.start();

  proxy.pause();
  await raw.delete().key('/p6/routes/1');
  await raw.put('/p6/routes/2').value(route('/two-v2'));
  await raw.put('/p6/routes/3').value('{broken');
  const last = await raw.put('/p6/routes/4').value(route('/four')).exec();
  await raw.kv.compact({ revision: last.header.revision, physical: true });
  proxy.resume();
  await waitFor('route 4 after the resync', () => source.current()?.routes.has('4') === true);

  const state = source.current();
  assert.equal(state?.routes.has('1'), false, 'a route deleted while behind is gone');
  assert.equal(uriOf(state, '2'), '/two-v2');
  assert.equal(uriOf(state, '3'), '/three', 'a route now invalid keeps its previous good value');
  assert.equal(state.revision, last.header.revision);
  assert.ok(logs.some((l) => l.msg.startsWith('etcd cancelled the watch')), 'the compaction path ran');
});

test('after an etcd restart a new put still arrives', async (t) => {
  await raw.put('/p7/routes/1').value(route('/before'));
  const { source, logs } = open(t, '/p7');
  await source.start();

  await etcd.stop();
  await etcd.start();
  const writer = new Etcd3({ hosts: etcd.endpoint }); // a fresh client: the old one's circuit breaker is open
  t.after(() => writer.close());
  await writer.put('/p7/routes/2').value(route('/after'));
  await waitFor('the put made after the restart', () => uriOf(source.current(), '2') === '/after');

  assert.equal(uriOf(source.current(), '1'), '/before');
  assert.ok(logs.some((l) => l.msg === 'etcd watch disconnected, resuming'), 'the watch was resumed');
  const resynced = logs.some((l) => l.msg.startsWith('etcd revision went backwards'));
  assert.equal(resynced, false, 'a restart that kept its data needs no full re-read');
});

test('start() while etcd is down logs each retry and resolves once etcd is back', async (t) => {
  const writer = new Etcd3({ hosts: etcd.endpoint });
  t.after(() => writer.close());
  await writer.put('/p8/routes/1').value(route('/waited'));
  await etcd.stop();
  const { source, logs } = open(t, '/p8');

  const started = source.start();
  await waitFor('a retry log line', () => logs.some((l) => l.msg === RETRY_MESSAGE));
  await etcd.start();
  const state = await started;

  assert.equal(uriOf(state, '1'), '/waited');
});

test('etcd coming back without its data (revision going backwards) makes the source re-read everything', async (t) => {
  const writer = new Etcd3({ hosts: etcd.endpoint });
  t.after(() => writer.close());
  for (let i = 0; i < 5; i++) await writer.put('/p9/routes/old').value(route(`/old${i}`));
  const proxy = await startProxy(t, portOf(etcd.endpoint));
  const { source, logs } = open(t, '/p9', [proxy.endpoint]);
  await source.start();
  const fresh = await startEtcd();
  t.after(() => fresh.close());
  const freshClient = new Etcd3({ hosts: fresh.endpoint });
  t.after(() => freshClient.close());
  await freshClient.put('/p9/routes/new').value(route('/new'));

  proxy.retarget(portOf(fresh.endpoint));
  await waitFor('the fresh etcd content', () => source.current()?.routes.has('new') === true);

  assert.equal(source.current()?.routes.has('old'), false, 'a route the fresh etcd does not have is gone');
  assert.ok(logs.some((l) => l.msg.startsWith('etcd revision went backwards')), 'the lost history was detected');
});

test('start() against an unreachable etcd logs and is rejected by close(), which is idempotent', async (t) => {
  const unreachable = `http://127.0.0.1:${await freePort()}`; // nothing listens there
  const { source, logs } = open(t, '/p10', [unreachable]);

  const started = source.start();
  await waitFor('a retry log line', () => logs.some((l) => l.msg === RETRY_MESSAGE));
  await source.close();
  await source.close();

  await assert.rejects(started, /closed/);
  assert.equal(source.current(), undefined);
});

function portOf(endpoint: string): number {
  return Number(new URL(endpoint).port);
}

interface TcpProxy {
  endpoint: string;
  /** Drops every connection and refuses new ones. */
  pause(): void;
  resume(): void;
  /** Sends new connections to another port and drops the current ones. */
  retarget(port: number): void;
}

async function startProxy(t: TestContext, targetPort: number): Promise<TcpProxy> {
  let target = targetPort;
  let paused = false;
  const sockets = new Set<Socket>();
  const dropAll = (): void => {
    for (const socket of sockets) socket.destroy();
  };
  const server = createServer((client) => {
    if (paused) return void client.destroy();
    const upstream = connect(target, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    dropAll();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    pause: () => {
      paused = true;
      dropAll();
    },
    resume: () => {
      paused = false;
    },
    retarget: (port) => {
      target = port;
      dropAll();
    },
  };
}
