/**
 * The HTTP/2 fuzzer's generator (test/http2/fuzz.test.ts, bench/fuzz.ts): from one seed, client sessions of
 * frames to feed the engine's ServerConnection. A session is the preface and SETTINGS, then "units" (one frame, or
 * a HEADERS + CONTINUATION chain) drawn from a weighted mix of what a gRPC client sends and what a hostile one
 * might: HPACK-encoded requests (the engine's own HpackEncoder, so its dynamic table is really used), DATA with gRPC
 * messages, trailers, RST_STREAM, WINDOW_UPDATE, PING, SETTINGS, PRIORITY, GOAWAY, PUSH_PROMISE, unknown types.
 * Sessions come in three kinds: clean (no mutation: long sessions deep in the stream and flow-control paths),
 * light and heavy (each unit mutated with that probability: bit flips, lengths truncated or extended, random
 * stream ids, flags and types, random bytes, units cut short or repeated). Units are grouped into reads that
 * are cut at random points, so frames also arrive split across reads.
 *
 * Everything is deterministic in the seed: a failure names the seed and the session index to replay.
 */
import { CLIENT_PREFACE, FRAME_HEADER_BYTES, FrameFlag, FrameType } from '../../data-plane/http2/frame.ts';
import { HpackEncoder } from '../../data-plane/http2/hpack-encoder.ts';

/** mulberry32: a small, fast, seedable PRNG (32-bit state). */
const POOL_BYTES = 1 << 20;
let pool: Buffer | undefined;

/** 1 MiB of random bytes, the same in every run (a fixed seed), filled once per process. */
function randomPool(): Buffer {
  if (pool === undefined) {
    const rng = new Rng(0x9e3779b9);
    pool = Buffer.allocUnsafe(POOL_BYTES);
    for (let i = 0; i < POOL_BYTES; i += 4) pool.writeUInt32LE(rng.u32(), i);
  }
  return pool;
}

export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  u32(): number {
    return (this.next() * 4294967296) >>> 0;
  }

  /** `n` random bytes: a view of a shared pool at an offset drawn here (read-only: copy before changing it). */
  bytes(n: number): Buffer {
    const pool = randomPool();
    const at = this.int(POOL_BYTES - n);
    return pool.subarray(at, at + n);
  }

  /** Small sizes mostly, sometimes large ones (log-uniform up to `max`). */
  size(max: number): number {
    return Math.min(max, Math.floor(Math.exp(this.next() * Math.log(max + 1))));
  }
}

export type Mutation = 'bitflip' | 'length' | 'stream' | 'flags' | 'type' | 'random' | 'truncate' | 'garbage' | 'repeat' | 'drop';
const MUTATIONS: readonly Mutation[] = ['bitflip', 'length', 'stream', 'flags', 'type', 'random', 'truncate', 'garbage', 'repeat', 'drop'];

export type SessionKind = 'clean' | 'light' | 'heavy';

export interface GenOptions {
  /** Request paths to draw from (the data plane's routes, or anything for the in-process handler). */
  readonly paths: readonly string[];
  /** Extra request fields a path may get (e.g. the Greeter's delay header), drawn per request. */
  readonly extraFields?: (rng: Rng) => string[];
  /** Units per session: at most this many. */
  readonly maxUnits: number;
}

/**
 * One client session, generated as it is read: `nextRead()` gives the next chunk to write (undefined at the end),
 * so a connection the server closes early costs no more generation.
 */
export class Session {
  readonly kind: SessionKind;
  /** How the client ends the session when the server has not: close the socket, GOAWAY then close, or wait. */
  readonly ending: 'close' | 'goaway' | 'server-shutdown';
  readonly mutations: Partial<Record<Mutation, number>> = {};
  private readonly rng: Rng;
  private readonly builder: SessionBuilder;
  private readonly rate: number;
  private unitsLeft: number;
  private opened = false;
  /** The second half of a read cut in two, and its frames. */
  private tail: Buffer | undefined;
  private tailFrames = 0;

  constructor(rng: Rng, options: GenOptions, kind: SessionKind, ending: Session['ending']) {
    this.rng = rng;
    this.kind = kind;
    this.ending = ending;
    this.rate = kind === 'clean' ? 0 : kind === 'light' ? 0.02 : 0.2;
    this.builder = new SessionBuilder(rng, options, kind !== 'clean');
    this.unitsLeft = rng.range(1, options.maxUnits);
  }

  /** The next read: the opening (alone or with the first units), then 1–8 units; some reads are cut in two. */
  nextRead(): { bytes: Buffer; frames: number } | undefined {
    const rng = this.rng;
    if (this.tail !== undefined) {
      const read = { bytes: this.tail, frames: this.tailFrames };
      this.tail = undefined;
      return read;
    }
    const parts: Buffer[] = [];
    let frames = 0;
    let count = rng.range(1, 8);
    if (!this.opened) {
      this.opened = true;
      const first = opening(rng, this.kind !== 'clean');
      parts.push(first.bytes);
      frames += first.frames;
      count = rng.int(4);
    } else if (this.unitsLeft === 0) {
      return undefined;
    }
    const units = this.builder.units;
    for (; count > 0 && this.unitsLeft > 0; count--, this.unitsLeft--) {
      units.length = 0;
      this.builder.unit();
      if (this.rate > 0 && rng.chance(this.rate)) this.builder.mutateLast(this.mutations);
      for (const unit of units) {
        parts.push(unit.bytes);
        frames += unit.frames;
      }
    }
    const bytes = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
    if (rng.chance(0.2) && bytes.length > 1) {
      const cut = 1 + rng.int(bytes.length - 1);
      this.tail = bytes.subarray(cut);
      this.tailFrames = frames;
      return { bytes: bytes.subarray(0, cut), frames: 0 };
    }
    return { bytes, frames };
  }
}

const GRPC_TYPES = ['application/grpc', 'application/grpc+proto', 'application/grpc', 'text/plain'];
const AUTHORITIES = ['fuzz.local', 'localhost', '127.0.0.1:9080'];
const ODD_NAMES = ['x-a', 'X-Upper', 'connection', 'te', 'content-length', ':path', ':status', 'grpc-timeout', 'a b', 'x-bin-bin', ''];
const ODD_VALUES = ['1', 'gzip', ' lead', 'trail ', 'nul\0', 'cr\r', 'trailers', '99999999999999999999', '-1', '2S', '1x'];

/** One gRPC message (5-byte prefix) carrying a HelloRequest { name }, or something broken. */
function grpcMessage(rng: Rng): Buffer {
  const name = rng.chance(0.9) ? `fuzz-${rng.int(1000)}` : rng.bytes(rng.size(4000)).toString('latin1');
  const nameBytes = Buffer.from(name, 'latin1');
  const body = Buffer.concat([Buffer.from([0x0a]), varint(nameBytes.length), nameBytes]);
  const prefix = Buffer.alloc(5);
  prefix[0] = rng.chance(0.97) ? 0 : rng.int(256);
  prefix.writeUInt32BE(rng.chance(0.95) ? body.length : rng.u32(), 1);
  const message = Buffer.concat([prefix, body]);
  return rng.chance(0.9) ? message : message.subarray(0, rng.int(message.length + 1));
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

/** A PRIORITY dependency other than the stream itself. */
function notSelf(dependency: number, id: number): number {
  return dependency === id ? 0 : dependency;
}

function frame(type: number, flags: number, streamId: number, payload: Buffer = EMPTY): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUIntBE(payload.length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(streamId >>> 0, 5);
  payload.copy(out, FRAME_HEADER_BYTES);
  return out;
}

function u32(value: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(value >>> 0);
  return b;
}

const EMPTY = Buffer.alloc(0);

/** Adds padding (PADDED flag) to a DATA or HEADERS payload; in hostile sessions sometimes more than the frame has. */
function pad(rng: Rng, payload: Buffer, hostile: boolean): { payload: Buffer; flag: number } {
  if (!rng.chance(0.1)) return { payload, flag: 0 };
  const padLength = rng.chance(0.95) ? rng.int(32) : rng.int(256);
  const head = Buffer.from([!hostile || rng.chance(0.97) ? padLength : rng.int(256)]);
  return { payload: Buffer.concat([head, payload, Buffer.alloc(padLength)]), flag: FrameFlag.PADDED };
}

/** Generates the units of one session; `mutationRate` 0 for clean sessions. */
class SessionBuilder {
  private readonly rng: Rng;
  private readonly options: GenOptions;
  private readonly encoder = new HpackEncoder();
  private nextId = 1;
  /** Streams this client opened and has not ended or reset (as far as it knows). */
  private open: number[] = [];
  /** Streams it opened whose request side it ended (the response may still come). */
  private halfClosed: number[] = [];
  readonly units: { bytes: Buffer; frames: number }[] = [];
  /** Clean sessions send only what a correct client may send (stream errors included); others break the rules. */
  private readonly hostile: boolean;

  constructor(rng: Rng, options: GenOptions, hostile: boolean) {
    this.rng = rng;
    this.options = options;
    this.hostile = hostile;
  }

  /** A rule-breaking choice, with probability `p` in hostile sessions only. */
  private odd(p: number): boolean {
    return this.hostile && this.rng.chance(p);
  }

  private push(bytes: Buffer, frames = 1): void {
    this.units.push({ bytes, frames });
  }

  /** An open stream mostly; sometimes a closed, an idle, an even or a random one. */
  private streamId(): number {
    const rng = this.rng;
    if (this.odd(0.005)) return this.nextId + 2 * rng.int(4); // idle
    if (this.odd(0.002)) return rng.u32() & 0x7fffffff;
    const roll = rng.next();
    if (roll < 0.85 && this.open.length > 0) return rng.pick(this.open);
    if (roll < 0.93 && this.halfClosed.length > 0) return rng.pick(this.halfClosed);
    // A stream opened earlier (closed by now, most likely), never one not opened yet.
    return this.nextId > 1 ? 2 * rng.int((this.nextId - 1) / 2) + 1 : 1;
  }

  private requestFields(): string[] {
    const rng = this.rng;
    const fields = [':method', rng.chance(0.97) ? 'POST' : 'GET', ':scheme', 'http', ':path', rng.pick(this.options.paths)];
    if (rng.chance(0.9)) fields.push(':authority', rng.pick(AUTHORITIES));
    fields.push('content-type', rng.pick(GRPC_TYPES));
    if (rng.chance(0.8)) fields.push('te', 'trailers');
    if (rng.chance(0.2)) fields.push('grpc-timeout', rng.pick(['1S', '50m', '200m', '5u', '1H', 'bad', '123456789S']));
    if (rng.chance(0.3)) fields.push('user-agent', 'grpc-fuzz/1.0');
    if (rng.chance(0.1)) fields.push('authorization', `Bearer ${rng.int(1e6)}`);
    if (this.options.extraFields !== undefined) fields.push(...this.options.extraFields(rng));
    if (rng.chance(0.01)) fields.push(`x-big-${rng.int(10)}`, 'v'.repeat(rng.size(70_000)));
    if (this.odd(0.05)) {
      // A malformed request: a field the §8 checks refuse (uppercase, connection-specific, a late pseudo-header…).
      const name = rng.pick(ODD_NAMES);
      const value = rng.pick(ODD_VALUES);
      if (rng.chance(0.5)) fields.push(name, value);
      else fields.unshift(name, value);
    }
    if (this.odd(0.03)) fields.splice(2 * rng.int(fields.length / 2), 2); // a required pseudo-header missing, maybe
    return fields;
  }

  /** A header block as HEADERS, or HEADERS + CONTINUATION, on `id`. */
  private headerBlock(id: number, fields: string[], endStream: boolean): void {
    const rng = this.rng;
    let block = this.encoder.encode(fields);
    if (rng.chance(0.02)) this.encoder.setPeerMaxTableSize(rng.pick(this.hostile ? [0, 256, 4096, 8192] : [0, 256, 4096]));
    const split = rng.chance(0.15) || block.length > 16_000;
    let flags = endStream ? FrameFlag.END_STREAM : 0;
    let prefix = EMPTY;
    if (rng.chance(0.1)) {
      flags |= FrameFlag.PRIORITY;
      const dependency = this.odd(0.1) ? id : notSelf(rng.int(id + 4), id);
      prefix = Buffer.concat([u32(dependency | (rng.chance(0.2) ? 0x80000000 : 0)), Buffer.from([rng.int(256)])]);
    }
    if (!split) {
      const padded = pad(rng, Buffer.concat([prefix, block]), this.hostile);
      return this.push(frame(FrameType.HEADERS, flags | FrameFlag.END_HEADERS | padded.flag, id, padded.payload));
    }
    // A chain: the fragments of the block, sometimes with empty CONTINUATION frames between (a flood, if many).
    const parts: Buffer[] = [];
    const first = Math.min(block.length, rng.int(Math.min(block.length, 16_000) + 1));
    const padded = pad(rng, Buffer.concat([prefix, block.subarray(0, first)]), this.hostile);
    parts.push(frame(FrameType.HEADERS, flags | padded.flag, id, padded.payload));
    block = block.subarray(first);
    const empties = rng.chance(0.05) ? rng.size(this.hostile ? 1000 : 300) : 0;
    for (let i = 0; i < empties; i++) parts.push(frame(FrameType.CONTINUATION, 0, id));
    while (block.length > 0) {
      const n = Math.min(block.length, 1 + rng.int(Math.min(block.length, 16_000)));
      parts.push(frame(FrameType.CONTINUATION, n === block.length ? FrameFlag.END_HEADERS : 0, id, block.subarray(0, n)));
      block = block.subarray(n);
    }
    if (parts.length === 1 + empties) parts.push(frame(FrameType.CONTINUATION, FrameFlag.END_HEADERS, id));
    if (this.odd(0.03)) parts.splice(1 + rng.int(parts.length - 1), 0, frame(FrameType.PING, 0, 0, rng.bytes(8))); // interleaved
    this.push(Buffer.concat(parts), parts.length);
  }

  private request(): void {
    const rng = this.rng;
    const id = this.nextId;
    this.nextId += 2;
    const endStream = rng.chance(0.1);
    this.headerBlock(id, this.requestFields(), endStream);
    (endStream ? this.halfClosed : this.open).push(id);
    if (this.open.length > 24) this.open.shift();
    if (this.halfClosed.length > 24) this.halfClosed.shift();
    // Most requests come with their message at once, as grpc-js sends them.
    if (!endStream && rng.chance(0.6)) this.data(id, rng.chance(0.7));
  }

  private data(id = this.streamId(), end = this.rng.chance(0.3)): void {
    const rng = this.rng;
    let body = rng.chance(0.85) ? grpcMessage(rng) : rng.bytes(rng.size(16_000));
    if (rng.chance(0.05)) body = EMPTY;
    if (body.length > 16_000) body = body.subarray(0, 16_000);
    const padded = pad(rng, body, this.hostile);
    this.push(frame(FrameType.DATA, (end ? FrameFlag.END_STREAM : 0) | padded.flag, id, padded.payload));
    if (end) this.ended(id);
  }

  private ended(id: number): void {
    const at = this.open.indexOf(id);
    if (at >= 0) {
      this.open.splice(at, 1);
      this.halfClosed.push(id);
    }
  }

  private forget(id: number): void {
    this.open = this.open.filter((x) => x !== id);
    this.halfClosed = this.halfClosed.filter((x) => x !== id);
  }

  private settings(): Buffer {
    const rng = this.rng;
    const pairs: [number, number][] = [];
    const n = rng.int(5);
    for (let i = 0; i < n; i++) {
      const id = rng.chance(0.9) ? rng.range(1, 6) : rng.range(7, 0xffff);
      let value: number;
      switch (id) {
        case 1:
          value = rng.pick([0, 256, 4096, 65_536]);
          break;
        case 2:
          value = this.odd(0.05) ? rng.int(3) : rng.int(2);
          break;
        case 3:
          value = rng.pick([0, 1, 100, 0xffffffff]);
          break;
        case 4:
          value = this.odd(0.05) ? 0x80000000 : rng.pick([0, 1, 100, 65_535, 1 << 20, 0x7fffffff]);
          break;
        case 5:
          value = this.odd(0.05) ? rng.pick([0, 16_383, 16_777_216]) : rng.pick([16_384, 32_768, 16_777_215]);
          break;
        default:
          value = rng.u32();
      }
      pairs.push([id, value]);
    }
    const payload = Buffer.allocUnsafe(pairs.length * 6);
    pairs.forEach(([id, value], i) => {
      payload.writeUInt16BE(id, i * 6);
      payload.writeUInt32BE(value >>> 0, i * 6 + 2);
    });
    return frame(FrameType.SETTINGS, 0, 0, payload);
  }

  /** One unit from the weighted mix. */
  unit(): void {
    const rng = this.rng;
    const roll = rng.int(100);
    // A correct client sends frames on streams only once it opened one.
    if (roll < 16 || (this.nextId === 1 && !this.odd(0.1))) return this.request();
    if (roll < 40) return this.data();
    if (roll < 44) {
      // Trailers: HEADERS on a closed stream is a connection error, so clean sessions send them on open streams.
      if (!this.hostile && this.open.length === 0) return this.request();
      const id = this.hostile ? this.streamId() : rng.pick(this.open);
      this.ended(id);
      return this.headerBlock(id, rng.chance(0.9) ? ['x-trailer', String(rng.int(100))] : [':path', '/x'], rng.chance(0.95));
    }
    if (roll < 48) {
      const id = this.streamId();
      this.ended(id);
      return this.push(frame(FrameType.DATA, FrameFlag.END_STREAM, id));
    }
    if (roll < 55) {
      const id = this.streamId();
      this.forget(id);
      return this.push(frame(FrameType.RST_STREAM, 0, id, u32(rng.chance(0.7) ? 8 : rng.int(16))));
    }
    if (roll < 65) {
      const id = rng.chance(0.3) ? 0 : this.streamId();
      const increment = this.odd(0.1) ? rng.pick([0, 0x7fffffff, 0xffffffff]) : rng.range(1, 1 << 20);
      return this.push(frame(FrameType.WINDOW_UPDATE, 0, id, u32(increment)));
    }
    if (roll < 70) return this.push(frame(FrameType.PING, rng.chance(0.9) ? 0 : FrameFlag.ACK, 0, rng.bytes(8)));
    if (roll < 74) return this.push(rng.chance(0.7) ? this.settings() : frame(FrameType.SETTINGS, FrameFlag.ACK, 0));
    if (roll < 78) {
      const id = this.streamId();
      const dependency = this.odd(0.1) ? id : notSelf(rng.int(this.nextId + 2), id);
      return this.push(frame(FrameType.PRIORITY, 0, id, Buffer.concat([u32(dependency), Buffer.from([rng.int(256)])])));
    }
    if (roll < 79) {
      return this.push(frame(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(rng.int(this.nextId + 1)), u32(rng.int(14)), rng.bytes(rng.int(16))])));
    }
    if (roll < 80 && this.odd(0.3)) return this.push(frame(FrameType.PUSH_PROMISE, FrameFlag.END_HEADERS, this.streamId(), u32(this.nextId + 1)));
    if (roll < 86) return this.push(frame(10 + rng.int(246), rng.int(256), rng.chance(0.5) ? 0 : this.streamId(), rng.bytes(rng.size(2000))));
    // More of the common case: messages on streams already open (bidi, client streams).
    return this.data();
  }

  /** Applies one random mutation to the last unit. */
  mutateLast(counts: Partial<Record<Mutation, number>>): void {
    const rng = this.rng;
    const unit = this.units[this.units.length - 1];
    if (unit === undefined) return;
    const kind = rng.pick(MUTATIONS);
    counts[kind] = (counts[kind] ?? 0) + 1;
    const b = Buffer.from(unit.bytes); // units may share buffers with nothing, but keep them independent
    switch (kind) {
      case 'bitflip': {
        const flips = rng.range(1, 3);
        for (let i = 0; i < flips && b.length > 0; i++) {
          const at = rng.chance(0.7) ? rng.int(Math.min(b.length, FRAME_HEADER_BYTES + 8)) : rng.int(b.length);
          b[at] = (b[at] as number) ^ (1 << rng.int(8));
        }
        unit.bytes = b;
        return;
      }
      case 'length':
        if (b.length >= 3) b.writeUIntBE(rng.chance(0.5) ? rng.int(b.readUIntBE(0, 3) + 64) : rng.size(1 << 24), 0, 3);
        unit.bytes = b;
        return;
      case 'stream':
        if (b.length >= 9) b.writeUInt32BE(rng.chance(0.5) ? rng.int(16) : rng.u32(), 5);
        unit.bytes = b;
        return;
      case 'flags':
        if (b.length >= 5) b[4] = rng.int(256);
        unit.bytes = b;
        return;
      case 'type':
        if (b.length >= 4) b[3] = rng.chance(0.7) ? rng.int(10) : rng.int(256);
        unit.bytes = b;
        return;
      case 'random':
        unit.bytes = rng.bytes(rng.size(256));
        return;
      case 'truncate':
        unit.bytes = b.subarray(0, rng.int(b.length + 1));
        return;
      case 'garbage':
        unit.bytes = Buffer.concat([rng.bytes(rng.range(1, 16)), b]);
        return;
      case 'repeat':
        unit.bytes = Buffer.concat([b, b]);
        unit.frames *= 2;
        return;
      case 'drop':
        unit.bytes = EMPTY;
        unit.frames = 0;
        return;
    }
  }
}

/** The first bytes: the preface and SETTINGS, in hostile sessions rarely broken (HTTP/1, a bad magic, no SETTINGS). */
function opening(rng: Rng, hostile: boolean): { bytes: Buffer; frames: number } {
  const settings = frame(FrameType.SETTINGS, 0, 0, rng.chance(0.5) ? EMPTY : Buffer.from([0, 4, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0]));
  const roll = rng.next();
  if (roll < 0.97 || !hostile) return { bytes: Buffer.concat([CLIENT_PREFACE, settings]), frames: 1 };
  if (roll < 0.98) return { bytes: Buffer.from('POST /helloworld.Greeter/SayHello HTTP/1.1\r\nhost: x\r\n\r\n'), frames: 0 };
  if (roll < 0.99) {
    const bad = Buffer.from(CLIENT_PREFACE);
    const at = 4 + rng.int(bad.length - 4);
    bad[at] = (bad[at] as number) ^ 0x20;
    return { bytes: Buffer.concat([bad, settings]), frames: 1 };
  }
  return { bytes: Buffer.concat([CLIENT_PREFACE, frame(FrameType.PING, 0, 0, rng.bytes(8))]), frames: 1 };
}

/** One session from the generator's current state. */
export function generateSession(rng: Rng, options: GenOptions): Session {
  const kindRoll = rng.next();
  const kind: SessionKind = kindRoll < 0.35 ? 'clean' : kindRoll < 0.75 ? 'light' : 'heavy';
  const endRoll = rng.next();
  const ending = endRoll < 0.5 ? 'close' : endRoll < 0.75 ? 'goaway' : 'server-shutdown';
  return new Session(rng, options, kind, ending);
}

/** GOAWAY(NO_ERROR) from the client, for sessions that end that way. */
export function clientGoaway(lastStreamId = 0): Buffer {
  return frame(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(lastStreamId), u32(0)]));
}
