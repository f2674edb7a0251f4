/**
 * Memory of the gateway under a slow reader (issue #3; issue #12 asks it of both HTTP/2 engines), outside the test
 * suite and with adjustable sizes: starts a local etcd and a raw HTTP/2 "bulk" upstream, streams TOTAL MiB of
 * MESSAGE KiB messages to a client that reads in bursts and stalls once directly from the upstream (baseline), then,
 * for each engine, starts a data plane in its own process with that engine (a copy of conf/config.yaml with
 * `apisix.http2_engine` set, and GATEWAY_HTTP2_ENGINE; one process, no workers, as
 * test/flow/slow-reader-memory.test.ts runs it), checks that the process logged that engine, streams the same
 * through it while sampling its VmRSS, and stops it. Prints one JSON report on stdout: per engine the RSS growth against the goal (< 64 MiB), the call's
 * status and messages, and how far the upstream advanced during each stall. Everything it starts is stopped.
 *
 *   npm exec -- node bench/memory-slow-reader.ts [--engine native|node|both] [--total-mib 200]
 *                                                             [--message-kib 64] [--stall-ms 600]
 *
 * --engine takes one engine, `both` (the default) or a comma-separated list. Exit status 0 when every engine's run
 * ended with grpc-status 0, every message intact and the RSS growth under the goal; 1 otherwise. `npm run bench`
 * runs it as its `slow-reader` case for the gateway targets it measures.
 *
 * The scenario itself lives in test/flow/slow-reader.ts, shared with test/flow/slow-reader-memory.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Http2Engine } from '../shared/config.ts';
import { expectEngine, writeEngineConfig } from './vs-nginx/targets.ts';
import { startEtcd } from '../test/helpers/etcd.ts';
import { putEtcdJson, spawnChildGateway } from '../test/flow/child-gateway.ts';
import { slowRead, startBulkUpstream, waitUntilRouted, type SlowReadOptions } from '../test/flow/slow-reader.ts';

const MiB = 1024 * 1024;
/** Issue #3's and issue #12's bound on the data plane's RSS growth during the 200 MiB run. */
const RSS_GROWTH_GOAL_MIB = 64;
const ENGINES: readonly Http2Engine[] = ['native', 'node'];

const { values } = parseArgs({
  options: {
    engine: { type: 'string', default: 'both' },
    'total-mib': { type: 'string', default: '200' },
    'message-kib': { type: 'string', default: '64' },
    'stall-ms': { type: 'string', default: '600' },
  },
});
const totalBytes = Number(values['total-mib']) * MiB;
const messageBytes = Number(values['message-kib']) * 1024;
const stallMs = Number(values['stall-ms']);
const engines = parseEngines(values.engine);

function parseEngines(value: string): Http2Engine[] {
  if (value === 'both') return [...ENGINES];
  const list = value.split(',').map((s) => s.trim());
  const unknown = list.find((e) => !(ENGINES as readonly string[]).includes(e));
  if (unknown !== undefined || list.length === 0) {
    console.error(`--engine: expected native, node, both or a comma-separated list, got ${JSON.stringify(value)}`);
    process.exit(2);
  }
  return [...new Set(list)] as Http2Engine[];
}

const mib = (kib: number): number => +(kib / 1024).toFixed(1);
/** grpc-status as a number for the JSON report (slowRead gives the trailer's text); null when none arrived. */
const statusCode = (status: string | undefined): number | null => (status === undefined || !/^\d+$/.test(status) ? null : Number(status));

const configDir = mkdtempSync(join(tmpdir(), 'gw-slow-reader-'));
const etcd = await startEtcd();
const upstream = await startBulkUpstream();
let allMet = true;
try {
  await putEtcdJson(etcd.endpoint, '/apisix/routes/1', {
    uri: '/flow.Bulk/*',
    upstream: { scheme: 'grpc', nodes: { [upstream.address]: 1 } },
  });
  const scenario = (target: string): SlowReadOptions => ({
    target,
    totalBytes,
    messageBytes,
    burstBytes: 2 * MiB,
    burstPauseMs: 10,
    stallAt: [0.25, 0.5, 0.75],
    stallMs,
    upstream: upstream.stats,
    limitMs: 120_000,
  });

  upstream.resetStats();
  const direct = await slowRead(scenario(upstream.address));
  const directDrainWaits = upstream.stats.drainWaits;

  const results: Record<string, unknown> = {};
  for (const engine of engines) {
    // The engine in the config file too (it wins over the environment), and LOG_LEVEL=info so that the process logs
    // the engine it started: checked before anything is measured.
    const gateway = await spawnChildGateway(etcd.endpoint, {
      env: { GATEWAY_HTTP2_ENGINE: engine, GATEWAY_CONFIG: writeEngineConfig(join(configDir, `${engine}.yaml`), engine), LOG_LEVEL: 'info' },
    });
    try {
      await waitUntilRouted(gateway, 20_000);
      await expectEngine(`data plane (${engine})`, () => gateway.output(), engine, 1);
      await slowRead({ ...scenario(gateway.h2cAddress), totalBytes: 8 * MiB, stallAt: [] }); // warm-up
      await sleep(300);
      upstream.resetStats();
      const baseline = gateway.rssKiB() ?? 0;
      let peak = baseline;
      const run = await slowRead({
        ...scenario(gateway.h2cAddress),
        onSample: () => {
          peak = Math.max(peak, gateway.rssKiB() ?? 0);
        },
        sampleEveryMs: 20,
      });
      const growthMiB = mib(peak - baseline);
      const intact = statusCode(run.grpcStatus) === 0 && run.problems.length === 0 && run.messagesOk === totalBytes / messageBytes;
      const met = intact && growthMiB < RSS_GROWTH_GOAL_MIB;
      allMet &&= met;
      results[engine] = {
        elapsedMs: run.elapsedMs,
        status: statusCode(run.grpcStatus),
        messagesOk: run.messagesOk,
        problems: run.problems,
        drainWaits: upstream.stats.drainWaits,
        stallAdvanceKiB: run.stallAdvance.map((b) => Math.round(b / 1024)),
        rssBaselineMiB: mib(baseline),
        rssPeakMiB: mib(peak),
        rssGrowthMiB: growthMiB,
        elapsedRatio: +(run.elapsedMs / Math.max(1, direct.elapsedMs)).toFixed(2),
        goal: `RSS growth < ${RSS_GROWTH_GOAL_MIB} MiB, every message intact`,
        met,
      };
    } catch (err) {
      allMet = false;
      results[engine] = { error: err instanceof Error ? err.message : String(err), output: gateway.output().slice(-2_000), met: false };
    } finally {
      await gateway.stop();
    }
  }
  console.log(
    JSON.stringify(
      {
        totalMiB: totalBytes / MiB,
        messageKiB: messageBytes / 1024,
        rssGrowthGoalMiB: RSS_GROWTH_GOAL_MIB,
        direct: { elapsedMs: direct.elapsedMs, status: statusCode(direct.grpcStatus), messagesOk: direct.messagesOk, drainWaits: directDrainWaits },
        engines: results,
      },
      null,
      2,
    ),
  );
} finally {
  await upstream.close();
  await etcd.close();
  rmSync(configDir, { recursive: true, force: true });
}
process.exitCode = allMet ? 0 : 1;
