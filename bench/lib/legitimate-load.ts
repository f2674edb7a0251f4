/**
 * The legitimate traffic that runs beside an attack in bench/security.ts: a grpc-js client (one connection, as an
 * application has) making unary calls to the grpc-go bench upstream in UNARY_LOOPS sequential loops, recording each
 * call's latency and failures, and holding `longStreams` long-lived server streams to the same upstream node,
 * paused after their first message (flow control then holds the upstream), whose survival is checked at the end.
 */
import { Client, credentials, type ClientReadableStream } from '@grpc/grpc-js';
import { setTimeout as sleep } from 'node:timers/promises';

const UNARY_PATH = '/bench.Echo/Unary';
const STREAM_PATH = '/bench.Echo/Stream';
const UNARY_LOOPS = 2;
/** A long-lived stream asks for 2^32-1 messages of 16 bytes: it never ends by itself. */
const ENDLESS_COUNT = 0xffffffff;
const SMALL_MESSAGE = 16;
const ALIVE_LIMIT_MS = 3_000;
const identity = (b: Buffer): Buffer => b;

export interface LegitimateLoad {
  /** Latencies (ms) and failures since the last take. */
  takeLatencies(): { latencies: number[]; failures: number };
  /** How many long-lived streams are still alive: no error so far, and a message arrives once resumed. */
  longStreamsAlive(): Promise<number>;
  close(): void;
}

export async function legitimateLoad(address: string, options: { longStreams: number; readyLimitMs: number }): Promise<LegitimateLoad> {
  const client = new Client(address, credentials.createInsecure());
  let lastError = '';
  const unary = (): Promise<{ ok: boolean; ms: number }> =>
    new Promise((resolve) => {
      const started = performance.now();
      client.makeUnaryRequest(UNARY_PATH, identity, identity, Buffer.from('legitimate'), (err) => {
        if (err !== null) lastError = err.message;
        resolve({ ok: err === null, ms: performance.now() - started });
      });
    });
  const deadline = Date.now() + options.readyLimitMs;
  while (!(await unary()).ok) {
    if (Date.now() > deadline) throw new Error(`no successful call through ${address} within ${options.readyLimitMs} ms: ${lastError}`);
    await sleep(50);
  }
  let latencies: number[] = [];
  let failures = 0;
  let running = true;
  const loops = Array.from({ length: UNARY_LOOPS }, async () => {
    while (running) {
      const { ok, ms } = await unary();
      if (ok) latencies.push(ms);
      else failures++;
    }
  });
  const request = Buffer.alloc(8);
  request.writeUInt32BE(ENDLESS_COUNT, 0);
  request.writeUInt32BE(SMALL_MESSAGE, 4);
  const streams: { call: ClientReadableStream<Buffer>; failed: boolean }[] = [];
  for (let i = 0; i < options.longStreams; i++) {
    const call = client.makeServerStreamRequest(STREAM_PATH, identity, identity, request);
    const entry = { call, failed: false };
    call.once('data', () => call.pause());
    call.on('error', () => {
      entry.failed = true;
    });
    streams.push(entry);
  }
  return {
    takeLatencies() {
      const taken = { latencies, failures };
      latencies = [];
      failures = 0;
      return taken;
    },
    async longStreamsAlive() {
      let alive = 0;
      for (const entry of streams) {
        if (entry.failed) continue;
        const got = new Promise<boolean>((resolve) => {
          entry.call.once('data', () => resolve(true));
          entry.call.once('error', () => resolve(false));
          setTimeout(() => resolve(false), ALIVE_LIMIT_MS).unref();
        });
        entry.call.resume();
        if (await got) alive++;
        entry.call.pause();
      }
      return alive;
    },
    close() {
      running = false;
      for (const entry of streams) entry.call.cancel();
      void Promise.all(loops).then(() => client.close());
    },
  };
}
