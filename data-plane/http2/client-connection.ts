/**
 * The upstream leg of the engine: one connection to an upstream node (h2c with prior knowledge, or TLS with ALPN
 * `h2`), pooled by data-plane/upstream/client-pool.ts and shared by many calls.
 *
 * - Opening streams: ids 1, 3, 5, … in the order their HEADERS are written (RFC 9113 §5.1.1). A stream beyond the
 *   server's SETTINGS_MAX_CONCURRENT_STREAMS waits in this connection (its request DATA queued with it) and opens
 *   when another stream closes, as nghttp2 does.
 * - GOAWAY from the server: streams above its last-stream-id (and those still waiting) end as UNPROCESSED, which
 *   the proxy may retry anywhere (§6.8); the others finish. The pool stops choosing the connection.
 * - Responses (§8.3.2): :status is the only pseudo-header; 1xx informational blocks are skipped; a malformed
 *   response is a stream error, reported to the attempt as PROTOCOL.
 * - PING for keepalive, and its answer's time (the pool destroys a connection whose PING goes unanswered).
 */
import type { Socket } from 'node:net';
import { type ConnectionOptions, ErrorCode, FrameFlag, Http2Connection, Http2Stream, ResetReason, type StreamHandler } from './connection.ts';
import { CLIENT_PREFACE, FrameType } from './frame.ts';
import { afterReceive, afterSend } from './stream-state.ts';

export interface ClientHooks {
  /** The server's first SETTINGS arrived: the connection can take streams. */
  onReady(conn: ClientConnection): void;
  onGoaway(conn: ClientConnection, lastStreamId: number, code: number): void;
  /** A stream left the connection (the pool's count of active streams). */
  onStreamClosed(conn: ClientConnection): void;
  onClosed(conn: ClientConnection, err?: Error): void;
}

/** The last client stream id (2^31 − 1 is odd). */
const MAX_STREAM_ID = 0x7fffffff;

export class ClientConnection extends Http2Connection {
  private readonly hooks: ClientHooks;
  private nextId = 1;
  /** Streams waiting for room under the server's stream limit, with their request headers. */
  private waiting: Http2Stream[] = [];
  private waitingFields = new Map<Http2Stream, string[]>();
  ready = false;
  /** When the unanswered keepalive PING was sent; 0 when none is out. */
  pingSentAt = 0;
  /** Streams opened over the connection's life. */
  served = 0;

  constructor(socket: Socket, options: ConnectionOptions, hooks: ClientHooks) {
    super(socket, options);
    this.hooks = hooks;
    // §3.4: the client's preface is the magic, then SETTINGS.
    this.writeRaw(CLIENT_PREFACE);
    this.sendPreface();
  }

  /** Streams open or waiting. */
  get active(): number {
    return this.streams.size + this.waiting.length;
  }

  /** Can take a new stream now without waiting (ready, not going away, under the server's limit). */
  get hasRoom(): boolean {
    return this.usable && this.streams.size + this.waiting.length < this.peer.maxConcurrentStreams;
  }

  get usable(): boolean {
    return this.ready && !this.closed && !this.goawayReceived && !this.goawaySent && this.nextId <= MAX_STREAM_ID;
  }

  /** Opens a stream with request `fields` (or queues it under the server's limit); `handler` hears the rest. */
  request(fields: string[], handler: StreamHandler, endStream: boolean): Http2Stream {
    const stream = new Http2Stream(this, 0, 0, this.ours.initialWindowSize);
    stream.handler = handler;
    stream.openedAt = Date.now();
    if (this.streams.size < this.peer.maxConcurrentStreams && this.waiting.length === 0) {
      this.open(stream, fields, endStream);
    } else {
      this.waiting.push(stream);
      this.waitingFields.set(stream, fields);
      if (endStream) stream.queueEnd = true;
    }
    return stream;
  }

  private open(stream: Http2Stream, fields: string[], endStream: boolean): void {
    const id = this.nextId;
    this.nextId += 2;
    this.served++;
    stream.id = id;
    stream.sendWindow = this.peer.initialWindowSize;
    this.trackStream(id, stream);
    const queued = stream.queueEnd || stream.queueBytes > 0;
    const endNow = endStream && !queued;
    this.writeHeaderBlock(id, fields, endNow);
    stream.state = afterSend(stream.state as 0, FrameType.HEADERS, endNow ? FrameFlag.END_STREAM : 0);
    if (endNow) stream.ended = true;
    if (queued) this.pump(stream);
  }

  private openWaiting(): void {
    while (this.waiting.length > 0 && this.streams.size < this.peer.maxConcurrentStreams && !this.closed && !this.goawayReceived) {
      const stream = this.waiting.shift() as Http2Stream;
      const fields = this.waitingFields.get(stream) as string[];
      this.waitingFields.delete(stream);
      if (stream.removed) continue;
      this.open(stream, fields, false);
    }
  }

  ping(): void {
    if (this.closed || this.pingSentAt !== 0) return;
    this.pingSentAt = Date.now();
    this.writePing(PING_PAYLOAD, false);
  }

  protected override onPingAck(): void {
    this.pingSentAt = 0;
  }

  protected override isClientLeg(): boolean {
    return true;
  }

  protected isIdle(id: number): boolean {
    return (id & 1) === 0 || id >= this.nextId;
  }

  protected lastPeerStreamId(): number {
    return 0; // servers open no streams here (push is off)
  }

  protected override onPeerSettings(): void {
    this.ready = true;
    this.hooks.onReady(this);
  }

  protected override onHeaderBlock(id: number, flags: number, fields: string[]): void {
    const stream = this.streams.get(id);
    if (stream === undefined) {
      if (this.isIdle(id)) return this.connectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on idle stream ${id}`);
      return this.closedStreamFrame(id);
    }
    if (stream.headerBlocks > 0) return this.trailersReceived(stream, flags, fields);
    const next = afterReceive(stream.state as 0, FrameType.HEADERS, flags);
    if (next < 0) return this.streamError(id, -next);
    const status = responseStatus(fields, this.decoder.malformed);
    const end = (flags & FrameFlag.END_STREAM) !== 0;
    if (status < 0) return this.streamError(id, ErrorCode.PROTOCOL_ERROR);
    if (status < 200) {
      if (end) return this.streamError(id, ErrorCode.PROTOCOL_ERROR);
      return; // §8.1: informational responses come before the final one; nothing to relay for gRPC
    }
    stream.state = next;
    stream.headerBlocks = 1;
    stream.contentLength = contentLengthOf(fields);
    stream.handler?.onHeaders(stream, fields, end);
    if (end) this.maybeClose(stream);
  }

  protected onGoaway(lastStreamId: number, code: number): void {
    const unprocessed: Http2Stream[] = [];
    for (const stream of this.streams.values()) if (stream.id > lastStreamId) unprocessed.push(stream);
    for (const stream of this.waiting) if (!stream.removed) unprocessed.push(stream);
    this.waiting = [];
    this.waitingFields.clear();
    for (const stream of unprocessed) {
      if (stream.id !== 0) this.removeStream(stream, true);
      stream.removed = true;
      stream.handler?.onReset(stream, ErrorCode.REFUSED_STREAM, ResetReason.UNPROCESSED);
    }
    this.hooks.onGoaway(this, lastStreamId, code);
    if (this.streams.size === 0 && code === ErrorCode.NO_ERROR) this.close();
  }

  protected override onStreamRemoved(stream: Http2Stream): void {
    if (stream.id === 0) {
      const index = this.waiting.indexOf(stream);
      if (index >= 0) this.waiting.splice(index, 1);
      this.waitingFields.delete(stream);
    }
    this.hooks.onStreamClosed(this);
    this.openWaiting();
    if ((this.goawayReceived || this.goawaySent) && this.streams.size === 0 && this.waiting.length === 0) queueMicrotask(() => this.close());
  }

  /** Graceful close: GOAWAY(NO_ERROR) at once if idle, else once the streams in flight are done. */
  close(): void {
    if (this.closed) return;
    if (!this.goawaySent) {
      this.goawaySent = true;
      this.writeGoaway(0, ErrorCode.NO_ERROR, '');
    }
    if (this.streams.size === 0 && this.waiting.length === 0) {
      this.flush();
      this.socket.end();
      this.teardown(ErrorCode.NO_ERROR);
      setTimeout(destroySocket, 1000, this.socket).unref();
    }
  }

  protected override onClosed(err?: Error): void {
    const waiting = this.waiting;
    this.waiting = [];
    this.waitingFields.clear();
    for (const stream of waiting) {
      if (stream.removed) continue;
      stream.removed = true;
      stream.handler?.onReset(stream, ErrorCode.REFUSED_STREAM, ResetReason.UNPROCESSED);
    }
    this.hooks.onClosed(this, err);
  }
}

const PING_PAYLOAD = Buffer.from('gw-keep!', 'latin1');

function destroySocket(socket: Socket): void {
  if (!socket.destroyed) socket.destroy();
}

/** :status of a response header list (§8.3.2), or −1 when the list is malformed. */
function responseStatus(fields: string[], malformed: boolean): number {
  if (malformed) return -1; // a field's characters, checked by the HPACK decoder
  let status = -1;
  let regular = false;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    const value = fields[i + 1] as string;
    if (name.charCodeAt(0) === 58 /* ':' */) {
      if (regular || name !== ':status' || status !== -1 || !/^\d{3}$/.test(value)) return -1;
      status = Number(value);
      continue;
    }
    regular = true;
  }
  return status;
}

function contentLengthOf(fields: string[]): number {
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] === 'content-length') {
      const n = Number(fields[i + 1]);
      return Number.isSafeInteger(n) && n >= 0 ? n : -1;
    }
  }
  return -1;
}
