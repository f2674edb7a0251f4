/**
 * Opens COUNT idle HTTP/2 connections to HOST:PORT (h2c with prior knowledge, or with `tls` TLS negotiating ALPN h2,
 * certificates not verified) and keeps them open: each sends the client preface and an empty SETTINGS frame, acknowledges the server's SETTINGS (and answers PINGs), and sends
 * nothing else. Raw sockets, so the connector itself stays small. Prints one JSON line once every connection is
 * established or failed: {"established":N,"failed":M,"ms":T}, then holds them until its stdin closes; a line
 * `count` on stdin prints {"open":N}, the established connections still open.
 *
 * Run with a raised open-files limit (the benchmark uses `prlimit --nofile=...`):
 *   node bench/vs-nginx/idle-connector.ts 127.0.0.1:9081 10000 [concurrency] [tls]
 */
import { connect, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';

const [address = '', countArg = '10000', concurrencyArg = '256', mode = 'h2c'] = process.argv.slice(2);
const useTls = mode === 'tls';
const separator = address.lastIndexOf(':');
const host = address.slice(0, separator);
const port = Number(address.slice(separator + 1));
const count = Number(countArg);
const concurrency = Number(concurrencyArg);
const SETUP_LIMIT_MS = 10_000;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const FRAME_SETTINGS = 0x4;
const FRAME_PING = 0x6;
const FLAG_ACK = 0x1;

function frame(type: number, flags: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(0, 5);
  return Buffer.concat([header, payload]);
}

const sockets: Socket[] = [];
let failed = 0;
/** Established connections that are still open. */
let open_ = 0;
let firstError = '';

function open(): Promise<boolean> {
  return new Promise((resolve) => {
    // A name as SNI rather than the IP (Node warns about IPs in SNI); the proxies serve one certificate anyway.
    const socket = useTls
      ? connectTls({ host, port, servername: 'localhost', ALPNProtocols: ['h2'], rejectUnauthorized: false })
      : connect({ host, port });
    let pending: Buffer = Buffer.alloc(0);
    let settled = false;
    const done = (ok: boolean, why?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!ok) {
        if (firstError === '' && why !== undefined) firstError = why;
        socket.destroy();
      }
      resolve(ok);
    };
    const timer = setTimeout(() => done(false, 'no SETTINGS from the server in time'), SETUP_LIMIT_MS);
    socket.setNoDelay(true);
    const hello = (): void => {
      socket.write(Buffer.concat([PREFACE, frame(FRAME_SETTINGS, 0)]));
    };
    if (useTls) {
      socket.on('secureConnect', () => {
        const alpn = (socket as ReturnType<typeof connectTls>).alpnProtocol;
        if (alpn !== 'h2') done(false, `ALPN negotiated ${String(alpn)}, not h2`);
        else hello();
      });
    } else {
      socket.on('connect', hello);
    }
    socket.on('error', (err: Error) => done(false, err.message));
    socket.on('close', () => done(false, 'closed by the server'));
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 9) {
        const length = pending.readUIntBE(0, 3);
        if (pending.length < 9 + length) break;
        const type = pending[3];
        const flags = pending[4] ?? 0;
        const payload = pending.subarray(9, 9 + length);
        pending = pending.subarray(9 + length);
        if (type === FRAME_SETTINGS && (flags & FLAG_ACK) === 0) {
          socket.write(frame(FRAME_SETTINGS, FLAG_ACK));
          if (!settled) {
            open_++;
            socket.once('close', () => open_--);
          }
          done(true);
        } else if (type === FRAME_PING && (flags & FLAG_ACK) === 0) {
          socket.write(frame(FRAME_PING, FLAG_ACK, Buffer.from(payload)));
        }
      }
    });
    sockets.push(socket);
  });
}

const started = Date.now();
let next = 0;
let established = 0;
await Promise.all(
  Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) {
      next++;
      if (await open()) established++;
      else failed++;
    }
  }),
);
process.stdout.write(`${JSON.stringify({ established, failed, ms: Date.now() - started, firstError })}\n`);

process.stdin.setEncoding('utf8');
process.stdin.on('data', (text: string) => {
  for (const line of text.split('\n')) if (line.trim() === 'count') process.stdout.write(`${JSON.stringify({ open: open_ })}\n`);
});
process.stdin.on('end', () => {
  for (const socket of sockets) socket.destroy();
  process.exit(0);
});
process.stdin.on('error', () => process.exit(0));
