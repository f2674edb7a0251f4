/**
 * Standalone mode's config source (data-plane/config/yaml-source.ts) against real files in a temp dir: what a
 * file yields, the `#END` rule, `${{VAR}}`, the last-good-value rule per item and for the whole file, reloads and
 * close(). Files are replaced by rename, as an operator should, so no poll ever sees one half-written; the
 * half-written case is a file without `#END`. Waits are bounded polls on observable results (states, log lines),
 * never sleeps with a duration asserted.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { pino } from 'pino';
import type { ConfigState } from '../../data-plane/config/config-state.ts';
import type { ConfigSource } from '../../data-plane/config/source.ts';
import { createYamlConfigSource, type YamlConfigSourceOptions } from '../../data-plane/config/yaml-source.ts';
import { DOCUMENTED_KEYRING, REPO_ROOT, type Env } from '../../shared/config.ts';
import { makeCert, type CertAndKey } from '../helpers/certs.ts';
import { waitUntil } from '../helpers/fake-upstream.ts';

const POLL_MS = 20;
const WAIT_MS = 5_000;

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

interface Harness {
  file: string;
  source: ConfigSource;
  /** States handed to onChange, in order (the first state is start()'s, not in here). */
  changes: ConfigState[];
  lines: LogLine[];
  /** Replaces the file atomically (write next to it, rename over it). */
  write(text: string): Promise<void>;
  waitForLog(msg: string, match?: (line: LogLine) => boolean): Promise<LogLine>;
  waitForChanges(count: number): Promise<ConfigState>;
}

const dirs: string[] = [];
const sources: ConfigSource[] = [];
let writes = 0;

afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.close()));
});

after(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function harness(initial: string | undefined, options: Partial<YamlConfigSourceOptions> = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'yaml-source-'));
  dirs.push(dir);
  const file = options.file ?? join(dir, 'apisix.yaml');
  const changes: ConfigState[] = [];
  const lines: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (text: string) => void lines.push(JSON.parse(text) as LogLine) });
  const write = async (text: string): Promise<void> => {
    const temp = join(dir, `next-${writes++}.yaml`);
    await writeFile(temp, text);
    await rename(temp, file);
  };
  if (initial !== undefined) await write(initial);
  const source = createYamlConfigSource({ file, log, onChange: (state) => changes.push(state), pollMs: POLL_MS, env: {}, ...options });
  sources.push(source);
  return {
    file,
    source,
    changes,
    lines,
    write,
    async waitForLog(msg, match = () => true) {
      let found: LogLine | undefined;
      await waitUntil(() => (found = lines.find((l) => l.msg === msg && match(l))) !== undefined, WAIT_MS, () => `log line "${msg}"`);
      if (found === undefined) throw new Error('unreachable');
      return found;
    },
    async waitForChanges(count) {
      await waitUntil(() => changes.length >= count, WAIT_MS, () => `${count} change(s), saw ${changes.length}`);
      const last = changes[count - 1];
      if (last === undefined) throw new Error('unreachable');
      return last;
    },
  };
}

function routeFile(uri: string, extra = ''): string {
  return `routes:\n  - id: r1\n    uri: ${uri}\n    upstream: { nodes: { "127.0.0.1:1980": 1 } }\n${extra}#END\n`;
}

/** Follows a promise's outcome without awaiting it, so a test can check that it has not settled yet. */
function track(promise: Promise<unknown>): { state: 'pending' | 'resolved' | 'rejected' } {
  const tracked: { state: 'pending' | 'resolved' | 'rejected' } = { state: 'pending' };
  promise.then(
    () => (tracked.state = 'resolved'),
    () => (tracked.state = 'rejected'),
  );
  return tracked;
}

describe('standalone YAML config source', () => {
  let pem: CertAndKey;

  before(async () => {
    pem = await makeCert({ sans: ['test.com'] });
  });

  test('loads routes and upstreams, following upstream_id, with arr_<n> ids for items without one', async () => {
    const h = await harness(`
upstreams:
  - id: 1
    scheme: grpc
    nodes: { "127.0.0.1:9088": 1 }
routes:
  - id: 1
    methods: [POST]
    uri: /hello
    upstream_id: 1
  - uri: /helloworld.Greeter/SayHello
    upstream: { nodes: { "127.0.0.1:50051": 1 } }
#END
`);
    const state = await h.source.start();
    assert.equal(state.revision, '1');
    assert.deepEqual([...state.routes.keys()].sort(), ['1', 'arr_2']);
    assert.equal(state.routes.get('1')?.value.upstream_id, 1);
    assert.equal(state.routes.get('arr_2')?.value.uri, '/helloworld.Greeter/SayHello');
    assert.equal(state.routes.get('arr_2')?.value.id, 'arr_2');
    assert.deepEqual(state.upstreams.get('1')?.value.nodes, { '127.0.0.1:9088': 1 });
    assert.equal(h.source.current(), state);
    assert.equal(h.source.health().connected, true);
  });

  test('replaces ${{VAR}} and ${{VAR:=default}} from the environment', async () => {
    const env: Env = { GREETER_HOST: '10.0.0.7' };
    const h = await harness(
      'routes:\n  - id: 1\n    uri: /a.B/C\n    upstream: { nodes: { "${{GREETER_HOST}}:${{GREETER_PORT:=50051}}": 1 } }\n#END\n',
      { env },
    );
    const state = await h.source.start();
    assert.deepEqual(state.routes.get('1')?.value.upstream?.nodes, { '10.0.0.7:50051': 1 });
  });

  test('a file without #END at start is not applied; start() resolves once the file is complete', async () => {
    const h = await harness('routes:\n  - id: r1\n    uri: /a.B/C\n    upstream: { nodes: { "127.0.0.1:1980": 1 } }\n');
    const started = h.source.start();
    const outcome = track(started);
    const warn = await h.waitForLog('the standalone config file is not usable yet; waiting for a valid one');
    assert.equal(warn['reason'], `missing valid end flag in file ${h.file}`);
    assert.equal(outcome.state, 'pending');
    assert.equal(h.source.current(), undefined);
    assert.equal(h.source.health().connected, false);
    await h.write(routeFile('/a.B/C'));
    const state = await started;
    assert.equal(state.routes.get('r1')?.value.uri, '/a.B/C');
    assert.equal(h.source.health().connected, true);
    assert.equal(h.changes.length, 0, 'the first state is start()\'s, not an onChange');
  });

  test('a missing file at start is waited for', async () => {
    const h = await harness(undefined);
    const started = h.source.start();
    const outcome = track(started);
    const warn = await h.waitForLog('the standalone config file is not usable yet; waiting for a valid one');
    assert.match(String(warn['reason']), /ENOENT/);
    assert.equal(outcome.state, 'pending');
    await h.write(routeFile('/a.B/C'));
    assert.equal((await started).routes.size, 1);
  });

  test('a reload without #END keeps the last good state and reports stale until a complete file comes', async () => {
    const h = await harness(routeFile('/a.B/C'));
    const first = await h.source.start();
    await h.write('routes:\n  - id: r1\n    uri: /half.Written/');
    const error = await h.waitForLog('cannot apply the standalone config file; keeping the last good configuration');
    assert.equal(error['reason'], `missing valid end flag in file ${h.file}`);
    assert.equal(error['file'], h.file);
    assert.equal(h.source.current(), first);
    assert.equal(h.source.health().connected, false);
    assert.equal(h.changes.length, 0);

    await h.write(routeFile('/x.Y/Z'));
    const next = await h.waitForChanges(1);
    assert.equal(next.routes.get('r1')?.value.uri, '/x.Y/Z');
    assert.equal(next.revision, '2');
    assert.equal(h.source.health().connected, true);
  });

  test('a YAML syntax error keeps the last good state, and a good file is applied again', async () => {
    const h = await harness(routeFile('/a.B/C'));
    const first = await h.source.start();
    await h.write('routes:\n  - id: r1\n    uri: [unclosed\n#END\n');
    const error = await h.waitForLog('cannot apply the standalone config file; keeping the last good configuration');
    assert.match(String(error['reason']), /^invalid YAML in file /);
    assert.equal(h.source.current(), first);
    assert.equal(h.source.health().connected, false);
    await h.write(routeFile('/x.Y/Z'));
    assert.equal((await h.waitForChanges(1)).routes.get('r1')?.value.uri, '/x.Y/Z');
    assert.equal(h.source.health().connected, true);
  });

  test('a file that disappears keeps the last good state, stale, until it is back', async () => {
    const h = await harness(routeFile('/a.B/C'));
    const first = await h.source.start();
    await unlink(h.file);
    await h.waitForLog('cannot apply the standalone config file; keeping the last good configuration', (l) => /ENOENT/.test(String(l['reason'])));
    assert.equal(h.source.health().connected, false);
    assert.equal(h.source.current(), first);
    await h.write(routeFile('/a.B/C'));
    await h.waitForLog('the standalone config file is valid again');
    assert.equal(h.source.health().connected, true);
    assert.equal(h.source.current(), first, 'the same text makes no new state');
    assert.equal(h.changes.length, 0);
  });

  test('an invalid item is skipped with a log line naming it, and its last good value stays', async () => {
    const h = await harness(routeFile('/a.B/C'));
    await h.source.start();
    await h.write(`routes:
  - id: r1
    uri: 42
    upstream: { nodes: { "127.0.0.1:1980": 1 } }
  - id: r2
    uri: /new.Route/Call
    upstream: { nodes: { "127.0.0.1:1980": 1 } }
#END
`);
    const next = await h.waitForChanges(1);
    assert.equal(next.routes.get('r1')?.value.uri, '/a.B/C');
    assert.equal(next.routes.get('r1')?.modRevision, '1');
    assert.equal(next.routes.get('r2')?.value.uri, '/new.Route/Call');
    const warn = h.lines.find((l) => l.level === 40 && l['key'] === '/apisix/routes/r1');
    assert.ok(warn !== undefined, 'no warning names the invalid route');
    assert.equal(warn['keptPrevious'], true);
    assert.equal(h.source.health().connected, true, 'an invalid item does not make the whole file stale');
  });

  test('an item removed from the file vanishes from the state', async () => {
    const h = await harness(routeFile('/a.B/C', 'upstreams:\n  - id: u1\n    nodes: { "127.0.0.1:1": 1 }\n'));
    const first = await h.source.start();
    assert.equal(first.upstreams.size, 1);
    await h.write(routeFile('/a.B/C'));
    const next = await h.waitForChanges(1);
    assert.equal(next.upstreams.size, 0);
    assert.equal(next.routes.size, 1);
  });

  test('duplicate ids keep the first item; unknown and APISIX-only keys are ignored with a log line', async () => {
    const h = await harness(`
routes_conf_version: 3
routes:
  - { id: 1, uri: /first.S/M, upstream: { nodes: { "127.0.0.1:1": 1 } } }
  - { id: 1, uri: /second.S/M, upstream: { nodes: { "127.0.0.1:1": 1 } } }
  - { id: { nested: true }, uri: /bad.Id/M, upstream: { nodes: { "127.0.0.1:1": 1 } } }
stream_routes:
  - { id: 1 }
protos: []
consumer_groups:
  - { id: silver, plugins: { limit-count: { count: 5, time_window: 60 } } }
plugin_metadata:
  - { id: limit-count, limit_header: X-Quota-Limit }
colours: [red]
#END
`);
    const state = await h.source.start();
    assert.deepEqual([...state.routes.keys()], ['1']);
    assert.equal(state.consumer_groups.get('silver')?.value.plugins['limit-count']?.count, 5, 'consumer groups are served');
    assert.equal(state.plugin_metadata.get('limit-count')?.value.limit_header, 'X-Quota-Limit', 'plugin metadata is served');
    assert.equal(state.routes.get('1')?.value.uri, '/first.S/M');
    const problems = h.lines.filter((l) => l.msg === 'skipped an item of the standalone config file').map((l) => String(l['problem']));
    assert.equal(problems.length, 2);
    assert.match(problems[0] ?? '', /duplicate id 1/);
    assert.match(problems[1] ?? '', /id must be a string or a number/);
    const ignored = h.lines.find((l) => l.msg === 'APISIX resources this gateway does not use are ignored');
    assert.deepEqual(ignored?.['keys'], ['stream_routes'], 'protos (an empty list here) are served');
    const unknown = h.lines.find((l) => l.msg === 'unknown top-level keys in the standalone config file are ignored');
    assert.deepEqual(unknown?.['keys'], ['colours']);
  });

  test('ssls take a plain PEM private key, also indented in a quoted string, with the keyring configured', async () => {
    const indented = JSON.stringify(`\n  ${pem.key}`);
    const h = await harness(
      `ssls:\n  - id: 1\n    snis: [test.com]\n    cert: ${JSON.stringify(pem.cert)}\n    key: ${JSON.stringify(pem.key)}\n` +
        `  - id: 2\n    sni: other.test\n    cert: ${JSON.stringify(pem.cert)}\n    key: ${indented}\n#END\n`,
      { keyring: DOCUMENTED_KEYRING },
    );
    const state = await h.source.start();
    assert.equal(state.ssls.get('1')?.value.key, pem.key);
    assert.equal(state.ssls.get('2')?.value.key, pem.key);
  });

  test('an unchanged item keeps its item and mod_revision across reloads; a changed one gets the new revision', async () => {
    const h = await harness(routeFile('/a.B/C', 'upstreams:\n  - id: u1\n    nodes: { "127.0.0.1:1": 1 }\n'));
    const first = await h.source.start();
    await h.write(routeFile('/x.Y/Z', 'upstreams:\n  - id: u1\n    nodes: { "127.0.0.1:1": 1 }\n'));
    const next = await h.waitForChanges(1);
    assert.equal(next.revision, '2');
    assert.equal(next.upstreams.get('u1')?.modRevision, '1');
    // The snapshot build reuses what an unchanged item resolved to by identity (snapshots.ts).
    assert.equal(next.upstreams.get('u1'), first.upstreams.get('u1'));
    assert.equal(next.routes.get('r1')?.modRevision, '2');
  });

  test('an edit that changes no item (a comment, the order of keys) makes no new state', async () => {
    const h = await harness(routeFile('/a.B/C'));
    const first = await h.source.start();
    await h.write(`# edited by hand\n${routeFile('/a.B/C')}`);
    await h.waitForLog('the standalone config file changed; the configuration did not');
    assert.equal(h.changes.length, 0);
    assert.equal(h.source.current(), first);
    assert.equal(h.source.health().connected, true);
    await h.write(routeFile('/x.Y/Z'));
    assert.equal((await h.waitForChanges(1)).revision, '2', 'the revision counts configuration changes only');
  });

  test('a file rewritten with the same text makes no new state', async () => {
    const h = await harness(routeFile('/a.B/C'));
    const first = await h.source.start();
    await h.write(routeFile('/a.B/C'));
    await h.waitForLog('the standalone config file was rewritten unchanged');
    assert.equal(h.changes.length, 0);
    assert.equal(h.source.current(), first);
  });

  test('close() stops polling: a change written afterwards is not read', async () => {
    const h = await harness(routeFile('/a.B/C'));
    const first = await h.source.start();
    await h.source.close();
    await h.source.close(); // idempotent
    assert.equal(h.source.health().connected, false);
    // A live source on the same file sees the change: by then the closed one would have seen it too.
    const witness = createYamlConfigSource({ file: h.file, log: pino({ level: "silent" }), onChange: () => undefined, pollMs: POLL_MS, env: {} });
    sources.push(witness);
    await witness.start();
    await h.write(routeFile('/x.Y/Z'));
    await waitUntil(() => witness.current()?.routes.get('r1')?.value.uri === '/x.Y/Z', WAIT_MS, () => 'witness saw the change');
    assert.equal(h.changes.length, 0);
    assert.equal(h.source.current(), first);
  });

  test('start() rejects when the source is closed before a valid file is read', async () => {
    const h = await harness('routes: []\n');
    const started = h.source.start();
    await h.waitForLog('the standalone config file is not usable yet; waiting for a valid one');
    await h.source.close();
    await assert.rejects(started, /closed before/);
    await assert.rejects(h.source.start(), /closed before/);
  });

  test('the shipped conf/apisix.yaml loads and routes the seed document\'s SayHello to 127.0.0.1:50051', async () => {
    const h = await harness(undefined, { file: join(REPO_ROOT, 'conf/apisix.yaml'), env: {} });
    const state = await h.source.start();
    assert.equal(state.routes.size, 1);
    const route = state.routes.get('1')?.value;
    assert.equal(route?.uri, '/helloworld.Greeter/SayHello');
    assert.deepEqual(route.methods, ['POST', 'GET']);
    assert.deepEqual(route.upstream?.nodes, { '127.0.0.1:50051': 1 });
    assert.equal(route.upstream.scheme, 'grpc');
    assert.equal(h.lines.filter((l) => l.level >= 40).length, 0, 'the shipped file logs no warning');
  });
});
