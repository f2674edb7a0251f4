/**
 * Figures of issue #11's HTTP/2 attacks, against a data plane in its own process and the grpc-go upstream of the
 * benchmarks (bench/setup.sh builds it into bench/.build/upstream-go), on loopback, bounded in time:
 *
 * 1. Rapid reset (CVE-2023-44487): ATTACKERS child processes flood HEADERS+RST_STREAM pairs for SECONDS (reconnecting
 *    whenever the gateway closes a connection) while a grpc-js client makes unary calls and holds LONG_STREAMS
 *    long-lived server streams to the same upstream node. Reports streams sent, streams that reached the upstream
 *    (the upstream's completed + failed calls), how the gateway closed the attackers' connections, the legitimate
 *    calls' p50/p99 before and during the attack, their failures, whether every long-lived stream survived, and how
 *    often the gateway's upstream sessions failed.
 * 2. Non-reading client: one connection opens STREAMS server streams (64 MiB each) and never sends WINDOW_UPDATE;
 *    reports the data plane's RSS growth (single process, so the RSS is its own) and how many streams were refused.
 *
 *   node bench/security.ts [--seconds 20] [--attackers 2] [--workers 2] [--streams 1000]
 *
 * Prints one JSON report. Everything it starts is stopped, also on failure.
 */
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from '../shared/config.ts';
import { keepOutputTail, stopChild } from '../scripts/local-processes.ts';
import { startEtcd } from '../test/helpers/etcd.ts';
import { freePort } from '../test/helpers/ports.ts';
import { putEtcdJson, spawnChildGateway } from '../test/flow/child-gateway.ts';
import { rapidResetFlood } from '../test/security/rapid-reset-flood.ts';
import { holdNonReadingStreams } from '../test/security/non-reading-client.ts';
import { legitimateLoad, type LegitimateLoad } from './lib/legitimate-load.ts';
import { openProbe } from './lib/grpc.ts';
import { summarize } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    attackers: { type: 'string', default: '2' },
    workers: { type: 'string', default: '2' },
    streams: { type: 'string', default: '1000' },
    // internal: this script run as one attacker process
    'attack-target': { type: 'string' },
  },
});

const UPSTREAM_BIN = `${REPO_ROOT}/bench/.build/upstream-go`;
const ATTACK_PATH = '/bench.Echo/Unary';
const BASELINE_MS = 5_000;
const LONG_STREAMS = 4;
const MiB = 1024 * 1024;
const READY_LIMIT_MS = 60_000;

if (values['attack-target'] !== undefined) {
  const [host, port] = values['attack-target'].split(':');
  const result = await rapidResetFlood({ target: { host: host ?? '127.0.0.1', port: Number(port) }, path: ATTACK_PATH, durationMs: Number(values.seconds) * 1000 });
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

const seconds = Number(values.seconds);
const etcd = await startEtcd();
const statsPort = await freePort();
const upstreamPort = await freePort();
const upstream = spawn(UPSTREAM_BIN, ['-port', String(upstreamPort), '-stats-port', String(statsPort)], { stdio: ['ignore', 'pipe', 'pipe'] });
const upstreamTail = keepOutputTail(upstream, 4000);
const upstreamStats = async (): Promise<{ unary: number; stream: number; failed: number }> =>
  (await (await fetch(`http://127.0.0.1:${statsPort}/stats`)).json()) as { unary: number; stream: number; failed: number };
const stops: (() => Promise<void>)[] = [() => stopChild(upstream, 5000), () => etcd.close()];
try {
  await putEtcdJson(etcd.endpoint, '/apisix/routes/1', { uri: '/bench.Echo/*', upstream: { scheme: 'grpc', nodes: { [`127.0.0.1:${upstreamPort}`]: 1 } } });
  const rapidReset = await runRapidReset();
  const nonReading = await runNonReading();
  process.stdout.write(`${JSON.stringify({ rapidReset, nonReading }, null, 2)}\n`);
} catch (err) {
  process.stderr.write(`bench failed: ${String(err)}\nupstream: ${upstreamTail.text()}\n`);
  process.exitCode = 1;
} finally {
  for (const stop of stops.reverse()) await stop();
}

async function runRapidReset(): Promise<Record<string, unknown>> {
  const gateway = await spawnChildGateway(etcd.endpoint, { workers: Number(values.workers), env: { LOG_LEVEL: 'info' } });
  stops.push(() => gateway.stop());
  let load: LegitimateLoad | undefined;
  try {
    await waitForGateway(gateway.h2cAddress);
    load = await legitimateLoad(gateway.h2cAddress, { longStreams: LONG_STREAMS, readyLimitMs: READY_LIMIT_MS });
    await sleep(BASELINE_MS);
    const before = load.takeLatencies();
    const statsBefore = await upstreamStats();
    const attackers = Array.from({ length: Number(values.attackers) }, () => attackerProcess(gateway.h2cAddress));
    const floods = await Promise.all(attackers);
    const during = load.takeLatencies();
    const statsAfter = await upstreamStats();
    const survivors = await load.longStreamsAlive();
    const output = gateway.output();
    return {
      seconds,
      attackers: floods.length,
      workers: Number(values.workers),
      streamsSent: floods.reduce((n, f) => n + f.streamsSent, 0),
      connections: floods.reduce((n, f) => n + f.connections, 0),
      goawayCodes: floods.map((f) => f.goawayCodes),
      // Calls the upstream saw end (completed or failed) during the attack, less the legitimate unary calls.
      attackStreamsReachingUpstream:
        statsAfter.unary + statsAfter.stream + statsAfter.failed - (statsBefore.unary + statsBefore.stream + statsBefore.failed) - during.latencies.length - during.failures,
      legitimateBefore: summarize(before.latencies),
      legitimateDuring: summarize(during.latencies),
      legitimateFailuresDuring: during.failures,
      longStreamsSurvived: `${survivors} of ${LONG_STREAMS}`,
      upstreamSessionErrorsInLogTail: (output.match(/upstream session error/g) ?? []).length,
    };
  } catch (err) {
    throw new Error(`${String(err)}\ngateway: ${gateway.output()}`);
  } finally {
    load?.close();
    await gateway.stop();
  }
}

/** Polls with a raw probe until a call through the gateway succeeds (worker start-up takes seconds on a busy machine). */
async function waitForGateway(address: string): Promise<void> {
  const deadline = Date.now() + READY_LIMIT_MS;
  while (Date.now() < deadline) {
    const probe = await openProbe(address).catch(() => undefined);
    const status = await probe?.call(ATTACK_PATH);
    probe?.close();
    if (status === 0) return;
    await sleep(200);
  }
  throw new Error(`no call through ${address} succeeded within ${READY_LIMIT_MS} ms`);
}

async function attackerProcess(target: string): Promise<{ streamsSent: number; connections: number; goawayCodes: Record<string, number> }> {
  const child = spawn(process.execPath, ['bench/security.ts', '--attack-target', target, '--seconds', String(seconds)], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  stops.push(() => stopChild(child, 5000));
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return JSON.parse(out.trim() || '{"streamsSent":0,"connections":0,"goawayCodes":{}}') as { streamsSent: number; connections: number; goawayCodes: Record<string, number> };
}

async function runNonReading(): Promise<Record<string, unknown>> {
  const gateway = await spawnChildGateway(etcd.endpoint, { workers: 1 });
  stops.push(() => gateway.stop());
  try {
    await waitForGateway(gateway.h2cAddress);
    const warm = await legitimateLoad(gateway.h2cAddress, { longStreams: 0, readyLimitMs: READY_LIMIT_MS });
    await sleep(1000);
    warm.close();
    await sleep(500);
    const baseline = gateway.rssKiB() ?? 0;
    const [host, port] = gateway.h2cAddress.split(':');
    const held = await holdNonReadingStreams({
      target: { host: host ?? '127.0.0.1', port: Number(port) },
      path: '/bench.Echo/Stream',
      streams: Number(values.streams),
      sampleRss: () => gateway.rssKiB() ?? 0,
    });
    held.client.destroy();
    return {
      streamsOpened: Number(values.streams),
      streamsRefused: held.refused,
      streamsServed: held.served,
      rssBaselineMiB: +(baseline / 1024).toFixed(1),
      rssPeakMiB: +(held.peakRssKiB / 1024).toFixed(1),
      rssGrowthMiB: +((held.peakRssKiB - baseline) / 1024).toFixed(1),
      rssGrowthPerServedStreamKiB: held.served === 0 ? 0 : Math.round((held.peakRssKiB - baseline) / held.served),
      upstreamMessageMiB: 64,
      heldForMs: held.heldMs,
      note: `each stream asks for ${64 * MiB} bytes; the client never sends WINDOW_UPDATE`,
    };
  } finally {
    await gateway.stop();
  }
}
