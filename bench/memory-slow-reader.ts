/**
 * Memory of the gateway under a slow reader (issue #3), outside the test suite and with adjustable sizes: starts a
 * local etcd, a raw HTTP/2 "bulk" upstream and a data plane in its own process, then streams TOTAL MiB of
 * MESSAGE KiB messages to a client that reads in bursts and stalls, once directly from the upstream (baseline) and
 * once through the gateway, sampling the gateway's VmRSS. Prints one JSON report. Everything it starts is stopped.
 *
 *   node --import tsx bench/memory-slow-reader.ts [--total-mib 200] [--message-kib 64] [--stall-ms 600]
 *
 * The scenario itself lives in test/flow/slow-reader.ts, shared with test/flow/slow-reader-memory.test.ts.
 */
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEtcd } from '../test/helpers/etcd.ts';
import { putEtcdJson, spawnChildGateway } from '../test/flow/child-gateway.ts';
import { slowRead, startBulkUpstream, waitUntilRouted, type SlowReadOptions } from '../test/flow/slow-reader.ts';

const MiB = 1024 * 1024;

const { values } = parseArgs({
  options: {
    'total-mib': { type: 'string', default: '200' },
    'message-kib': { type: 'string', default: '64' },
    'stall-ms': { type: 'string', default: '600' },
  },
});
const totalBytes = Number(values['total-mib']) * MiB;
const messageBytes = Number(values['message-kib']) * 1024;
const stallMs = Number(values['stall-ms']);

const etcd = await startEtcd();
const upstream = await startBulkUpstream();
const gateway = await spawnChildGateway(etcd.endpoint);
try {
  await putEtcdJson(etcd.endpoint, '/apisix/routes/1', {
    uri: '/flow.Bulk/*',
    upstream: { scheme: 'grpc', nodes: { [upstream.address]: 1 } },
  });
  await waitUntilRouted(gateway, 20_000);
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

  await slowRead({ ...scenario(gateway.h2cAddress), totalBytes: 8 * MiB, stallAt: [] }); // warm-up
  await sleep(300);
  upstream.resetStats();
  const baseline = gateway.rssKiB() ?? 0;
  let peak = baseline;
  const viaGateway = await slowRead({
    ...scenario(gateway.h2cAddress),
    onSample: () => {
      peak = Math.max(peak, gateway.rssKiB() ?? 0);
    },
    sampleEveryMs: 20,
  });
  const mib = (kib: number): number => +(kib / 1024).toFixed(1);
  console.log(
    JSON.stringify(
      {
        totalMiB: totalBytes / MiB,
        messageKiB: messageBytes / 1024,
        direct: { elapsedMs: direct.elapsedMs, status: direct.grpcStatus, messagesOk: direct.messagesOk, drainWaits: directDrainWaits },
        gateway: {
          elapsedMs: viaGateway.elapsedMs,
          status: viaGateway.grpcStatus,
          messagesOk: viaGateway.messagesOk,
          problems: viaGateway.problems,
          drainWaits: upstream.stats.drainWaits,
          stallAdvanceKiB: viaGateway.stallAdvance.map((b) => Math.round(b / 1024)),
          rssBaselineMiB: mib(baseline),
          rssPeakMiB: mib(peak),
          rssGrowthMiB: mib(peak - baseline),
        },
        elapsedRatio: +(viaGateway.elapsedMs / Math.max(1, direct.elapsedMs)).toFixed(2),
      },
      null,
      2,
    ),
  );
} finally {
  await gateway.stop();
  await upstream.close();
  await etcd.close();
}
