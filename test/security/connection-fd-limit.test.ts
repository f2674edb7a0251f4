/**
 * Issue #11 case 7, the open-file limit: at the fd limit legitimate dials timed out with no log line, because
 * libuv answers EMFILE on accept by silently accepting and closing (its "EMFILE trick"), which never reaches
 * JavaScript. The guard keeps `worker_connections` below the process's open-file limit (here 400, set with
 * `prlimit` on a data plane in its own process: 400 − a quarter in reserve = 300 client connections), so a flood
 * beyond it is refused at accept with a warning, while the clients already connected keep working and the process
 * never runs out of descriptors for its upstream connections.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { status as GrpcCode, type Client } from '@grpc/grpc-js';
import { spawnChildGateway, type ChildGateway } from '../flow/child-gateway.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import { dialRaw, EMPTY_SETTINGS, legitimateCallSucceeds, PREFACE, TEST_TIMEOUT_MS, waitUntil, type RawDial } from './connection-kit.ts';

const OPEN_FILE_LIMIT = 400;
/** capForOpenFileLimit(): the limit less a quarter of it (under 1024, the quarter is below the 256 reserve). */
const EXPECTED_CAP = 300;
/** Well beyond the cap and beyond the limit itself: without the cap the process would hit EMFILE. */
const FLOOD = 450;
const SOURCES = 10;
const READY_LIMIT_MS = 60_000;
const WAIT_LIMIT_MS = 15_000;

describe('client connections at the open-file limit', { timeout: TEST_TIMEOUT_MS * 4 }, () => {
  let dir: string;
  let greeter: GreeterNode;
  let gateway: ChildGateway;
  const clients: Client[] = [];
  const dials: RawDial[] = [];
  const client = (): Client => {
    const made = greeterClient(gateway.h2cAddress);
    clients.push(made);
    return made;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fd-limit-'));
    greeter = await startGreeterNode({ id: 'g' });
    const routes = join(dir, 'apisix.yaml');
    await writeFile(routes, `routes:\n  - id: 1\n    uri: /helloworld.Greeter/*\n    upstream: { scheme: grpc, type: roundrobin, nodes: { "127.0.0.1:${greeter.port}": 1 } }\n#END\n`);
    const config = join(dir, 'config.yaml');
    await writeFile(
      config,
      'nginx_config: { worker_processes: 1, http: { client_header_timeout: 120s } }\n' +
        `deployment: { role_data_plane: { config_provider: yaml, config_file: ${JSON.stringify(routes)} } }\n`,
    );
    gateway = await spawnChildGateway('http://127.0.0.1:9', {
      env: { GATEWAY_CONFIG: config, LOG_LEVEL: 'warn' },
      launcher: ['prlimit', `--nofile=${OPEN_FILE_LIMIT}:${OPEN_FILE_LIMIT}`],
    });
    const readyBy = Date.now() + READY_LIMIT_MS;
    while ((await sayHello(client(), 'ready?')).status.code !== GrpcCode.OK) {
      if (Date.now() > readyBy || gateway.exited) throw new Error(`gateway not ready:\n${gateway.output()}`);
      await sleep(200);
    }
  });

  after(async () => {
    for (const dial of dials) dial.destroy();
    for (const made of clients) made.close();
    // Unset when before() failed part way (the declared types assume it finished).
    await (gateway as ChildGateway | undefined)?.stop();
    await (greeter as GreeterNode | undefined)?.close();
    if ((dir as string | undefined) !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test('a flood beyond the open-file limit is refused at accept with a warning and established clients keep working', { timeout: TEST_TIMEOUT_MS * 2 }, async () => {
    const established = client();
    await legitimateCallSucceeds(established, 'before the flood');
    assert.match(gateway.output(), /worker_connections lowered to fit the open-file limit/, 'the lowered cap is announced at start');

    for (let i = 0; i < FLOOD; i++) {
      dials.push(await dialRaw(Number(gateway.h2cAddress.split(':')[1]), { localAddress: `127.0.0.${2 + (i % SOURCES)}`, first: Buffer.concat([PREFACE, EMPTY_SETTINGS]) }));
    }
    // The first client and the ready probes hold connections too: at least FLOOD − EXPECTED_CAP are refused.
    const refused = (): number => dials.filter((dial) => dial.closed).length;
    await waitUntil(() => refused() >= FLOOD - EXPECTED_CAP, WAIT_LIMIT_MS, () => `only ${refused()} of ${FLOOD} dials were refused`);
    await legitimateCallSucceeds(established, 'at the limit');
    await waitUntil(
      () => /worker_connections reached/.test(gateway.output()),
      WAIT_LIMIT_MS,
      () => `no warning for the refusals; output:\n${gateway.output()}`,
    );
    assert.doesNotMatch(gateway.output(), /EMFILE|out of file descriptors/, 'the process itself never ran out of descriptors');
    assert.equal(gateway.exited, false);

    // Once the flood is gone, a new client dials and calls again (the release is asynchronous: bounded retries).
    for (const dial of dials) dial.destroy();
    const deadline = Date.now() + WAIT_LIMIT_MS;
    let code = -1;
    while (code !== 0 && Date.now() < deadline) {
      code = (await sayHello(client(), 'after the flood')).status.code;
      if (code !== 0) await sleep(200);
    }
    assert.equal(code, 0, 'a new client could not call after the flood was gone');
  });
});
