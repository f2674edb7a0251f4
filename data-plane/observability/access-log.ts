/**
 * The access log writer: lines queued by the proxy on the hot path, written to a file, stdout or stderr off it.
 *
 * nginx writes its access log synchronously from the worker (optionally through a `buffer=` of a few KiB), which
 * a slow disk stalls. Here write() only appends to a bounded in-memory buffer; the bytes go out with asynchronous
 * fs.write (libuv's thread pool), one write in flight at most, every FLUSH_INTERVAL_MS (nginx's `flush=`) or at
 * once when 256 KiB are pending, so a slow disk or a reader that stops reading a pipe fills the buffer and
 * never the event loop. process.stdout.write is not used: it is synchronous for files and pipes on Linux.
 *
 * Each write holds whole lines on an O_APPEND descriptor, so the workers sharing a file never interleave
 * mid-line (a partial write continues with the rest). Past `maxBufferBytes` lines are dropped and counted; a write
 * error (ENOSPC, EPIPE, EBADF…) drops its batch, warns at most once per 10 s, and the next batch tries again.
 * reopen() is nginx's SIGUSR1: once the write in flight ends, the path is opened anew, so logrotate's renamed
 * file stops growing and the new lines go to a fresh file.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../shared/logger.ts';
import type { LineEncoder } from './access-log-format.ts';
import type { CallRecord } from './call-record.ts';

export interface AccessLog {
  /** Queues one line (a '\n' is appended). Never blocks, never throws: when the buffer is full the line is dropped and counted. */
  write(line: string): void;
  /** Queues one record's line, encoded by `encoder` straight into the buffer; the same guarantees as write(). */
  writeRecord(record: CallRecord, encoder: LineEncoder): void;
  /** Closes and reopens a file path (log rotation: nginx reopens on SIGUSR1); no-op for stdout/stderr. */
  reopen(): void;
  stats(): { written: number; dropped: number; bufferedBytes: number };
  /** Flushes what is buffered (bounded by a deadline) and closes the file. Idempotent. */
  close(): Promise<void>;
}

export interface AccessLogOptions {
  /** 'stdout', '/dev/stdout', 'stderr', '/dev/stderr', or a file path (relative to the working directory). */
  path: string;
  log: Logger;
  /** Pending bytes (queued plus in flight) beyond which lines are dropped; default 4 MiB. */
  maxBufferBytes?: number;
}

const DEFAULT_MAX_BUFFER_BYTES = 4 * 1024 * 1024;
/**
 * How long a line may wait for company (nginx's access_log `flush=`). Each write is a round trip through the thread
 * pool (a wake-up there and one back here): once per event-loop turn, that cost ~4 µs per call at 30,000 calls/s
 * (measured: /tmp A/B in issue #14's note); once per 100 ms or 256 KiB, it is shared by hundreds of lines.
 */
const FLUSH_INTERVAL_MS = 100;
/** The size of the buffers lines are encoded into. */
const CHUNK_BYTES = 256 * 1024;
const NEWLINE = 0x0a;
/** Pending bytes that start a write at once instead of at the next flush interval. */
const FLUSH_THRESHOLD_BYTES = 256 * 1024;
/** At most one warning per this many ms for each kind of loss. */
const WARN_INTERVAL_MS = 10_000;
/** Retry delay when a non-blocking descriptor (a stdout pipe shared with the parent) answers EAGAIN. */
const EAGAIN_RETRY_MS = 10;
/** How long close() waits for the buffer to drain before dropping what is left. */
const CLOSE_DEADLINE_MS = 5_000;
const STDOUT_FD = 1;
const STDERR_FD = 2;
const STDIO: Readonly<Record<string, number>> = { stdout: STDOUT_FD, '/dev/stdout': STDOUT_FD, stderr: STDERR_FD, '/dev/stderr': STDERR_FD };

/** A warning logged at most once per interval, with the lines lost since the previous one. */
class RateLimitedWarning {
  private lastAt = -Infinity;
  private dropped = 0;

  private readonly log: Logger;
  private readonly message: string;

  constructor(log: Logger, message: string) {
    this.log = log;
    this.message = message;
  }

  note(lines: number, err: unknown): void {
    this.dropped += lines;
    const now = Date.now();
    if (now - this.lastAt < WARN_INTERVAL_MS) return;
    this.lastAt = now;
    this.log.warn({ err, dropped: this.dropped }, this.message);
    this.dropped = 0;
  }
}

function openFile(file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.mkdir(path.dirname(file), { recursive: true }, (mkdirErr) => {
      if (mkdirErr) return reject(mkdirErr);
      fs.open(file, 'a', (err, fd) => (err ? reject(err) : resolve(fd)));
    });
  });
}

class AccessLogWriter implements AccessLog {
  private readonly file: string | undefined;
  private fd: number | undefined;
  private readonly maxBufferBytes: number;
  private readonly writeFailed: RateLimitedWarning;
  private readonly bufferFull: RateLimitedWarning;
  /** Lines are encoded straight into these (no string concatenation, no second pass to measure them). */
  private chunk: Buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  private chunkUsed = 0;
  private readonly filled: Buffer[] = [];
  private pendingLines = 0;
  private pendingBytes = 0;
  private batchLines = 0;
  private batchBytes = 0;
  /** A write (or a reopen) is in flight. */
  private busy = false;
  private reopenWanted = false;
  private immediate: NodeJS.Timeout | undefined;
  private written = 0;
  private dropped = 0;
  private closing = false;
  /** close() gave up waiting: the in-flight write closes the descriptor when it ends. */
  private abandoned = false;
  private closed: Promise<void> | undefined;
  private idleWaiters: Array<() => void> = [];
  private readonly flushNow = (): void => this.flush();

  private readonly options: AccessLogOptions;

  constructor(options: AccessLogOptions) {
    this.options = options;
    this.maxBufferBytes = options.maxBufferBytes ?? DEFAULT_MAX_BUFFER_BYTES;
    this.writeFailed = new RateLimitedWarning(options.log, 'access log write failed; lines dropped');
    this.bufferFull = new RateLimitedWarning(options.log, 'access log buffer full; lines dropped');
    const stdio = STDIO[options.path];
    if (stdio !== undefined) {
      this.fd = stdio;
      return;
    }
    this.file = path.resolve(process.cwd(), options.path);
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      this.fd = fs.openSync(this.file, 'a');
    } catch (err) {
      throw new Error(`access log: cannot open ${this.file}: ${(err as Error).message}`, { cause: err });
    }
  }

  write(line: string): void {
    if (this.closing) {
      this.dropped++;
      return;
    }
    // UTF-8 takes at most 3 octets per UTF-16 unit.
    this.reserve(line.length * 3 + 1);
    this.commit(this.chunk.write(line, this.chunkUsed, 'utf8') + 1);
  }

  writeRecord(record: CallRecord, encoder: LineEncoder): void {
    if (this.closing) {
      this.dropped++;
      return;
    }
    this.reserve(encoder.maxBytes(record) + 1);
    this.commit(encoder.encode(record, this.chunk, this.chunkUsed) - this.chunkUsed + 1);
  }

  /** A line that may need `worst` octets starts a new chunk unless they fit in this one. */
  private reserve(worst: number): void {
    if (this.chunk.length - this.chunkUsed >= worst) return;
    if (this.chunkUsed > 0) this.filled.push(this.chunk.subarray(0, this.chunkUsed));
    this.chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, worst));
    this.chunkUsed = 0;
  }

  /** The line just encoded at chunkUsed (`bytes` with its newline) is kept, or dropped if the buffer is full. */
  private commit(bytes: number): void {
    if (this.pendingBytes + this.batchBytes + bytes > this.maxBufferBytes) {
      // Encoded but not kept: the bytes past chunkUsed are overwritten by the next line.
      this.dropped++;
      this.bufferFull.note(1, undefined);
      return;
    }
    this.chunk[this.chunkUsed + bytes - 1] = NEWLINE;
    this.chunkUsed += bytes;
    this.pendingLines++;
    this.pendingBytes += bytes;
    if (this.busy) return;
    if (this.pendingBytes >= FLUSH_THRESHOLD_BYTES) this.flush();
    else this.immediate ??= setTimeout(this.flushNow, FLUSH_INTERVAL_MS).unref();
  }

  reopen(): void {
    if (this.file === undefined || this.closing) return;
    this.reopenWanted = true;
    if (!this.busy) void this.doReopen();
  }

  stats(): { written: number; dropped: number; bufferedBytes: number } {
    return { written: this.written, dropped: this.dropped, bufferedBytes: this.pendingBytes + this.batchBytes };
  }

  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    let timer: NodeJS.Timeout | undefined;
    const drained = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_DEADLINE_MS)));
    this.flush();
    await Promise.race([drained, deadline]);
    clearTimeout(timer);
    if (this.pendingLines > 0) this.dropPending();
    if (this.busy) this.abandoned = true;
    else await this.closeFd();
  }

  private flush(): void {
    if (this.immediate !== undefined) {
      clearTimeout(this.immediate);
      this.immediate = undefined;
    }
    if (this.busy) return;
    if (this.pendingLines === 0) return this.notifyIdle();
    if (this.fd === undefined) {
      this.writeFailed.note(this.pendingLines, new Error(`access log ${this.file ?? ''} is not open`));
      this.dropPending();
      return this.notifyIdle();
    }
    const buffer = this.takePending();
    this.batchLines = this.pendingLines;
    this.batchBytes = this.pendingBytes;
    this.pendingLines = 0;
    this.pendingBytes = 0;
    this.busy = true;
    this.writeFrom(this.fd, buffer, 0);
  }

  private writeFrom(fd: number, buffer: Buffer, offset: number): void {
    fs.write(fd, buffer, offset, buffer.length - offset, null, (err, bytes) => {
      if (err) {
        if (err.code === 'EAGAIN' && !this.abandoned) {
          setTimeout(() => this.writeFrom(fd, buffer, offset), EAGAIN_RETRY_MS);
          return;
        }
        this.dropped += this.batchLines;
        this.writeFailed.note(this.batchLines, err);
        return this.batchDone();
      }
      if (offset + bytes < buffer.length) return this.writeFrom(fd, buffer, offset + bytes);
      this.written += this.batchLines;
      this.batchDone();
    });
  }

  private batchDone(): void {
    this.batchLines = 0;
    this.batchBytes = 0;
    this.busy = false;
    this.afterBusy();
  }

  /** The write or reopen in flight ended: close if close() gave up, reopen if asked, else go on writing. */
  private afterBusy(): void {
    if (this.abandoned) {
      void this.closeFd();
      return;
    }
    if (this.reopenWanted) {
      void this.doReopen();
      return;
    }
    if (this.closing || this.pendingBytes >= FLUSH_THRESHOLD_BYTES) this.flush();
    else if (this.pendingLines > 0) this.immediate ??= setTimeout(this.flushNow, FLUSH_INTERVAL_MS).unref();
    else this.notifyIdle();
  }

  private async doReopen(): Promise<void> {
    const file = this.file;
    if (file === undefined) return; // reopen() asks only when writing to a file
    this.reopenWanted = false;
    this.busy = true;
    const old = this.fd;
    this.fd = undefined;
    if (old !== undefined) await new Promise<void>((resolve) => fs.close(old, () => resolve()));
    try {
      this.fd = await openFile(file);
    } catch (err) {
      this.options.log.error({ err, path: file }, 'access log reopen failed; lines dropped until a reopen succeeds');
    }
    this.busy = false;
    this.afterBusy();
  }

  /** The pending lines as one buffer (the chunk in use is handed over: lines go to a fresh one from now on). */
  private takePending(): Buffer {
    const last = this.chunk.subarray(0, this.chunkUsed);
    const buffer = this.filled.length === 0 ? last : Buffer.concat([...this.filled, last]);
    this.filled.length = 0;
    this.chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    this.chunkUsed = 0;
    return buffer;
  }

  private dropPending(): void {
    this.dropped += this.pendingLines;
    this.filled.length = 0;
    this.chunkUsed = 0;
    this.pendingLines = 0;
    this.pendingBytes = 0;
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Closes a file's descriptor (never stdout's or stderr's, which the process owns). */
  private closeFd(): Promise<void> {
    const fd = this.fd;
    this.fd = undefined;
    if (fd === undefined || this.file === undefined) return Promise.resolve();
    return new Promise((resolve) => fs.close(fd, () => resolve()));
  }
}

/**
 * Opens the access log at `options.path`. A file that cannot be opened throws here (naming the path), so a
 * wrong path stops the start instead of losing every line.
 */
export function openAccessLog(options: AccessLogOptions): AccessLog {
  return new AccessLogWriter(options);
}
