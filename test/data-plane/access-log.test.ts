/**
 * The access log (data-plane/observability/access-log*.ts): the nginx-style format compiled over a CallRecord
 * (every variable, escaping, '-' for empty values, the default JSON line), and the writer on real descriptors —
 * a file written by one and by two writers (two workers on one O_APPEND file), logrotate's rename + reopen, a
 * full disk (/dev/full), and a FIFO whose reader never reads (the event loop must keep turning).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { pino } from 'pino';
import { openAccessLog, type AccessLog } from '../../data-plane/observability/access-log.ts';
import { READABLE_ACCESS_LOG_FORMAT, compileAccessLogFormat } from '../../data-plane/observability/access-log-format.ts';
import type { CallRecord } from '../../data-plane/observability/call-record.ts';
import { silentLogger, type Logger } from '../../shared/logger.ts';

/** 2026-12-05T09:59:58.766Z; with durationMs 1234 the call ends at 10:00:00.000Z. */
const STARTED_AT = Date.UTC(2026, 11, 5, 9, 59, 58, 766);

function sample(overrides: Partial<CallRecord> = {}): CallRecord {
  return {
    startedAt: STARTED_AT,
    durationMs: 1234,
    upstreamMs: 1100,
    remoteAddr: '192.0.2.7',
    remotePort: 51234,
    scheme: 'h2c',
    method: 'POST',
    path: '/helloworld.Greeter/SayHello',
    authority: 'api.example.com:9080',
    routeId: 'r1',
    routeName: 'greeter',
    serviceId: 's1',
    consumerName: 'jack',
    upstreamAddr: '10.0.0.5:50051',
    status: 200,
    grpcStatus: 0,
    grpcMessage: 'OK',
    bytesReceived: 17,
    bytesSent: 42,
    requestId: 'req-1',
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00f067aa0ba902b7',
    userAgent: 'grpc-node-js/1.14.7',
    ...overrides,
  };
}

const render = (format: string, record: CallRecord = sample()): string => compileAccessLogFormat(format)(record);

describe('the access log format', () => {
  const savedTz = process.env.TZ;
  before(() => {
    process.env.TZ = 'UTC';
  });
  after(() => {
    if (savedTz === undefined) delete process.env.TZ;
    else process.env.TZ = savedTz;
  });

  test('each variable renders as documented for a sample call', () => {
    const expected: Record<string, string> = {
      remote_addr: '192.0.2.7',
      remote_port: '51234',
      time_iso8601: '2026-12-05T10:00:00+00:00',
      time_local: '05/Dec/2026:10:00:00 +0000',
      msec: String((STARTED_AT + 1234) / 1000) + '.000',
      request_method: 'POST',
      request_uri: '/helloworld.Greeter/SayHello',
      uri: '/helloworld.Greeter/SayHello',
      request: 'POST /helloworld.Greeter/SayHello HTTP/2.0',
      host: 'api.example.com:9080',
      http_host: 'api.example.com:9080',
      scheme: 'h2c',
      server_protocol: 'HTTP/2.0',
      status: '200',
      upstream_addr: '10.0.0.5:50051',
      request_time: '1.234',
      upstream_response_time: '1.100',
      bytes_sent: '42',
      body_bytes_sent: '42',
      request_length: '17',
      grpc_status: '0',
      grpc_message: 'OK',
      route_id: 'r1',
      route_name: 'greeter',
      service_id: 's1',
      request_id: 'req-1',
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      span_id: '00f067aa0ba902b7',
      http_user_agent: 'grpc-node-js/1.14.7',
    };
    for (const [name, value] of Object.entries(expected)) {
      assert.equal(render(`[$${name}]`), `[${value}]`, `$${name}`);
      assert.equal(render(`[\${${name}}]`), `[${value}]`, `\${${name}}`);
    }
  });

  test('the braced form lets name characters follow the variable', () => {
    assert.equal(render('${status}ms $request_time:s'), '200ms 1.234:s');
  });

  test('an unknown variable is a configuration error thrown at compile time', () => {
    assert.throws(() => compileAccessLogFormat('$remote_addr $stauts', 'default'), {
      message: 'access_log_format: unknown variable $stauts',
    });
    assert.throws(() => compileAccessLogFormat('${nope}', 'json'), /unknown variable \$nope/);
    assert.throws(() => compileAccessLogFormat('cost $ 5', 'default'), /invalid variable name/);
    assert.throws(() => compileAccessLogFormat('${status', 'default'), /unclosed/);
  });

  test('the time variables carry the local offset, as nginx writes them', () => {
    // A different second for each zone: the formatter remembers the last second it formatted.
    try {
      process.env.TZ = 'Asia/Kolkata';
      const kolkata = sample({ startedAt: STARTED_AT + 1000 });
      assert.equal(render('$time_iso8601|$time_local', kolkata), '2026-12-05T15:30:01+05:30|05/Dec/2026:15:30:01 +0530');
      process.env.TZ = 'America/New_York';
      const newYork = sample({ startedAt: STARTED_AT + 2000 });
      assert.equal(render('$time_iso8601|$time_local', newYork), '2026-12-05T05:00:02-05:00|05/Dec/2026:05:00:02 -0500');
    } finally {
      process.env.TZ = 'UTC';
    }
  });

  test('the default line is a JSON object with numbers as numbers and times in seconds', () => {
    const line = compileAccessLogFormat(undefined, 'default')(sample());
    assert.doesNotMatch(line, /\n/);
    assert.deepEqual(JSON.parse(line), {
      time: '2026-12-05T10:00:00+00:00',
      remote_addr: '192.0.2.7',
      request_method: 'POST',
      request_uri: '/helloworld.Greeter/SayHello',
      host: 'api.example.com:9080',
      status: 200,
      grpc_status: 0,
      grpc_message: 'OK',
      route_id: 'r1',
      service_id: 's1',
      upstream_addr: '10.0.0.5:50051',
      request_time: 1.234,
      upstream_response_time: 1.1,
      bytes_received: 17,
      bytes_sent: 42,
      request_id: 'req-1',
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      user_agent: 'grpc-node-js/1.14.7',
    });
  });

  test('the default line writes no upstream answer as null and escapes hostile strings', () => {
    const record = sample({ upstreamMs: -1, upstreamAddr: '', grpcMessage: 'bad "x"\n\\ é', userAgent: '\u0001', status: 499 });
    const parsed = JSON.parse(compileAccessLogFormat(undefined, 'default')(record)) as Record<string, unknown>;
    assert.equal(parsed.upstream_response_time, null);
    assert.equal(parsed.upstream_addr, '');
    assert.equal(parsed.grpc_message, 'bad "x"\n\\ é');
    assert.equal(parsed.user_agent, '\u0001');
    assert.equal(parsed.status, 499);
  });

  test('default escaping writes quotes, backslashes, controls and non-ASCII bytes as \\xHH', () => {
    const record = sample({ grpcMessage: 'a"b\\c\nd\x7fé', userAgent: 'plain agent/1.0' });
    assert.equal(render('"$grpc_message" "$http_user_agent"', record), '"a\\x22b\\x5Cc\\x0Ad\\x7F\\xC3\\xA9" "plain agent/1.0"');
  });

  test('a JSON template escapes values as JSON string content, and its lines parse', () => {
    const format = ' {"msg":"$grpc_message","status":$status,"route":"$route_id","rt":$request_time}';
    const record = sample({ grpcMessage: 'say "hi"\n\t\\', routeId: '' });
    assert.deepEqual(JSON.parse(render(format, record)), { msg: 'say "hi"\n\t\\', status: 200, route: '', rt: 1.234 });
    // An explicit escape wins over the template's default.
    assert.equal(compileAccessLogFormat('{"m":"$grpc_message"}', 'default')(record), '{"m":"say \\x22hi\\x22\\x0A\\x09\\x5C"}');
  });

  test('empty values print as - in text formats, and stay empty with json escaping', () => {
    const record = sample({ routeId: '', traceId: '', upstreamAddr: '', upstreamMs: -1, userAgent: '' });
    assert.equal(render('$route_id $trace_id $upstream_addr $upstream_response_time "$http_user_agent"', record), '- - - - "-"');
    assert.equal(compileAccessLogFormat('$route_id|$trace_id|$http_user_agent', 'json')(record), '||');
  });

  test('the readable format renders one line for terminals', () => {
    assert.equal(
      render(READABLE_ACCESS_LOG_FORMAT),
      '2026-12-05T10:00:00+00:00 192.0.2.7 "POST /helloworld.Greeter/SayHello HTTP/2.0" 200 grpc=0 1.234 s ' +
        'upstream=10.0.0.5:50051 route=r1 id=req-1',
    );
  });

  test('a format without variables is its literal', () => {
    assert.equal(render('just text'), 'just text');
  });
});

/** Waits, turn by turn, until `condition` holds. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await nextTurn();
}

function readLines(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), 'the file ends with a whole line');
  return text === '' ? [] : text.slice(0, -1).split('\n');
}

const numbered = (prefix: string, i: number): string => `${prefix} ${String(i).padStart(6, '0')} ${'x'.repeat(80)}`;

function captureLogger(): { log: Logger; entries: Array<Record<string, unknown>> } {
  const entries: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void entries.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, entries };
}

describe('the access log writer', () => {
  let dir: string;
  const opened: AccessLog[] = [];
  const open = (options: Parameters<typeof openAccessLog>[0]): AccessLog => {
    const accessLog = openAccessLog(options);
    opened.push(accessLog);
    return accessLog;
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(tmpdir(), 'gw-access-log-'));
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((accessLog) => accessLog.close()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('10,000 lines reach the file whole and in order', async () => {
    const file = path.join(dir, 'access.log');
    const accessLog = open({ path: file, log: silentLogger() });
    const lines = Array.from({ length: 10_000 }, (_, i) => numbered('line', i));
    for (const line of lines) accessLog.write(line);
    await accessLog.close();
    assert.deepEqual(readLines(file), lines);
    assert.deepEqual(accessLog.stats(), { written: 10_000, dropped: 0, bufferedBytes: 0 });
  });

  test('two writers on one file (two workers) never interleave inside a line', async () => {
    const file = path.join(dir, 'shared.log');
    const a = open({ path: file, log: silentLogger() });
    const b = open({ path: file, log: silentLogger() });
    for (let i = 0; i < 5_000; i++) {
      a.write(numbered('a', i));
      b.write(numbered('b', i));
      if (i % 1_000 === 0) await nextTurn();
    }
    await Promise.all([a.close(), b.close()]);
    const lines = readLines(file);
    assert.equal(lines.length, 10_000);
    for (const prefix of ['a', 'b']) {
      const own = lines.filter((line) => line.startsWith(`${prefix} `));
      assert.deepEqual(own, Array.from({ length: 5_000 }, (_, i) => numbered(prefix, i)));
    }
  });

  test('a relative path resolves against the working directory and missing directories are created', async () => {
    const file = path.join(dir, 'nested', 'deeper', 'access.log');
    const accessLog = open({ path: path.relative(process.cwd(), file), log: silentLogger() });
    accessLog.write('hello');
    await accessLog.close();
    assert.deepEqual(readLines(file), ['hello']);
  });

  test('a file that cannot be opened throws at open, naming the path', () => {
    const notADirectory = path.join(dir, 'plain-file');
    fs.writeFileSync(notADirectory, '');
    const file = path.join(notADirectory, 'access.log');
    assert.throws(() => openAccessLog({ path: file, log: silentLogger() }), (err: Error) => err.message.includes(file));
  });

  test('close is idempotent and later lines are dropped and counted', async () => {
    const accessLog = open({ path: path.join(dir, 'closed.log'), log: silentLogger() });
    accessLog.write('one');
    const closing = accessLog.close();
    assert.equal(accessLog.close(), closing);
    await closing;
    accessLog.write('late');
    assert.deepEqual(accessLog.stats(), { written: 1, dropped: 1, bufferedBytes: 0 });
  });

  test('stdout and stderr are the process descriptors, and reopen leaves them alone', async () => {
    for (const target of ['stdout', '/dev/stdout', 'stderr']) {
      const accessLog = open({ path: target, log: silentLogger() });
      accessLog.reopen();
      await accessLog.close();
      assert.deepEqual(accessLog.stats(), { written: 0, dropped: 0, bufferedBytes: 0 });
    }
  });

  test('after a logrotate rename, reopen sends the new lines to a new file and loses none', async () => {
    const file = path.join(dir, 'rotate.log');
    const accessLog = open({ path: file, log: silentLogger() });
    const lines = Array.from({ length: 3_000 }, (_, i) => numbered('r', i));
    for (const line of lines.slice(0, 1_000)) accessLog.write(line);
    await until(() => accessLog.stats().written === 1_000);
    fs.renameSync(file, `${file}.1`);
    for (const line of lines.slice(1_000, 2_000)) accessLog.write(line);
    accessLog.reopen();
    for (const line of lines.slice(2_000)) accessLog.write(line);
    await accessLog.close();
    const rotated = readLines(`${file}.1`);
    const fresh = readLines(file);
    assert.deepEqual(rotated.slice(0, 1_000), lines.slice(0, 1_000));
    assert.deepEqual(fresh.slice(-1_000), lines.slice(2_000));
    assert.deepEqual([...rotated, ...fresh], lines);
  });

  test('a failed reopen drops and counts lines until a later reopen succeeds', async () => {
    const logs = path.join(dir, 'logs');
    const file = path.join(logs, 'access.log');
    const { log, entries } = captureLogger();
    const accessLog = open({ path: file, log });
    accessLog.write('before');
    await until(() => accessLog.stats().written === 1);
    fs.renameSync(logs, `${logs}.old`);
    fs.writeFileSync(logs, 'a file where the directory was');
    accessLog.reopen();
    for (let i = 0; i < 5; i++) accessLog.write(`lost ${i}`);
    await until(() => accessLog.stats().dropped === 5);
    assert.ok(entries.some((e) => e.level === 50 && e.path === file && /reopen failed/.test(String(e.msg))));
    fs.rmSync(logs);
    accessLog.reopen();
    accessLog.write('after');
    await accessLog.close();
    assert.deepEqual(readLines(path.join(`${logs}.old`, 'access.log')), ['before']);
    assert.deepEqual(readLines(file), ['after']);
    assert.deepEqual(accessLog.stats(), { written: 2, dropped: 5, bufferedBytes: 0 });
  });

  test('on a full disk (/dev/full) write never throws, every line is counted dropped, and one warning is logged', async () => {
    const { log, entries } = captureLogger();
    const accessLog = open({ path: '/dev/full', log });
    for (let i = 0; i < 5_000; i++) {
      accessLog.write(numbered('full', i));
      if (i % 500 === 0) await nextTurn();
    }
    await accessLog.close();
    assert.deepEqual(accessLog.stats(), { written: 0, dropped: 5_000, bufferedBytes: 0 });
    const warnings = entries.filter((e) => e.msg === 'access log write failed; lines dropped');
    assert.equal(warnings.length, 1, 'rate-limited to one warning per interval');
    assert.equal((warnings[0]?.err as { code?: string } | undefined)?.code, 'ENOSPC');
  });

  test('a FIFO whose reader never reads fills the bounded buffer, not the event loop', async () => {
    const fifo = path.join(dir, 'fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
    const readFd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const maxBufferBytes = 256 * 1024;
      const accessLog = open({ path: fifo, log: silentLogger(), maxBufferBytes });
      let turned = false;
      setTimeout(() => (turned = true), 0);
      let highest = 0;
      const total = 100_000;
      for (let i = 0; i < total; i++) {
        accessLog.write(`${String(i).padStart(8, '0')} ${'x'.repeat(90)}`); // 100 bytes with its newline
        highest = Math.max(highest, accessLog.stats().bufferedBytes);
        if (i % 1_000 === 999) await nextTurn();
      }
      assert.ok(turned, 'a timer fired while the lines were written');
      assert.ok(highest <= maxBufferBytes, `buffered ${highest} of at most ${maxBufferBytes}`);
      assert.ok(accessLog.stats().dropped > 0);

      const received: Buffer[] = [];
      const chunk = Buffer.alloc(64 * 1024);
      /** Bytes read, 0 at end of file, -1 when the FIFO is empty for now. */
      const readSome = (): number => {
        try {
          const n = fs.readSync(readFd, chunk);
          received.push(Buffer.from(chunk.subarray(0, n)));
          return n;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return -1;
          throw err;
        }
      };
      while (accessLog.stats().bufferedBytes > 0) if (readSome() <= 0) await nextTurn();
      await accessLog.close();
      while (readSome() !== 0) await nextTurn();

      const { written, dropped } = accessLog.stats();
      assert.equal(written + dropped, total);
      const lines = Buffer.concat(received).toString('utf8').split('\n');
      assert.equal(lines.pop(), '');
      assert.equal(lines.length, written);
      let previous = -1;
      for (const line of lines) {
        assert.match(line, /^\d{8} x{90}$/);
        const index = Number(line.slice(0, 8));
        assert.ok(index > previous, 'in order');
        previous = index;
      }
    } finally {
      fs.closeSync(readFd);
    }
  });
});
