/**
 * The OTLP/HTTP JSON span exporter (data-plane/observability/otlp-exporter.ts, otlp-json.ts) against collectors on
 * real sockets: a node:http receiver that decodes each POST to /v1/traces (field names and values of the OTLP JSON
 * mapping, batching and ordering, one request in flight), a receiver answering 503, a port nobody listens on, and
 * a server that accepts and never answers. In every case add() stays cheap, memory stays bounded by the queue,
 * every span is accounted for as exported, dropped or failed, and close() resolves.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { pino } from 'pino';
import { OtlpExporter, tracesUrl, type FinishedSpan, type OtlpExporterOptions } from '../../data-plane/observability/otlp-exporter.ts';
import { encodeSpan, ServerSpanEncoder, unixMsToNanos, type ServerSpanSource } from '../../data-plane/observability/otlp-json.ts';
import { silentLogger } from '../../shared/logger.ts';
import { freePort } from '../helpers/ports.ts';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const SPAN_HEX = 'b7ad6b7169203331';
const POLL_MS = 10;
/** Long enough that the periodic export never fires during a test that means to drive exports itself. */
const NEVER_MS = 600_000;

/** The OTLP/JSON request as the assertions expect it (what they read of it); a different shape fails them. */
interface OtlpRequestJson {
  resourceSpans: [{ resource: { attributes: unknown[] }; scopeSpans: [{ scope: unknown; spans: OtlpSpanJson[] }] }];
}

interface OtlpSpanJson {
  name: string;
  attributes: { key: string; value: { stringValue?: string } }[];
  status: unknown;
}

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: OtlpRequestJson; // the decoded JSON, walked by the assertions
}

interface Receiver {
  port: number;
  requests: Received[];
  /** The most requests the receiver had open at once. */
  seen: { maxConcurrent: number };
  close(): Promise<void>;
}

/** An OTLP/HTTP collector stand-in: records each POST's decoded JSON and answers `status` after a short pause. */
async function startReceiver(status = 200): Promise<Receiver> {
  const requests: Received[] = [];
  let active = 0;
  const seen = { maxConcurrent: 0 };
  const server = http.createServer((req, res) => {
    active++;
    seen.maxConcurrent = Math.max(seen.maxConcurrent, active);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests.push({ path: req.url ?? '', headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpRequestJson });
      setTimeout(() => {
        active--;
        res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
      }, POLL_MS);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = (): Promise<void> => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return { port: (server.address() as net.AddressInfo).port, requests, seen, close };
}

/** A server that accepts connections, reads, and never answers. */
async function startHangingServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket.on('data', () => {}).on('error', () => {}).once('close', () => sockets.delete(socket)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = (): Promise<void> => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return { port: (server.address() as net.AddressInfo).port, close };
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
}

function span(name: string, overrides: Partial<FinishedSpan> = {}): FinishedSpan {
  return {
    traceId: TRACE_ID,
    spanId: SPAN_HEX,
    parentSpanId: undefined,
    traceState: undefined,
    name,
    startUnixMs: 1_700_000_000_000,
    endUnixMs: 1_700_000_000_001,
    attributes: [],
    error: false,
    ...overrides,
  };
}

/** A logger whose warnings are kept as parsed records. */
function recordingLogger(): { log: OtlpExporterOptions['log']; warnings: Record<string, unknown>[] } {
  const warnings: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      warnings.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      callback();
    },
  });
  return { log: pino({ level: 'warn' }, stream), warnings };
}

describe('OTLP JSON encoding details', () => {
  test('nanosecond strings are exact integers without exponent notation', () => {
    assert.equal(unixMsToNanos(1_700_000_000_123.5), '1700000000123500000');
    assert.equal(unixMsToNanos(1_700_000_000_123.25), '1700000000123250000');
    assert.equal(unixMsToNanos(1_700_000_000_000), '1700000000000000000');
    assert.equal(unixMsToNanos(0.000001), '1');
    assert.equal(unixMsToNanos(1.9999999), '2000000');
    assert.equal(unixMsToNanos(0), '0');
    assert.equal(unixMsToNanos(Number.NaN), '0');
    const now = performance.timeOrigin + performance.now();
    assert.match(unixMsToNanos(now), /^\d{19}$/);
  });

  test("the observer's SERVER span encoder writes what encodeSpan writes, whatever its caches hold", () => {
    const base: ServerSpanSource = {
      traceId: TRACE_ID,
      spanId: SPAN_HEX,
      parentSpanId: '',
      traceState: '',
      method: 'POST',
      path: '/helloworld.Greeter/SayHello',
      authority: 'gw.test:9081',
      remoteAddr: '10.0.0.7',
      route: { routeId: 'r1', routeName: 'greeter', serviceId: '' },
      nodeHost: '127.0.0.1',
      nodePort: 50051,
      status: 200,
      grpcStatus: 0,
      grpcMessage: '',
      requestId: 'abc-"quoted"',
    };
    /** The same span through the generic path, attribute by attribute as the observer used to list them. */
    const generic = (s: ServerSpanSource, start: number, end: number, error: boolean, message: string): unknown => {
      const slash = s.path.lastIndexOf('/');
      const attributes: [string, string | number][] = [
        ['rpc.system', 'grpc'], ['rpc.service', slash > 0 ? s.path.slice(1, slash) : ''], ['rpc.method', s.path.slice(slash + 1)],
        ['rpc.grpc.status_code', s.grpcStatus], ['http.request.method', s.method], ['url.path', s.path], ['server.address', s.authority],
        ['client.address', s.remoteAddr], ['http.response.status_code', s.status],
      ];
      if (s.route !== undefined) attributes.push(['apisix.route_id', s.route.routeId], ['apisix.route_name', s.route.routeName], ['apisix.service_id', s.route.serviceId]);
      if (s.nodeHost !== '') attributes.push(['server.upstream.address', s.nodeHost], ['server.upstream.port', s.nodePort]);
      if (s.requestId !== '') attributes.push(['http.request.header.x_request_id', s.requestId]);
      const parsed = JSON.parse(encodeSpan({ traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId || undefined, traceState: s.traceState || undefined, name: s.path, startUnixMs: start, endUnixMs: end, attributes, error, statusMessage: message })) as SpanJson;
      return normalise(parsed);
    };
    type SpanJson = { attributes: { key: string }[] };
    const normalise = (span: SpanJson): unknown => ({ ...span, attributes: [...span.attributes].sort((a, b) => a.key.localeCompare(b.key)) });
    const encoder = new ServerSpanEncoder();
    const variants: [ServerSpanSource, boolean, string][] = [
      [base, false, ''],
      [base, false, ''], // from the caches
      [{ ...base, path: '/other.Svc/Do\u2028"', grpcStatus: 14, grpcMessage: 'down', status: 200 }, true, 'UNAVAILABLE: down'],
      [{ ...base, parentSpanId: '00f067aa0ba902b7', traceState: 'k=v,"x"', route: undefined, nodeHost: '', nodePort: 0, requestId: '' }, false, ''],
      [{ ...base, nodeHost: '::1', nodePort: 443, remoteAddr: '::ffff:10.0.0.8', route: { routeId: 'r2', routeName: 'n"2', serviceId: 's' } }, false, ''],
      [base, false, ''],
    ];
    for (const [source, error, message] of variants) {
      const ours = normalise(JSON.parse(encoder.encode(source, 1_700_000_000_123.5, 1_700_000_000_124.75, error, message)) as SpanJson);
      assert.deepEqual(ours, generic(source, 1_700_000_000_123.5, 1_700_000_000_124.75, error, message));
    }
  });

  test('the traces URL is <address>/v1/traces, for host:port and for base URLs', () => {
    assert.equal(tracesUrl('127.0.0.1:4318').href, 'http://127.0.0.1:4318/v1/traces');
    assert.equal(tracesUrl('http://collector:4318').href, 'http://collector:4318/v1/traces');
    assert.equal(tracesUrl('https://collector/otlp/').href, 'https://collector/otlp/v1/traces');
    assert.equal(tracesUrl('https://collector/otlp').href, 'https://collector/otlp/v1/traces');
  });
});

describe('exporting to a collector that answers', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  test('spans arrive as an ExportTraceServiceRequest in the OTLP JSON mapping', async () => {
    const receiver = await startReceiver();
    const exporter = new OtlpExporter({
      address: `127.0.0.1:${receiver.port}`,
      requestHeaders: { authorization: 'token' },
      resource: { 'host.name': 'gw-1', 'service.instance.workers': 4 },
      scopeVersion: '0.1.0',
      batchTimeoutMs: NEVER_MS,
      log: silentLogger(),
    });
    cleanups.push(() => exporter.close(), () => receiver.close());

    exporter.add(
      span('/helloworld.Greeter/SayHello', {
        parentSpanId: '00f067aa0ba902b7',
        traceState: 'congo=t61rcWkgMzE',
        startUnixMs: 1_700_000_000_123.5,
        endUnixMs: 1_700_000_000_125.25,
        attributes: [
          ['rpc.system', 'grpc'],
          ['rpc.grpc.status_code', 0],
          ['ratio', 0.25],
          ['retried', true],
        ],
      }),
    );
    exporter.add(span('/helloworld.Greeter/Fail', { error: true, statusMessage: 'UNAVAILABLE' }));
    await exporter.flush();

    assert.equal(receiver.requests.length, 1);
    const [request] = receiver.requests as [Received];
    assert.equal(request.path, '/v1/traces');
    assert.equal(request.headers['content-type'], 'application/json');
    assert.equal(request.headers.authorization, 'token');

    const resourceSpans = request.body.resourceSpans;
    assert.equal(resourceSpans.length, 1);
    assert.deepEqual(resourceSpans[0].resource.attributes, [
      { key: 'service.name', value: { stringValue: 'APISIX' } },
      { key: 'host.name', value: { stringValue: 'gw-1' } },
      { key: 'service.instance.workers', value: { intValue: '4' } },
    ]);
    const [scopeSpans] = resourceSpans[0].scopeSpans;
    assert.deepEqual(scopeSpans.scope, { name: 'grpc-gateway', version: '0.1.0' });
    assert.deepEqual(scopeSpans.spans[0], {
      traceId: TRACE_ID,
      spanId: SPAN_HEX,
      parentSpanId: '00f067aa0ba902b7',
      traceState: 'congo=t61rcWkgMzE',
      name: '/helloworld.Greeter/SayHello',
      kind: 2,
      startTimeUnixNano: '1700000000123500000',
      endTimeUnixNano: '1700000000125250000',
      attributes: [
        { key: 'rpc.system', value: { stringValue: 'grpc' } },
        { key: 'rpc.grpc.status_code', value: { intValue: '0' } },
        { key: 'ratio', value: { doubleValue: 0.25 } },
        { key: 'retried', value: { boolValue: true } },
      ],
      status: { code: 0 },
    });
    const failed = scopeSpans.spans[1];
    assert.ok(failed !== undefined);
    assert.equal('parentSpanId' in failed, false);
    assert.equal('traceState' in failed, false);
    assert.deepEqual(failed.status, { code: 2, message: 'UNAVAILABLE' });
    assert.deepEqual(exporter.stats(), { queued: 0, exported: 2, dropped: 0, failed: 0 });
  });

  test('40 spans with a batch size of 16 go as 3 requests, in order, one at a time', async () => {
    const receiver = await startReceiver();
    const exporter = new OtlpExporter({
      address: `http://127.0.0.1:${receiver.port}`,
      maxExportBatchSize: 16,
      batchTimeoutMs: 50,
      log: silentLogger(),
    });
    cleanups.push(() => exporter.close(), () => receiver.close());

    const SPANS = 40;
    for (let i = 0; i < SPANS; i++) exporter.add(span(`span-${i}`));
    await until(() => exporter.stats().exported === SPANS);

    const sizes = receiver.requests.map((r) => r.body.resourceSpans[0].scopeSpans[0].spans.length);
    assert.deepEqual(sizes, [16, 16, 8]);
    const names = receiver.requests.flatMap((r) => r.body.resourceSpans[0].scopeSpans[0].spans.map((s) => s.name));
    assert.deepEqual(names, Array.from({ length: SPANS }, (_, i) => `span-${i}`));
    assert.equal(receiver.seen.maxConcurrent, 1);
    assert.deepEqual(exporter.stats(), { queued: 0, exported: SPANS, dropped: 0, failed: 0 });
  });

  test('queued spans are bounded in bytes too: one too large for the staging room is dropped, the rest go whole', async () => {
    const receiver = await startReceiver();
    // 4 spans of queue: 8 KiB of staging room (2 KiB per span)
    const exporter = new OtlpExporter({ address: `127.0.0.1:${receiver.port}`, maxQueueSize: 4, maxExportBatchSize: 4, batchTimeoutMs: NEVER_MS, log: silentLogger() });
    cleanups.push(() => exporter.close(), () => receiver.close());
    const big = (name: string): FinishedSpan => span(name, { attributes: [['blob', 'é'.repeat(2_000)]] }); // ~4 KiB of UTF-8
    exporter.add(big('big-1'));
    exporter.add(span('small-1'));
    exporter.add(big('big-2')); // the room left cannot hold a worst case of 3 octets per unit
    exporter.add(span('small-2'));
    assert.deepEqual(exporter.stats(), { queued: 3, exported: 0, dropped: 1, failed: 0 });
    await exporter.flush();
    const spans = receiver.requests.flatMap((r) => r.body.resourceSpans[0].scopeSpans[0].spans);
    assert.deepEqual(spans.map((s) => s.name), ['big-1', 'small-1', 'small-2']);
    assert.equal(spans[0]?.attributes[0]?.value.stringValue, 'é'.repeat(2_000));
    assert.deepEqual(exporter.stats(), { queued: 0, exported: 3, dropped: 0 + 1, failed: 0 });
  });

  test('a collector answering 503 fails the batch and logs one warning for several failures', async () => {
    const receiver = await startReceiver(503);
    const { log, warnings } = recordingLogger();
    const exporter = new OtlpExporter({ address: `127.0.0.1:${receiver.port}`, maxExportBatchSize: 4, batchTimeoutMs: NEVER_MS, log });
    cleanups.push(() => exporter.close(), () => receiver.close());

    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 4; i++) exporter.add(span(`span-${round}-${i}`));
      await exporter.flush();
    }
    assert.equal(receiver.requests.length, 3);
    assert.deepEqual(exporter.stats(), { queued: 0, exported: 0, dropped: 0, failed: 12 });
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]?.status, 503);
  });

  test('close() is idempotent, and spans added after it are dropped', async () => {
    const receiver = await startReceiver();
    const exporter = new OtlpExporter({ address: `127.0.0.1:${receiver.port}`, batchTimeoutMs: NEVER_MS, log: silentLogger() });
    cleanups.push(() => receiver.close());
    exporter.add(span('before-close'));
    const closing = exporter.close();
    assert.equal(exporter.close(), closing);
    await closing;
    exporter.add(span('after-close'));
    assert.deepEqual(exporter.stats(), { queued: 0, exported: 1, dropped: 1, failed: 0 });
    assert.equal(receiver.requests.length, 1);
  });
});

describe('exporting to a collector that is down or hangs', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups) await cleanup();
  });
  const SPANS = 5_000;
  const QUEUE = 256;

  /** Adds SPANS spans, checking the queue bound after each; none of it may throw. */
  function flood(exporter: OtlpExporter, prefix: string): void {
    for (let i = 0; i < SPANS; i++) {
      exporter.add(span(`${prefix}-${i}`));
      assert.ok(exporter.stats().queued <= QUEUE);
    }
  }

  test('a closed port: add() never throws, the queue stays bounded, every span is dropped or failed', async () => {
    const port = await freePort();
    const { log, warnings } = recordingLogger();
    const exporter = new OtlpExporter({ address: `127.0.0.1:${port}`, maxQueueSize: QUEUE, batchTimeoutMs: 20, requestTimeoutMs: 1_000, log });
    cleanups.push(() => exporter.close());

    flood(exporter, 'down');
    await until(() => exporter.stats().failed >= 48);
    flood(exporter, 'down-again');
    await exporter.close();

    const stats = exporter.stats();
    assert.equal(stats.queued, 0);
    assert.equal(stats.exported, 0);
    assert.equal(stats.dropped + stats.failed, 2 * SPANS);
    assert.ok(stats.dropped >= 2 * SPANS - 2 * QUEUE);
    assert.ok(warnings.length >= 1);
    assert.ok(warnings.length < stats.failed / 16, `${warnings.length} warnings for ${stats.failed} failed spans`);
    // the first warning is the refused connection or the full queue, whichever came first; both carry the counts
    assert.match(String(warnings[0]?.msg), /^otlp export/);
    assert.equal(typeof warnings[0]?.dropped, 'number');
    assert.equal(typeof warnings[0]?.failed, 'number');
  });

  test('a collector that never answers: requests time out, the queue stays bounded, close() resolves', async () => {
    const server = await startHangingServer();
    const exporter = new OtlpExporter({
      address: `127.0.0.1:${server.port}`,
      maxQueueSize: QUEUE,
      batchTimeoutMs: 20,
      requestTimeoutMs: 200,
      log: silentLogger(),
    });
    cleanups.push(() => exporter.close(), () => server.close());

    flood(exporter, 'hang');
    await until(() => exporter.stats().failed >= 16);
    flood(exporter, 'hang-again');
    await exporter.close();

    const stats = exporter.stats();
    assert.equal(stats.queued, 0);
    assert.equal(stats.exported, 0);
    assert.equal(stats.dropped + stats.failed, 2 * SPANS);
  });
});
