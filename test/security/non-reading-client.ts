/**
 * A client that opens server streams and never reads them (issue #11, case 4): one connection, every stream's
 * HEADERS and request message in one write right after the preface, and never a WINDOW_UPDATE, so the gateway can
 * send it no more than the protocol's initial 64 KiB connection window and has to hold, or hold back, the rest.
 * Each request asks the upstream for COUNT messages of SIZE bytes (the grpc-go bench upstream's `Stream` method
 * reads N and S as two big-endian uint32 from the request; test fakes read the same). While the streams are held,
 * `sampleRss` is polled until the peak stops growing. Used by test/security/memory-budget-*.test.ts and
 * bench/security.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { grpcFrame } from '../helpers/fake-upstream.ts';
import { AttackClient, FrameType, grpcRequestHeaders, type AttackTarget } from './h2-attack-client.ts';

/** What each stream asks for: 1,000 messages of 64 KiB (64 MiB), far beyond any window. */
export const MESSAGE_COUNT = 1000;
export const MESSAGE_BYTES = 64 * 1024;
const SAMPLE_EVERY_MS = 100;
/** The peak is taken as reached when it has not grown for this long. */
const PLATEAU_MS = 3_000;
const REFUSED_STREAM = 0x7;

export interface HoldOptions {
  target: AttackTarget;
  path: string;
  streams: number;
  /** The gateway's RSS in KiB, polled while the streams are held. */
  sampleRss: () => number;
  /** The longest the streams are held (default 20 s). */
  limitMs?: number;
}

export interface HoldResult {
  /** Streams the gateway refused (RST_STREAM REFUSED_STREAM). */
  refused: number;
  /** Streams neither refused nor otherwise ended by the gateway while held. */
  served: number;
  peakRssKiB: number;
  heldMs: number;
  /** The connection the streams are held on, still open: the caller destroys it. */
  client: AttackClient;
}

/** The request message of one stream: N and S as two big-endian uint32. */
export function streamRequest(count = MESSAGE_COUNT, size = MESSAGE_BYTES): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt32BE(count, 0);
  body.writeUInt32BE(size, 4);
  return grpcFrame(body);
}

export async function holdNonReadingStreams(options: HoldOptions): Promise<HoldResult> {
  const client = await AttackClient.open(options.target);
  const headers = grpcRequestHeaders(`${options.target.host}:${options.target.port}`, options.path);
  const request = streamRequest();
  client.batch(() => {
    for (let i = 0; i < options.streams; i++) {
      client.headers(1 + 2 * i, headers);
      client.data(1 + 2 * i, request, true);
    }
  });
  const started = Date.now();
  const limitMs = options.limitMs ?? 20_000;
  let peak = options.sampleRss();
  let peakAt = started;
  while (Date.now() - started < limitMs && Date.now() - peakAt < PLATEAU_MS) {
    await sleep(SAMPLE_EVERY_MS);
    const rss = options.sampleRss();
    if (rss > peak + 1024) peakAt = Date.now(); // growth of more than 1 MiB restarts the plateau
    peak = Math.max(peak, rss);
  }
  const refused = client.received(FrameType.RST_STREAM).filter((f) => f.payload.readUInt32BE(0) === REFUSED_STREAM).length;
  let ended = 0;
  for (let i = 0; i < options.streams; i++) if (client.streamEnded(1 + 2 * i)) ended++;
  return { refused, served: options.streams - ended, peakRssKiB: peak, heldMs: Date.now() - started, client };
}
