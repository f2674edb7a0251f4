/**
 * Half-open connections against a gateway in its own process (issue #11 case 7): COUNT raw TCP connections that
 * never send a byte, then COUNT that send only the HTTP/2 preface, held open by this process and never read (the
 * worst client: it never answers the gateway's FIN either). For each wave it reports the gateway's open file
 * descriptors (/proc/<pid>/fd) before, at their peak and after the wait, that is how many connections the gateway
 * closed within its `client_header_timeout` (the shipped default, 10 s, unless --header-timeout is given) plus a
 * margin; its VmRSS before / at the peak / after; and how many legitimate calls on fresh connections succeeded
 * while the wave was held (one a second). Loopback only; the sources are spread over 127.0.0.2–127.0.0.(1+SOURCES)
 * so that the default per-address cap (1000) does not refuse them (the global cap, 10620, does not either);
 * everything it starts is stopped and every wait is bounded. Prints one JSON report.
 *
 *   node bench/half-open.ts [--count 10000] [--sources 20] [--header-timeout 10s]
 *
 * Each process needs COUNT + a few hundred file descriptors (`ulimit -n`; Node raises its soft limit to the hard one).
 */
import { readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { spawnChildGateway, type ChildGateway } from '../test/flow/child-gateway.ts';
import { openProbe, startOkUpstream } from './lib/grpc.ts';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '10000' },
    sources: { type: 'string', default: '20' },
    'header-timeout': { type: 'string', default: '10s' },
  },
});
const COUNT = Number(values.count);
const SOURCES = Number(values.sources);
const HEADER_TIMEOUT = values['header-timeout'];
/** Dials in flight at once: below the listen backlog (511), so the kernel never drops a SYN. */
const DIAL_CONCURRENCY = 200;
/** How long after the last dial the gateway has to close the wave: the timeout plus this margin. */
const CLOSE_MARGIN_MS = 15_000;
const READY_LIMIT_MS = 60_000;
/** A legitimate call (on a new connection: a dial must still get through) this often during each wave. */
const LEGITIMATE_CALL_GAP_MS = 1_000;
/** How often the gateway's fds and RSS are sampled. */
const SAMPLE_MS = 200;
/** The gateway's own fds that may come and go (the legitimate calls' connections, upstream sessions). */
const FD_SLACK = 5;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const CALL_PATH = '/bench.Ok/Call';

interface WaveReport {
  kind: string;
  opened: number;
  failedToOpen: number;
  openSeconds: number;
  /** The gateway's open file descriptors (/proc/<pid>/fd): the server-side truth, whatever the clients see. */
  gatewayFds: { before: number; peak: number; afterTimeout: number };
  /** Connections of the wave the gateway no longer held at the end of the wait (opened minus fds gained). */
  closedByGateway: number;
  /** From the last dial until the gateway's fds were back to where they started; null if they never were. */
  secondsFromLastDialToAllClosed: number | null;
  rssMiB: { before: number | undefined; peak: number | undefined; afterTimeout: number | undefined };
  legitimateCalls: { ok: number; of: number };
}

const mib = (kib: number | undefined): number | undefined => (kib === undefined ? undefined : Math.round(kib / 102.4) / 10);
const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

async function legitimateCall(address: string): Promise<boolean> {
  const probe = await openProbe(address).catch(() => undefined);
  if (probe === undefined) return false;
  try {
    return (await Promise.race([probe.call(CALL_PATH), sleep(5_000, -2)])) === 0;
  } finally {
    probe.close();
  }
}

/**
 * One wave of COUNT connections that write `first` (or nothing) and never read: the worst client for a server,
 * whose graceful close (FIN) it never answers. Legitimate calls run every LEGITIMATE_CALL_GAP_MS throughout.
 */
async function wave(gateway: ChildGateway, kind: string, first: Buffer | undefined): Promise<WaveReport> {
  const [host, portText] = gateway.h2cAddress.split(':');
  const port = Number(portText);
  const before = { fds: fdCount(gateway.pid), rss: gateway.rssKiB() };
  const peak = { fds: before.fds, rss: before.rss ?? 0 };
  const sampler = setInterval(() => {
    peak.fds = Math.max(peak.fds, fdCount(gateway.pid));
    peak.rss = Math.max(peak.rss, gateway.rssKiB() ?? 0);
  }, SAMPLE_MS);
  const calls: boolean[] = [];
  let waveOver = false as boolean; // set when the wave ends, which the loop below waits for
  const legitimate = (async () => {
    while (!waveOver) {
      calls.push(await legitimateCall(gateway.h2cAddress));
      await sleep(LEGITIMATE_CALL_GAP_MS);
    }
  })();
  const sockets: Socket[] = [];
  let failed = 0;
  const started = performance.now();
  const dial = (i: number): Promise<void> =>
    new Promise((resolve) => {
      const socket = netConnect({ host, port, localAddress: `127.0.0.${2 + (i % SOURCES)}` });
      socket.once('error', () => {
        failed += 1;
        resolve();
      });
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        socket.on('error', () => undefined); // a reset once the gateway closes it: expected
        if (first !== undefined) socket.write(first);
        sockets.push(socket);
        resolve();
      });
    });
  for (let next = 0; next < COUNT; ) {
    const batch: Promise<void>[] = [];
    for (let j = 0; j < DIAL_CONCURRENCY && next < COUNT; j++) batch.push(dial(next++));
    await Promise.all(batch);
  }
  const lastDialAt = performance.now();
  const deadline = Date.now() + parseTimeoutMs(HEADER_TIMEOUT) + CLOSE_MARGIN_MS;
  let allClosedAt: number | undefined;
  while (Date.now() < deadline) {
    if (fdCount(gateway.pid) <= before.fds + FD_SLACK) {
      allClosedAt = performance.now();
      break;
    }
    await sleep(SAMPLE_MS);
  }
  waveOver = true;
  await legitimate;
  clearInterval(sampler);
  const after = { fds: fdCount(gateway.pid), rss: gateway.rssKiB() };
  for (const socket of sockets) socket.destroy();
  await sleep(1_000);
  return {
    kind,
    opened: sockets.length,
    failedToOpen: failed,
    openSeconds: +((lastDialAt - started) / 1000).toFixed(1),
    gatewayFds: { before: before.fds, peak: peak.fds, afterTimeout: after.fds },
    closedByGateway: sockets.length - Math.min(sockets.length, Math.max(0, after.fds - before.fds)),
    secondsFromLastDialToAllClosed: allClosedAt === undefined ? null : +((allClosedAt - lastDialAt) / 1000).toFixed(1),
    rssMiB: { before: mib(before.rss), peak: mib(peak.rss), afterTimeout: mib(after.rss) },
    legitimateCalls: { ok: calls.filter(Boolean).length, of: calls.length },
  };
}

function parseTimeoutMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(text);
  if (m === null) throw new Error(`--header-timeout: expected 10s or 500ms, got ${text}`);
  return Number(m[1]) * (m[2] === 'ms' ? 1 : 1000);
}

const dir = await mkdtemp(join(tmpdir(), 'half-open-'));
const upstream = await startOkUpstream();
let gateway: ChildGateway | undefined;
try {
  const routes = join(dir, 'apisix.yaml');
  await writeFile(routes, `routes:\n  - id: 1\n    uri: /bench.Ok/*\n    upstream: { scheme: grpc, type: roundrobin, nodes: { "${upstream.address}": 1 } }\n#END\n`);
  const config = join(dir, 'config.yaml');
  await writeFile(
    config,
    `nginx_config: { worker_processes: 1, http: { client_header_timeout: ${HEADER_TIMEOUT} } }\n` +
      `deployment: { role_data_plane: { config_provider: yaml, config_file: ${JSON.stringify(routes)} } }\n`,
  );
  gateway = await spawnChildGateway('http://127.0.0.1:9', { env: { GATEWAY_CONFIG: config, LOG_LEVEL: 'warn' } });
  const readyBy = Date.now() + READY_LIMIT_MS;
  while (!(await legitimateCall(gateway.h2cAddress))) {
    if (Date.now() > readyBy || gateway.exited) throw new Error(`gateway not ready:\n${gateway.output()}`);
    await sleep(200);
  }
  const reports = [await wave(gateway, 'raw TCP, silent, never reads', undefined), await wave(gateway, 'h2c preface only, never reads', PREFACE)];
  const warnings = gateway.output().split('\n').filter((line) => line.includes('client_header_timeout')).length;
  console.log(JSON.stringify({ count: COUNT, sources: SOURCES, clientHeaderTimeout: HEADER_TIMEOUT, waves: reports, headerTimeoutWarningLines: warnings }, null, 2));
} finally {
  await gateway?.stop();
  await upstream.close();
  await rm(dir, { recursive: true, force: true });
}
