/**
 * The HTTP/2 fuzzer through a whole data plane (test/http2/fuzz.test.ts, bench/fuzz.ts --plane): a data plane on
 * the native engine started in-process (standalone, `config_provider: yaml`, no etcd), its route to a real
 * @grpc/grpc-js Greeter upstream, and fuzz-gen.ts's sessions written to its h2c listener over loopback TCP, several
 * at a time. So the relay paths run under fuzzing: Call, Attempt, the ClientPool, upstream streams reset when the
 * client's stream or connection goes, the Greeter's delays and statuses (x-greeter-delay-ms, x-greeter-status).
 *
 * Each session has its own seed drawn from the run's seed, so a session's frames are reproducible; the timing of
 * the network is not. Checks: what the listener writes is well-formed (fuzz-harness.ts's OutputChecker), no
 * exception escapes (the caller watches 'uncaughtException'), and when the run ends the upstream pool's streams
 * return to 0 and a legitimate grpc-js call succeeds on a fresh connection.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as turn, setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@grpc/grpc-js';
import { startDataPlane, type DataPlane } from '../../data-plane/data-plane.ts';
import { MAX_FRAME_SIZE_LIMIT } from '../../data-plane/http2/frame.ts';
import { parseConfig } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import { makeCert } from '../helpers/certs.ts';
import { DELAY_HEADER, STATUS_HEADER, greeterClient, sayHello, startGreeterNode, type GreeterNode, type UnaryOutcome } from '../helpers/greeter.ts';
import { clientGoaway, generateSession, Rng } from './fuzz-gen.ts';
import { FuzzFailure, OutputChecker, newStats, type FuzzStats } from './fuzz-harness.ts';
import { standaloneDeployment } from '../helpers/standalone.ts';

const PLANE_PATHS = [
  '/helloworld.Greeter/SayHello',
  '/helloworld.Greeter/SayHello',
  '/helloworld.Greeter/SayHelloServerStream',
  '/helloworld.Greeter/SayHelloClientStream',
  '/helloworld.Greeter/SayHelloBidirectionalStream',
  '/helloworld.Greeter/NoSuchMethod',
  '/no.such.Service/Method',
];

function planeExtras(rng: Rng): string[] {
  const fields: string[] = [];
  if (rng.chance(0.3)) fields.push(DELAY_HEADER, String(rng.pick([0, 1, 5, 20, 100, 300])));
  if (rng.chance(0.05)) fields.push(STATUS_HEADER, String(rng.range(1, 16)));
  return fields;
}

export interface PlaneFixture {
  readonly plane: DataPlane;
  readonly upstream: GreeterNode;
  readonly port: number;
  /** A legitimate call on a fresh grpc-js connection. */
  sayHello(name: string): Promise<UnaryOutcome>;
  close(): Promise<void>;
}

/** A data plane on the native engine, routing /helloworld.Greeter/* to a Greeter; no etcd. */
export async function startPlane(): Promise<PlaneFixture> {
  const upstream = await startGreeterNode({ id: 'fuzz-upstream' });
  const dir = await mkdtemp(join(tmpdir(), 'h2-fuzz-'));
  const file = join(dir, 'apisix.yaml');
  await writeFile(
    file,
    `upstreams:
  - id: greeter
    scheme: grpc
    type: roundrobin
    nodes:
      "127.0.0.1:${upstream.port}": 1
routes:
  - id: 1
    uri: /helloworld.Greeter/*
    upstream_id: greeter
#END
`,
  );
  const config = parseConfig(`
apisix:
  http2_engine: native
  node_listen: [{ ip: 127.0.0.1, port: 0, enable_http2: true }]
${standaloneDeployment(file)}`);
  const plane = await startDataPlane({ config, log: silentLogger(), defaultCert: await makeCert({ sans: ['localhost'] }) });
  const port = plane.addresses.find((a) => a.kind === 'h2c')?.port;
  if (port === undefined) throw new Error('no h2c listener');
  const clients: Client[] = [];
  return {
    plane,
    upstream,
    port,
    sayHello(name) {
      const client = greeterClient(`127.0.0.1:${port}`);
      clients.push(client);
      return sayHello(client, name, undefined, { deadline: Date.now() + 5_000 });
    },
    async close() {
      for (const client of clients) client.close();
      await plane.close();
      await upstream.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface PlaneOptions {
  readonly seed: number;
  readonly maxFrames?: number;
  readonly budgetMs?: number;
  /** Sessions in flight at once. */
  readonly concurrency?: number;
  readonly maxUnits?: number;
}

/** Fuzzes the fixture's h2c listener until the budget is spent; throws FuzzFailure on a malformed answer. */
export async function fuzzThroughPlane(fixture: PlaneFixture, options: PlaneOptions): Promise<FuzzStats> {
  const master = new Rng(options.seed);
  const stats = newStats();
  const started = performance.now();
  const maxFrames = options.maxFrames ?? Number.POSITIVE_INFINITY;
  const budgetMs = options.budgetMs ?? Number.POSITIVE_INFINITY;
  const more = (): boolean => stats.frames < maxFrames && performance.now() - started < budgetMs;
  let index = 0;
  const worker = async (): Promise<void> => {
    while (more()) {
      const sessionIndex = index++;
      const seed = master.u32();
      await planeSession(new Rng(seed), fixture.port, stats, `seed ${options.seed}, session ${sessionIndex} (session seed ${seed})`);
      stats.sessions++;
      if (stats.sessions % 16 === 0) stats.peakRss = Math.max(stats.peakRss, process.memoryUsage.rss());
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 8 }, worker));
  stats.elapsedMs = performance.now() - started;
  stats.peakRss = Math.max(stats.peakRss, process.memoryUsage.rss());
  return stats;
}

async function planeSession(rng: Rng, port: number, stats: FuzzStats, name: string): Promise<void> {
  const session = generateSession(rng, { paths: PLANE_PATHS, extraFields: planeExtras, maxUnits: 120 });
  stats.sessionKinds[session.kind] = (stats.sessionKinds[session.kind] ?? 0) + 1;
  const checker = new OutputChecker(stats, session.kind);
  checker.maxFrameSize = MAX_FRAME_SIZE_LIMIT; // what the listener applied is not visible from here
  const socket: Socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  let closed = false as boolean; // set by the socket's 'close' event
  const gone = new Promise<void>((resolve) => {
    socket.on('close', () => {
      closed = true;
      resolve();
    });
  });
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => checker.push(chunk));
  await new Promise<void>((resolve) => {
    socket.once('connect', resolve);
    socket.once('close', resolve);
  });
  let lastStream = 0;
  for (let read = session.nextRead(); read !== undefined && !closed; read = session.nextRead()) {
    socket.write(read.bytes);
    stats.frames += read.frames;
    stats.bytes += read.bytes.length;
    lastStream += 2;
    if (rng.chance(0.3)) await turn();
    else if (rng.chance(0.01)) await sleep(rng.int(10));
  }
  const wait = (ms: number): Promise<unknown> => Promise.race([gone, sleep(ms)]);
  if (!closed) {
    if (session.ending === 'goaway') {
      socket.write(clientGoaway(lastStream));
      await wait(rng.int(60));
    } else if (session.ending === 'server-shutdown') {
      socket.end(); // half-close: the listener may still answer what is in flight
      await wait(rng.int(100));
    } else if (rng.chance(0.5)) {
      await wait(rng.int(30));
    }
    const outcome = (closed as boolean) ? 'closed-by-server' : 'closed-by-client'; // the waits above may have seen it close
    stats.outcomes[outcome] = (stats.outcomes[outcome] ?? 0) + 1;
  } else {
    stats.outcomes['closed-by-server'] = (stats.outcomes['closed-by-server'] ?? 0) + 1;
  }
  socket.destroy();
  await gone;
  for (const [kind, n] of Object.entries(session.mutations)) stats.mutations[kind as keyof typeof stats.mutations] = (stats.mutations[kind as keyof typeof stats.mutations] ?? 0) + n;
  if (checker.problem !== undefined) throw new FuzzFailure(`${name}: ${checker.problem}`);
  stats.requests += checker.responses;
}

/** Waits until the data plane's upstream pool has no stream left; returns what it last saw. */
export async function upstreamStreamsDrained(plane: DataPlane, limitMs: number): Promise<{ streams: number; connections: number; bufferedBytes: number }> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const stats = plane.upstreamStats();
    if (stats === undefined) throw new Error('the data plane is not on the native engine');
    if ((stats.streams === 0 && stats.bufferedBytes === 0) || Date.now() > deadline) return stats;
    await sleep(20);
  }
}
