/**
 * What gateway-observed and gateway-traced (issue #14) leave behind, counted per measured run so the report can
 * say whether every call was logged and how many were traced:
 *
 * - The access log: the target's file in the run's folder. A run's lines are the bytes appended between just
 *   before it and once the file stops growing after it (lines are written off the hot path, within an event-loop
 *   turn or so); the file is then emptied, so a long run does not fill the disk (the gateway writes with O_APPEND,
 *   so its next line lands at the new end). Lines are never dropped unless the writer's buffer fills, so lines
 *   fewer than calls are dropped lines.
 * - The spans: an OTLP/HTTP (JSON) sink, a node:http server in this process on a free loopback port, answers 200 to
 *   POST /v1/traces and keeps the start time of every span it received (each `"startTimeUnixNano":"…"`). A
 *   run's spans are those that started within it (the warm-up's tail batches may arrive after it began), counted
 *   once the exporter's batch timeout has passed after the run, by when it has sent what the run sampled. Its CPU
 *   is this process's, not the gateway's.
 * - The gateway's own counters, scraped from its metrics at the end (apisix_access_log_lines{state},
 *   apisix_opentelemetry_spans{state}): every call of the run, warm-ups and samples included.
 */
import { closeSync, openSync, readSync, statSync, truncateSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** The OTLP/HTTP path of traces (the exporter POSTs to http://host:port/v1/traces). */
const TRACES_PATH = '/v1/traces';
/** A body larger than this is refused (413): the exporter sends batches of 16 spans of a few hundred bytes. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;
/** The file is stable once it has not grown for this long. */
const ACCESS_LOG_QUIET_MS = 300;
/** At most this long for a run's lines to reach the file. */
const ACCESS_LOG_LIMIT_MS = 10_000;
const POLL_MS = 25;
/** Spans that started this long before a run's start still count as its own (clocks of two processes). */
const SPAN_WINDOW_SLACK_MS = 100;
/** After the exporter's batch timeout, quiet for this long with no POST: the run's spans have all arrived. */
const SPAN_QUIET_MS = 300;
/** At most this long after the batch timeout for the last batch. */
const SPAN_LIMIT_MS = 10_000;
const READ_CHUNK_BYTES = 1024 * 1024;
const NEWLINE = 0x0a;

export interface OtlpSink {
  /** `host:port` for plugin_attr.opentelemetry.collector.address. */
  readonly address: string;
  /** Spans received so far. */
  spans(): number;
  /** Spans received after the first `since` of them that started at or after `fromUnixMs`. */
  spansSince(since: number, fromUnixMs: number): number;
  /** Requests answered 200, and requests refused (not POST /v1/traces, or a body that is not an export request). */
  readonly requests: { ok: number; refused: number };
  /** Date.now() of the last request, 0 before the first. */
  lastRequestAt(): number;
  close(): Promise<void>;
}

/** How the gateway's export requests begin (otlp-exporter.ts), and each span's start time (otlp-json.ts). */
const EXPORT_REQUEST_START = Buffer.from('{"resourceSpans":[');
const START_TIME_KEY = Buffer.from('"startTimeUnixNano":"');
const QUOTE = 0x22;

export async function startOtlpSink(): Promise<OtlpSink> {
  /** Start times (Unix ms) of the spans received, in order of arrival. */
  const starts: number[] = [];
  const requests = { ok: 0, refused: 0 };
  let lastAt = 0;
  const refuse = (res: ServerResponse, status: number): void => {
    requests.refused++;
    res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    lastAt = Date.now();
    if (req.method !== 'POST' || req.url !== TRACES_PATH) {
      req.resume();
      return refuse(res, 404);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => {
      lastAt = Date.now();
      if (size > MAX_BODY_BYTES) return refuse(res, 413);
      // Scanned, not parsed: JSON.parse of every batch would cost this process (which shares the machine with
      // the gateway under test) more CPU than the exporter spends making them; a real collector runs elsewhere.
      const body = Buffer.concat(chunks);
      if (!body.subarray(0, EXPORT_REQUEST_START.length).equals(EXPORT_REQUEST_START)) return refuse(res, 400);
      for (let at = body.indexOf(START_TIME_KEY); at >= 0; at = body.indexOf(START_TIME_KEY, at)) {
        at += START_TIME_KEY.length;
        const end = body.indexOf(QUOTE, at);
        if (end < 0) return refuse(res, 400);
        // int64 as a decimal string of ns: as a Number, ms to within a microsecond, plenty for a window of runs.
        starts.push(Number(body.toString('latin1', at, end)) / 1e6);
      }
      requests.ok++;
      // An empty ExportTraceServiceResponse: everything accepted.
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    address: `127.0.0.1:${port}`,
    spans: () => starts.length,
    spansSince(since, fromUnixMs) {
      let n = 0;
      for (let i = since; i < starts.length; i++) if ((starts[i] as number) >= fromUnixMs) n++;
      return n;
    },
    requests,
    lastRequestAt: () => lastAt,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** What a measured run left in the access log and the sink. */
export interface RunObservation {
  /** Lines the run added to the access log. */
  accessLogLines?: number;
  /** Why the run's last line is not what the default JSON format with request ids writes; '' when it is. */
  accessLogLineProblem?: string;
  /** Spans the sink received that started within the run. */
  spans?: number;
}

/** Hooks around one measured run of a target whose observability leaves output. */
export interface RunObserver {
  /** Just before the run: waits for the warm-up's output to settle, then notes where the run's output starts. */
  mark(): Promise<ObserverMark>;
  /** After the run (its calls all answered): waits for the run's output, counts it, clears the access log. */
  collect(mark: ObserverMark, run: { startedUnixMs: number; endedUnixMs: number }): Promise<RunObservation>;
}

export interface ObserverMark {
  accessLogOffset: number;
  spans: number;
}

export function runObserver(options: { accessLogFile?: string | undefined; sink?: OtlpSink | undefined; batchTimeoutMs: number }): RunObserver {
  const { accessLogFile: file, sink } = options;
  return {
    async mark() {
      return { accessLogOffset: file === undefined ? 0 : await settledSize(file, 0), spans: sink?.spans() ?? 0 };
    },
    async collect(mark, run) {
      const observation: RunObservation = {};
      if (file !== undefined) {
        const end = await settledSize(file, mark.accessLogOffset);
        const { lines, last } = countLines(file, mark.accessLogOffset, end);
        observation.accessLogLines = lines;
        observation.accessLogLineProblem = lines === 0 ? 'no line' : lineProblem(last);
        truncateSync(file, 0);
      }
      if (sink !== undefined) {
        // Every worker's exporter sends its last partial batch at its next batch-timeout tick.
        const due = run.endedUnixMs + options.batchTimeoutMs;
        const deadline = due + SPAN_LIMIT_MS;
        while (Date.now() < deadline && (Date.now() < due || Date.now() - sink.lastRequestAt() < SPAN_QUIET_MS)) await sleep(POLL_MS);
        observation.spans = sink.spansSince(mark.spans, run.startedUnixMs - SPAN_WINDOW_SLACK_MS);
      }
      return observation;
    },
  };
}

/** The file's size once it has stopped growing (or after ACCESS_LOG_LIMIT_MS); at least `from`. */
async function settledSize(file: string, from: number): Promise<number> {
  const deadline = Date.now() + ACCESS_LOG_LIMIT_MS;
  let size = sizeOf(file);
  let changedAt = Date.now();
  while (Date.now() < deadline && Date.now() - changedAt < ACCESS_LOG_QUIET_MS) {
    await sleep(POLL_MS);
    const now = sizeOf(file);
    if (now !== size) {
      size = now;
      changedAt = Date.now();
    }
  }
  return Math.max(from, size);
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0; // not created yet: the gateway opens it at start, so only before the first line
  }
}

/** Newlines in bytes [from, to) of `file`, and the last whole line among them. */
function countLines(file: string, from: number, to: number): { lines: number; last: string } {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(READ_CHUNK_BYTES);
    let lines = 0;
    let offset = from;
    let lastEnd = -1;
    while (offset < to) {
      const read = readSync(fd, buffer, 0, Math.min(buffer.length, to - offset), offset);
      if (read <= 0) break;
      for (let i = 0; i < read; i++) {
        if (buffer[i] === NEWLINE) {
          lines++;
          lastEnd = offset + i;
        }
      }
      offset += read;
    }
    if (lastEnd < 0) return { lines, last: '' };
    // The last line: back from its newline to the previous one (a line is far shorter than a chunk).
    const start = Math.max(from, lastEnd - READ_CHUNK_BYTES);
    const read = readSync(fd, buffer, 0, lastEnd - start, start);
    const text = buffer.subarray(0, read).toString('utf8');
    return { lines, last: text.slice(text.lastIndexOf('\n') + 1) };
  } finally {
    closeSync(fd);
  }
}

/** The default access-log line is one JSON object; with request ids on it carries one, and these calls succeed. */
function lineProblem(line: string): string {
  let entry: { request_id?: unknown; grpc_status?: unknown };
  try {
    entry = JSON.parse(line) as typeof entry;
  } catch {
    return `last line is not JSON: ${line.slice(0, 200)}`;
  }
  if (typeof entry.request_id !== 'string' || entry.request_id === '') return `last line has no request_id: ${line.slice(0, 200)}`;
  if (entry.grpc_status !== 0) return `last line has grpc_status ${JSON.stringify(entry.grpc_status)}: ${line.slice(0, 200)}`;
  return '';
}

/** The gateway's own observability counters (summed over its workers), from its metrics; undefined when absent. */
export interface GatewayCounters {
  accessLog?: { written: number; dropped: number };
  spans?: { exported: number; dropped: number; failed: number };
}

/** Scrapes `http://<statusAddress><uri>` for apisix_access_log_lines and apisix_opentelemetry_spans. */
export async function scrapeCounters(statusAddress: string, uri = '/apisix/prometheus/metrics'): Promise<GatewayCounters> {
  const res = await fetch(`http://${statusAddress}${uri}`);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${uri}: ${res.status} ${text.slice(0, 200)}`);
  const value = (family: string, state: string): number | undefined => {
    const match = new RegExp(`^\\w*${family}\\{state="${state}"\\} (\\S+)$`, 'm').exec(text);
    return match === null ? undefined : Number(match[1]);
  };
  const counters: GatewayCounters = {};
  const written = value('access_log_lines', 'written');
  if (written !== undefined) counters.accessLog = { written, dropped: value('access_log_lines', 'dropped') ?? 0 };
  const exported = value('opentelemetry_spans', 'exported');
  if (exported !== undefined) {
    counters.spans = { exported, dropped: value('opentelemetry_spans', 'dropped') ?? 0, failed: value('opentelemetry_spans', 'failed') ?? 0 };
  }
  return counters;
}
