/**
 * The official gRPC-Web client runtime (npm `grpc-web`, its ES module build) run in a real headless Chromium, for the
 * tests of the gateway's grpc-web support. startPageServer() serves a page, the runtime and a result endpoint from its
 * own origin, so every call to a gateway (another port) is a CORS request, as in production. The page's module script
 * has in scope the runtime's GrpcWebClientBase, MethodDescriptor and MethodType, hand-written protobuf codecs for
 * helloworld.HelloRequest/HelloReply, and two call helpers whose results are plain JSON:
 *   unary(host, path, request, metadata = {}, format = 'text')
 *     → {message} (the HelloReply) | {code, message, metadata} (the RpcError, message percent-decoded by the runtime)
 *   serverStream(host, path, request, metadata = {}, format = 'text')
 *     → events in arrival order: {type:'data', message} | {type:'metadata', metadata} |
 *       {type:'status', code, details, metadata} | {type:'error', code, message, metadata} | {type:'end'}
 *     The runtime emits 'metadata' (the CORS-exposed response headers) only when the response is complete, after the
 *     data and the trailer's 'status'; in binary format it delivers no data at all before then (XHR arraybuffer).
 * runInBrowser() runs one test script (the body of an async function; what it returns is the result) in a fresh
 * Chromium with a throwaway profile, and leaves no process or folder behind, whether the script passes, throws or hangs.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from '../../shared/config.ts';

export type PageReport = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: string };

export interface PageServer {
  /** The page, `http://127.0.0.1:<port>/`. */
  readonly url: string;
  /** The first report the page POSTs to /result: the script's return value, or the error that stopped it. */
  readonly report: Promise<PageReport>;
  close(): Promise<void>;
}

/** The runtime's ES module build: the `module` entry of its package.json, importable by a browser as is. */
const GRPC_WEB_MODULE = join(REPO_ROOT, 'node_modules', 'grpc-web', 'index.esm.js');
const STDERR_TAIL_CHARS = 4000;
/** Bounds the wait for init to reap the killed browser's orphans (1 to 2 s in a container whose init reaps on a timer). */
const GONE_LIMIT_MS = 5000;
const GONE_POLL_MS = 20;
const ZOMBIE = 'Z';
export const CHROMIUM_INSTALL_HINT = 'cannot start chromium (Debian: apt-get install chromium; .ci/run installs it)';

/**
 * Flags for an unattended run as root in a container. --no-sandbox: Chromium refuses to run as root with its sandbox.
 * --disable-dev-shm-usage: /dev/shm in containers is often 64 MB, too small for the renderer (Debian's launcher adds
 * the flag only when its own free-space check works, and that check fails here). The rest keep the browser from
 * calling home, showing first-run UI or touching a GPU; none of them changes how XHR, CORS or fetch behave.
 */
const CHROMIUM_FLAGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-extensions',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-default-apps',
  '--disable-sync',
  '--mute-audio',
  '--password-store=basic',
  // Page console messages and errors go to stderr, whose tail a timeout reports.
  '--enable-logging=stderr',
];

export interface BrowserRunOptions {
  /** How long the script may take, browser start included (under a second to the page's first line here). */
  readonly timeoutMs: number;
  /** Where the throwaway profile folder goes (os.tmpdir() by default): a test can then check that nothing is left. */
  readonly tmpDir?: string;
  /** More command-line flags (`--ignore-certificate-errors` for a page calling a self-signed TLS listener). */
  readonly flags?: readonly string[];
}

/** Runs `script` in a headless Chromium and resolves with what it returns; rejects with its error or on timeout. */
export async function runInBrowser(script: string, options: BrowserRunOptions): Promise<unknown> {
  const page = await startPageServer(script);
  const dir = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'gw-chromium-'));
  const browser = launchChromium(page.url, dir, options.flags ?? []);
  let timer: NodeJS.Timeout | undefined;
  try {
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no result from the page within ${options.timeoutMs} ms; chromium's stderr:\n${browser.stderr()}`)), options.timeoutMs);
    });
    const report = await Promise.race([page.report, browser.failed, timedOut]);
    if (!report.ok) throw new Error(`the page's script failed: ${report.error}`);
    return report.value;
  } finally {
    clearTimeout(timer);
    await browser.close();
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    await page.close();
  }
}

interface Browser {
  /** Rejects when Chromium cannot start or exits on its own. */
  readonly failed: Promise<never>;
  /** The last STDERR_TAIL_CHARS of Chromium's stderr (its log, page console messages included). */
  stderr(): string;
  /** Kills every process of this browser and waits until they are all gone. */
  close(): Promise<void>;
}

/** Chromium with its profile in `dir`/profile; everything it writes stays under `dir`. */
function launchChromium(url: string, dir: string, flags: readonly string[]): Browser {
  const child = spawn('chromium', [...CHROMIUM_FLAGS, ...flags, `--user-data-dir=${join(dir, 'profile')}`, url], {
    // Its own process group, so that one kill reaches the zygotes, renderers and utility processes too.
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    // The crash handler keeps its database under the default config folder, not under --user-data-dir: moving that
    // folder into `dir` keeps ~/.config clean and puts `dir` on the handler's command line, where close() finds it.
    env: { ...process.env, XDG_CONFIG_HOME: dir },
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-STDERR_TAIL_CHARS);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (err) => reject(new Error(`${CHROMIUM_INSTALL_HINT}: ${err.message}`)));
    child.once('exit', (code, signal) => reject(new Error(`chromium exited (${String(code ?? signal)}) before the page reported:\n${stderr}`)));
  });
  // close() makes it reject after a result too, when nobody waits for it any more.
  failed.catch(() => undefined);
  const pgid = child.pid;
  const killGroup = (): void => {
    if (pgid === undefined) return;
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // ESRCH: the group is gone already.
    }
  };
  // A test process that exits while a browser runs (process.exit, an uncaught error) still takes the browser down.
  process.once('exit', killGroup);
  let closed: Promise<void> | undefined;
  return {
    failed,
    stderr: () => stderr,
    close: () => {
      closed ??= (async () => {
        const members = pgid === undefined ? [] : await browserProcesses(pgid, dir);
        killGroup();
        for (const pid of members) killProcess(pid);
        process.removeListener('exit', killGroup);
        if (pgid === undefined) return;
        await exited;
        await waitGone(members);
      })();
      return closed;
    },
  };
}

/**
 * The processes of one browser: its process group, plus chrome_crashpad_handler, which starts in a session of its own
 * (out of reach of the group kill) and is known by `dir` on its command line. Linux /proc, see proc(5).
 */
async function browserProcesses(pgid: number, dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const pgrp = Number(statFields(stat)[2]);
      const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8');
      if (pgrp === pgid || cmdline.includes(dir)) pids.push(Number(name));
    } catch {
      // It exited while we looked.
    }
  }
  return pids;
}

function killProcess(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // ESRCH: gone already.
  }
}

/**
 * The browser's children outlive it by a moment: killed together with it they are orphans, zombies until init reaps
 * them, and they still show in `pgrep chromium`. An init that reaps on a timer takes one to two seconds (this costs
 * most of a run's time there); one that never reaps leaves them for good, so after GONE_LIMIT_MS zombies are accepted,
 * and only a process still alive is an error.
 */
async function waitGone(pids: readonly number[]): Promise<void> {
  const deadline = Date.now() + GONE_LIMIT_MS;
  for (;;) {
    const states = await Promise.all(pids.map(processState));
    const left = pids.filter((_, i) => states[i] !== undefined);
    if (left.length === 0) return;
    if (Date.now() > deadline) {
      const alive = pids.filter((_, i) => states[i] !== undefined && states[i] !== ZOMBIE);
      if (alive.length === 0) return;
      throw new Error(`chromium processes ${alive.join(', ')} still run ${GONE_LIMIT_MS} ms after SIGKILL`);
    }
    await sleep(GONE_POLL_MS);
  }
}

/** The state letter of /proc/<pid>/stat (proc(5)), or undefined once the process is reaped. */
async function processState(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return statFields(stat)[0];
  } catch {
    return undefined;
  }
}

/** The fields after the parenthesised command name, which may itself hold spaces and parentheses: state, ppid, pgrp, … */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** The page, the runtime and the result endpoint on 127.0.0.1, port 0. */
export async function startPageServer(script: string): Promise<PageServer> {
  const runtime = await readFile(GRPC_WEB_MODULE);
  const html = pageHtml(script);
  let settle: (report: PageReport) => void = () => undefined;
  const report = new Promise<PageReport>((resolve) => {
    settle = resolve;
  });
  const server = createServer((req, res) => {
    route(req, res, html, runtime, settle);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the page server has no TCP address');
  const { port } = address;
  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}/`,
    report,
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      return closed;
    },
  };
}

function route(req: IncomingMessage, res: ServerResponse, html: string, runtime: Buffer, settle: (report: PageReport) => void): void {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
  } else if (req.method === 'GET' && path === '/grpc-web.js') {
    res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(runtime);
  } else if (req.method === 'POST' && path === '/result') {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      settle(parseReport(Buffer.concat(chunks).toString('utf8')));
      res.writeHead(204).end();
    });
  } else {
    // favicon.ico and anything else: a plain 404 the page never waits for.
    res.writeHead(404).end();
  }
}

function parseReport(body: string): PageReport {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return { ok: false, error: `the page posted a result that is not JSON: ${body.slice(0, 200)}` };
  }
  if (typeof value === 'object' && value !== null && 'ok' in value) {
    if (value.ok === true && 'value' in value) return { ok: true, value: value.value };
    if (value.ok === false && 'error' in value && typeof value.error === 'string') return { ok: false, error: value.error };
  }
  return { ok: false, error: `the page posted an unexpected result: ${body.slice(0, 200)}` };
}

/**
 * The test page. A classic script first, so that errors the module cannot catch itself (a syntax error in the test's
 * script, the runtime failing to load: a non-bubbling error event on the script element, seen by a capturing
 * listener) are reported too instead of ending in a timeout. `</script` in the test's script would end the element.
 */
function pageHtml(script: string): string {
  const body = script.replace(/<\/(script)/gi, '<\\/$1');
  return `<!doctype html>
<meta charset="utf-8">
<title>grpc-web harness</title>
<script>
const reportFailure = (error) => fetch('/result', { method: 'POST', body: JSON.stringify({ ok: false, error }) });
addEventListener('error', (event) => {
  reportFailure(event instanceof ErrorEvent ? event.message + ' (' + event.filename + ':' + event.lineno + ')' : 'failed to load ' + String(event.target && (event.target.src || event.target.outerHTML)));
}, true);
addEventListener('unhandledrejection', (event) => reportFailure('unhandled rejection: ' + String(event.reason && event.reason.stack || event.reason)));
</script>
<script type="module">
import { GrpcWebClientBase, MethodDescriptor, MethodType } from '/grpc-web.js';
${PAGE_HELPERS}
try {
  const value = await (async () => {
${body}
  })();
  await fetch('/result', { method: 'POST', body: JSON.stringify({ ok: true, value: value ?? null }) });
} catch (err) {
  await reportFailure(err instanceof Error ? err.name + ': ' + err.message + '\\n' + err.stack : JSON.stringify(err));
}
</script>
`;
}

/**
 * The helpers in the page's scope (plain JavaScript, sent as text). HelloRequest and HelloReply are both `string = 1`:
 * tag 0x0a (field 1, wire type 2), a varint length, the UTF-8 bytes; proto3 leaves an empty string out. The decoder
 * skips unknown fields as the protobuf encoding spec requires. The runtime frames and base64-encodes by itself.
 */
const PAGE_HELPERS = String.raw`
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();
/** How long serverStream() waits for 'end' after an 'error': a trailers-only answer never emits 'end'. */
const SETTLE_AFTER_ERROR_MS = 200;

function encodeStringField1(value) {
  const bytes = utf8Encoder.encode(value);
  if (bytes.length === 0) return new Uint8Array(0);
  const length = [];
  let n = bytes.length;
  while (n >= 0x80) { length.push((n & 0x7f) | 0x80); n >>>= 7; }
  length.push(n);
  const out = new Uint8Array(1 + length.length + bytes.length);
  out[0] = 0x0a;
  out.set(length, 1);
  out.set(bytes, 1 + length.length);
  return out;
}

function decodeStringField1(bytes) {
  let i = 0;
  let value = '';
  const varint = () => {
    let result = 0;
    for (let shift = 0; ; shift += 7) {
      if (i >= bytes.length) throw new Error('truncated varint');
      const b = bytes[i++];
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return result;
    }
  };
  while (i < bytes.length) {
    const key = varint();
    const wireType = key % 8;
    if (wireType === 0) varint();
    else if (wireType === 1) i += 8;
    else if (wireType === 5) i += 4;
    else if (wireType === 2) {
      const length = varint();
      if (i + length > bytes.length) throw new Error('truncated length-delimited field');
      if (Math.floor(key / 8) === 1) value = utf8Decoder.decode(bytes.subarray(i, i + length));
      i += length;
    } else throw new Error('unsupported wire type ' + wireType);
  }
  if (i !== bytes.length) throw new Error('truncated fixed-width field');
  return value;
}

const encodeHelloRequest = (request) => encodeStringField1(request.name ?? '');
const decodeHelloRequest = (bytes) => ({ name: decodeStringField1(bytes) });
const encodeHelloReply = (reply) => encodeStringField1(reply.message ?? '');
const decodeHelloReply = (bytes) => ({ message: decodeStringField1(bytes) });

/** The runtime derives the URL's host part by cutting the descriptor's name off the end of host + path. */
const helloMethod = (path, methodType) => new MethodDescriptor(path, methodType, Object, Object, encodeHelloRequest, decodeHelloReply);

function unary(host, path, request, metadata = {}, format = 'text') {
  const client = new GrpcWebClientBase({ format });
  return new Promise((resolve) => {
    client.rpcCall(host + path, request, metadata, helloMethod(path, MethodType.UNARY), (err, reply) => {
      if (err) resolve({ code: err.code, message: err.message, metadata: err.metadata ?? {} });
      else resolve({ message: reply.message });
    });
  });
}

function serverStream(host, path, request, metadata = {}, format = 'text') {
  const client = new GrpcWebClientBase({ format });
  const stream = client.serverStreaming(host + path, request, metadata, helloMethod(path, MethodType.SERVER_STREAMING));
  const events = [];
  return new Promise((resolve) => {
    let settle;
    stream.on('data', (reply) => events.push({ type: 'data', message: reply.message }));
    stream.on('metadata', (headers) => events.push({ type: 'metadata', metadata: headers }));
    stream.on('status', (status) => events.push({ type: 'status', code: status.code, details: status.details, metadata: status.metadata ?? {} }));
    stream.on('error', (err) => {
      events.push({ type: 'error', code: err.code, message: err.message, metadata: err.metadata ?? {} });
      clearTimeout(settle);
      settle = setTimeout(() => resolve(events), SETTLE_AFTER_ERROR_MS);
    });
    stream.on('end', () => {
      events.push({ type: 'end' });
      clearTimeout(settle);
      resolve(events);
    });
  });
}
`;
