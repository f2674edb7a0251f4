/**
 * A write whose answer is lost: etcd applied the transaction, but the reply never reached the store (the member
 * hung right after, or the network dropped the way back). The store's attempt times out and it retries on the next
 * member, where the compare on mod_revision fails, since the first attempt moved it. That failure is not a conflict:
 * the value etcd holds is the one this write sent, so the write succeeded, once, and was a create (201), not an
 * update found on a second try; and a delete that finds the key gone after such an attempt did delete it (200, not
 * 404). Reading back is what tells the two apart (control-plane/store/etcd-store.ts).
 *
 * And the member itself: its circuit opens when it goes silent and closes again, by the store's background probe,
 * once it answers again (no admin request pays for finding that out).
 *
 * The lost answer is made by a TCP relay in front of a real etcd that stops passing etcd's bytes back once told
 * to; the store lists the relay first and etcd itself second, two "members" of the same single-member cluster.
 */
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { createEtcdStore } from '../../control-plane/store/etcd-store.ts';
import type { ResourceStore } from '../../control-plane/store/resource-store.ts';
import { silentLogger, type Logger } from '../../shared/logger.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';

const PREFIX = '/lost-answer';
/** How long a member that answers again may take to be seen by the store's probe (it re-probes every 2 s). */
const BACK_IN_USE_LIMIT_MS = 15_000;

interface Relay {
  endpoint: string;
  /** From now on, nothing etcd sends reaches the client (requests still reach etcd). */
  dropAnswers(): void;
  /** Pass etcd's answers again (the member "resumed"). */
  passAnswers(): void;
  close(): Promise<void>;
}

async function startRelay(target: URL): Promise<Relay> {
  const sockets = new Set<Socket>();
  let dropping = false;
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => s.destroy());
    }
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => {
      if (!dropping) client.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    dropAnswers: () => {
      dropping = true;
    },
    passAnswers: () => {
      dropping = false;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('an etcd member that loses its answers', () => {
  let etcd: EtcdProcess | undefined;
  let raw: Etcd3 | undefined;
  const opened: { relay: Relay; store: ResourceStore }[] = [];

  before(async () => {
    etcd = await startEtcd();
    raw = new Etcd3({ hosts: [etcd.endpoint] });
  });

  after(async () => {
    for (const { relay, store } of opened) {
      await store.close();
      await relay.close();
    }
    raw?.close();
    await etcd?.close();
  });

  /** A store whose first member is a relay to etcd (its answers droppable), its second etcd itself. */
  async function lossyStore(log: Logger = silentLogger()): Promise<{ relay: Relay; store: ResourceStore }> {
    assert.ok(etcd !== undefined);
    const relay = await startRelay(new URL(etcd.endpoint));
    const store = createEtcdStore({ hosts: [relay.endpoint, etcd.endpoint], prefix: PREFIX, timeoutMs: 5_000, log });
    opened.push({ relay, store });
    return { relay, store };
  }

  async function stored(id: string): Promise<{ version: string; value: unknown } | undefined> {
    assert.ok(raw !== undefined);
    const kv = (await raw.get(`${PREFIX}/routes/${id}`).exec()).kvs[0];
    return kv === undefined ? undefined : { version: kv.version, value: JSON.parse(kv.value.toString('utf8')) };
  }

  test('a PUT is reported as the create it was, applied once, not as a conflict or an update', async () => {
    const { relay, store } = await lossyStore();
    // The read goes through the relay (the first member); the transaction that follows loses its answer there.
    let builds = 0;
    const result = await store.put('routes', 'lost', () => {
      builds += 1;
      relay.dropAnswers();
      return { value: { uri: '/lost', desc: 'sent once' } };
    });
    assert.equal(result.created, true, 'the write created the key');
    assert.equal(builds, 1, 'the value was not rebuilt as if another writer had changed it');
    assert.deepEqual(await stored('lost'), { version: '1', value: { uri: '/lost', desc: 'sent once' } });
    // And the store goes on through the other member.
    assert.equal((await store.put('routes', 'after', () => ({ value: { uri: '/after' } }))).created, true);
    assert.deepEqual((await store.get('routes', 'after'))?.value, { uri: '/after' });
  });

  test('a DELETE is reported as done, not as a key that was not there', async () => {
    const { relay, store } = await lossyStore();
    await store.put('routes', 'doomed', () => ({ value: { uri: '/doomed' } }));
    const deleted = await store.delete('routes', 'doomed', () => {
      relay.dropAnswers();
      return [];
    });
    assert.equal(deleted, true, 'the admin API would answer 404 to a delete that worked');
    assert.equal(await stored('doomed'), undefined);
  });

  test('a member that answers again is taken back into use', async () => {
    const messages: { msg?: string; host?: string }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line !== '') messages.push(JSON.parse(line) as { msg?: string; host?: string });
        done();
      },
    });
    const { relay, store } = await lossyStore(pino({ level: 'info' }, sink));
    await store.put('routes', 'circuit', () => ({ value: { uri: '/circuit', n: 1 } }));
    relay.dropAnswers();
    await store.put('routes', 'circuit', () => ({ value: { uri: '/circuit', n: 2 } }));
    const said = (msg: string): boolean => messages.some((m) => m.msg === msg && m.host === relay.endpoint);
    assert.ok(said('etcd member not answering, moving to the next member'), JSON.stringify(messages));
    relay.passAnswers();
    const deadline = Date.now() + BACK_IN_USE_LIMIT_MS;
    while (!said('etcd member answers again, back in use') && Date.now() < deadline) await sleep(100);
    assert.ok(said('etcd member answers again, back in use'), JSON.stringify(messages));
    assert.deepEqual((await store.get('routes', 'circuit'))?.value, { uri: '/circuit', n: 2 });
  });
});
