/**
 * The active health probes of upstream `checks` (issue #13): one probe of one node, classified into APISIX's
 * counters (lua-resty-healthcheck: success, http failure, tcp failure, timeout). The checker (checker.ts) decides
 * what the counts mean; this file only talks to the node.
 *
 * - `tcp`: a connect, closed at once. Refused, unreachable, reset → tcp failure.
 * - `http`/`https`: one `GET http_path` over a fresh HTTP/1.1 connection with `Connection: close` (as
 *   lua-resty-healthcheck does); the status line decides (healthy list → success, unhealthy list → http failure,
 *   neither → counted nowhere). The body is read and dropped, 64 KiB at most.
 * - `grpc`: the standard `grpc.health.v1.Health/Check` (grpc/doc/health-checking.md) on the gateway's own HTTP/2
 *   engine (client-connection.ts), h2c for `grpc` upstreams and TLS with ALPN h2 for `grpcs`. SERVING is a success;
 *   any other status, any non-OK grpc-status (UNIMPLEMENTED from a server without the health service, NOT_FOUND for
 *   an unknown service), a non-gRPC answer, a reset stream or a lost connection is an http failure; a connection
 *   that cannot be made (refused, TLS handshake, no ALPN h2) a tcp failure.
 *
 * Cost. 1,000 nodes probed every second must stay under 5 % of a core, so gRPC probes keep ONE connection per target
 * (scheme, address, TLS identity) and open a stream per probe: no handshake per probe, and the HPACK tables make the
 * request headers a few octets after the first. Nothing keeps a connection alive but the probes themselves: no PING
 * (grpc-go answers PINGs on a connection without streams with GOAWAY too_many_pings); a server that closes it or
 * says GOAWAY gets a new one at the next probe.
 *
 * Timeouts. `timeoutMs` bounds the whole probe, connect included. A probe that times out on a ready connection
 * resets its stream (CANCEL), and the next probe of that target dials again: a connection whose probes time out may
 * be dead (a frozen or vanished host never says so), and a fresh dial tells a restarted server from a frozen one. A
 * dial without the server's SETTINGS within the timeout is destroyed.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../../../shared/logger.ts';
import { ClientConnection, type ClientHooks } from '../../http2/client-connection.ts';
import { ErrorCode, ResetReason, StreamState, type ConnectionOptions, type Http2Stream, type ResetReasonValue, type StreamHandler } from '../../http2/connection.ts';
import { DEFAULT_MAX_FRAME_SIZE } from '../../http2/frame.ts';
import { clampDelay } from '../../timers.ts';
import { UPSTREAM_MIN_VERSION } from '../../tls/tls-policy.ts';
import { dialUpstream, type DialTls } from '../dial.ts';
import { fieldValue } from '../../http2/fields.ts';
import { rstName } from '../../proxy/rst-codes.ts';
import type { ActiveProbe, ProbeOutcome, ProbeResult, ProbeTarget } from './types.ts';

export interface ProberLimits {
  /** Response bytes a probe keeps or reads at most: the gRPC response (beyond: http failure), an HTTP body. */
  readonly maxResponseBytes?: number;
}

const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024;
const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
/** grpc.health.v1.HealthCheckResponse.ServingStatus. */
const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];
const SERVING = 1;
/** Encoded requests kept per `grpc_service` (a handful per config; cleared if a config somehow has more). */
const MAX_CACHED_REQUESTS = 256;

const NO_VERIFY: DialTls = { clientCert: undefined, verify: false, ca: undefined };
const CLOSED: ProbeResult = { outcome: 'tcp_failure', reason: 'prober closed' };
const RESULT_SERVING: ProbeResult = { outcome: 'success', reason: 'SERVING' };
const RESULT_CONNECTED: ProbeResult = { outcome: 'success', reason: 'connected' };

/**
 * The probe connections' HTTP/2 settings. The answer is a few dozen octets: default windows, and a header list
 * limit with room for a verbose server's trailers (grpc-status-details-bin).
 */
const PROBE_CONNECTION_OPTIONS: ConnectionOptions = {
  settings: {
    headerTableSize: 4096,
    enablePush: false,
    maxConcurrentStreams: 100,
    initialWindowSize: 65_535,
    maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
    maxHeaderListSize: 64 * 1024,
  },
  connectionWindow: 65_535,
};

/**
 * What a probe has that close() can end. Probes in flight are a doubly linked list through the probes themselves:
 * joining and leaving it costs two pointer writes, no hashing, at a thousand probes a second.
 */
abstract class Pending {
  prev: Pending | undefined = undefined;
  next: Pending | undefined = undefined;
  abstract abort(): void;
}

/** One persistent gRPC probe connection and the probes waiting for it to become ready. */
interface Entry {
  readonly key: string;
  readonly conn: ClientConnection;
  waiters: GrpcProbe[];
  /** A probe timed out on it: the next probe dials again (see the file comment). */
  stale: boolean;
  /** Still the connection of its key (false once retired, GOAWAY'd or closed). */
  current: boolean;
}

/**
 * Derived once per target object (the checker makes one per node): its connection key and authority, and what the
 * last probe used, so the next one finds them without a map lookup or a new header list.
 */
interface TargetInfo {
  readonly key: string;
  readonly authority: string;
  /** The target's current connection (valid while `entry.current`). */
  entry: Entry | undefined;
  /** The last request header list, for `fieldsAuthority` and `fieldsTimeout` (the engine only reads it). */
  fields: string[] | undefined;
  fieldsAuthority: string;
  fieldsTimeout: number;
}

export class Prober implements ClientHooks {
  private readonly log: Logger;
  /** Response bytes a probe keeps or reads at most (ProberLimits). */
  readonly maxResponseBytes: number;
  private readonly entries = new Map<string, Entry>();
  private readonly entryOf = new Map<ClientConnection, Entry>();
  private readonly targets = new WeakMap<ProbeTarget, TargetInfo>();
  private readonly requests = new Map<string, Buffer>();
  /** Probes in flight (see Pending). */
  private pendingHead: Pending | undefined;
  /** Every socket the prober opened that has not closed yet. */
  private readonly sockets = new Set<net.Socket>();
  private closed = false;

  constructor(log: Logger, limits: ProberLimits = {}) {
    this.log = log.child({ module: 'probes' });
    this.maxResponseBytes = limits.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  }

  /** Open connections: the persistent gRPC ones and those of tcp/http probes in flight (tests and leak checks). */
  get connections(): number {
    return this.sockets.size;
  }

  /** Runs one probe; never rejects, never throws: every failure is a ProbeResult. */
  probe(target: ProbeTarget, check: ActiveProbe): Promise<ProbeResult> {
    if (this.closed) return Promise.resolve(CLOSED);
    return new Promise<ProbeResult>((resolve) => {
      try {
        switch (check.type) {
          case 'grpc':
            return this.grpcProbe(target, check, resolve);
          case 'tcp':
            return this.tcpProbe(target, check, resolve);
          case 'http':
          case 'https':
            return this.httpProbe(target, check, resolve);
          default:
            return resolve({ outcome: 'none', reason: `unknown probe type ${String(check.type)}` });
        }
      } catch (err) {
        // Nothing above throws on purpose; a probe that did anyway must still end as a result.
        this.log.warn({ err: errorText(err) }, 'health probe failed unexpectedly');
        resolve({ outcome: 'tcp_failure', reason: errorText(err) });
      }
    });
  }

  /** Drops what the prober keeps for `target` (its connection): probes in flight on it still finish. */
  forget(target: ProbeTarget): void {
    const entry = this.entries.get(this.infoOf(target).key);
    if (entry === undefined) return;
    this.unlist(entry);
    entry.conn.close();
  }

  /** Closes every connection and pending probe; afterwards probe() resolves with a tcp_failure "closed". */
  async close(): Promise<void> {
    this.closed = true;
    for (let pending = this.pendingHead; pending !== undefined; pending = this.pendingHead) {
      pending.abort();
      if (this.pendingHead === pending) this.forgetPending(pending); // never spin on one that did not leave
    }
    for (const conn of [...this.entryOf.keys()]) conn.destroy();
    for (const entry of this.entries.values()) entry.current = false;
    this.entries.clear();
    const open = [...this.sockets];
    for (const socket of open) socket.destroy();
    // A socket leaves the set on its 'close' event, which a destroyed socket emits on a later tick (even when its
    // `closed` already says true): still in the set means that event is still to come.
    const sockets = this.sockets;
    await Promise.all(open.filter((socket) => sockets.has(socket)).map((socket) => new Promise((resolve) => socket.once('close', resolve))));
  }

  // ---- gRPC -----------------------------------------------------------------------------------------------------

  private grpcProbe(target: ProbeTarget, check: ActiveProbe, resolve: (result: ProbeResult) => void): void {
    const info = this.infoOf(target);
    const probe = new GrpcProbe(this, target, check, info, resolve);
    this.addPending(probe);
    probe.timer = setTimeout(grpcTimedOut, clampDelay(check.timeoutMs), probe);
    this.startGrpc(probe);
  }

  /** Puts `probe` on its target's connection (dialling one when there is none usable). */
  startGrpc(probe: GrpcProbe): void {
    const info = probe.info;
    let entry = info.entry !== undefined && info.entry.current ? info.entry : this.entries.get(info.key);
    if (entry !== undefined) {
      const conn = entry.conn;
      if (entry.stale || conn.closed || conn.goawayReceived || conn.goawaySent || (conn.ready && !conn.usable)) {
        this.retire(entry);
        entry = undefined;
      }
    }
    if (entry === undefined) {
      try {
        entry = this.dial(probe.target, info.key);
      } catch (err) {
        return probe.finish('tcp_failure', connectFailure(err));
      }
    }
    info.entry = entry;
    probe.entry = entry;
    if (entry.conn.ready) this.openStream(probe, entry.conn);
    else entry.waiters.push(probe);
  }

  private dial(target: ProbeTarget, key: string): Entry {
    // An upstream with scheme grpcs and no TLS block of its own: APISIX's default, no verification.
    const socket = dialUpstream(target.host, target.port, target.scheme === 'grpcs' ? (target.tls ?? NO_VERIFY) : undefined);
    this.track(socket);
    const conn = new ClientConnection(socket, PROBE_CONNECTION_OPTIONS, this);
    const entry: Entry = { key, conn, waiters: [], stale: false, current: true };
    this.entries.set(key, entry);
    this.entryOf.set(conn, entry);
    return entry;
  }

  /** The entry stops being its key's connection: the next probe of the key dials (or finds a newer one). */
  private unlist(entry: Entry): void {
    entry.current = false;
    if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
  }

  /** Takes a connection out of use: destroyed when idle (it may be dead), else closed once its probes are done. */
  private retire(entry: Entry): void {
    this.unlist(entry);
    if (entry.conn.active === 0 && entry.waiters.length === 0) entry.conn.destroy();
    else entry.conn.close();
  }

  private openStream(probe: GrpcProbe, conn: ClientConnection): void {
    const remaining = Math.max(1, probe.deadline - Date.now());
    const info = probe.info;
    const authority = probe.check.host ?? info.authority;
    let fields = info.fields;
    // The same list as the last probe's on a ready connection (same authority, the whole timeout left).
    if (fields === undefined || info.fieldsAuthority !== authority || info.fieldsTimeout !== remaining) {
      fields = [
        ':method', 'POST',
        ':scheme', probe.target.scheme === 'grpcs' ? 'https' : 'http',
        ':path', HEALTH_CHECK_PATH,
        ':authority', authority,
        'content-type', 'application/grpc',
        'te', 'trailers',
        'grpc-timeout', grpcTimeout(remaining),
      ]; // prettier-ignore
      info.fields = fields;
      info.fieldsAuthority = authority;
      info.fieldsTimeout = remaining;
    }
    const stream = conn.request(fields, probe, false);
    probe.stream = stream;
    stream.sendData(this.requestOf(probe.check.grpcService), true);
  }

  /** The framed HealthCheckRequest{service}, encoded once per service name. */
  private requestOf(service: string): Buffer {
    let framed = this.requests.get(service);
    if (framed === undefined) {
      if (this.requests.size >= MAX_CACHED_REQUESTS) this.requests.clear();
      framed = encodeHealthCheckRequest(service);
      this.requests.set(service, framed);
    }
    return framed;
  }

  /** A probe's timer fired. */
  grpcTimedOut(probe: GrpcProbe): void {
    const entry = probe.entry;
    if (entry !== undefined) {
      if (probe.stream === undefined) {
        // Still waiting for the server's SETTINGS: the dial goes when nobody else waits for it.
        const index = entry.waiters.indexOf(probe);
        if (index >= 0) entry.waiters.splice(index, 1);
        if (entry.waiters.length === 0 && !entry.conn.ready) {
          this.unlist(entry);
          entry.conn.destroy(new Error(`no HTTP/2 SETTINGS within ${probe.check.timeoutMs} ms`));
        }
        return probe.finish('timeout', `timed out after ${probe.check.timeoutMs} ms (connecting)`);
      }
      entry.stale = true;
    }
    probe.finish('timeout', `timed out after ${probe.check.timeoutMs} ms`);
  }

  addPending(pending: Pending): void {
    const head = this.pendingHead;
    pending.next = head;
    if (head !== undefined) head.prev = pending;
    this.pendingHead = pending;
  }

  forgetPending(pending: Pending): void {
    const { prev, next } = pending;
    if (prev !== undefined) prev.next = next;
    else if (this.pendingHead === pending) this.pendingHead = next;
    if (next !== undefined) next.prev = prev;
    pending.prev = pending.next = undefined;
  }

  // ---- ClientHooks --------------------------------------------------------------------------------------------------

  onReady(conn: ClientConnection): void {
    const entry = this.entryOf.get(conn);
    if (entry === undefined) return;
    const waiters = entry.waiters;
    entry.waiters = [];
    for (const probe of waiters) if (!probe.done) this.openStream(probe, conn);
  }

  onGoaway(conn: ClientConnection, lastStreamId: number, code: number): void {
    const entry = this.entryOf.get(conn);
    this.log.debug({ node: entry?.key, code, lastStreamID: lastStreamId }, 'health probe connection received GOAWAY');
    // The next probe dials again; streams the server kept finish here, the others are retried by their probes.
    if (entry !== undefined) this.unlist(entry);
    if (conn.active === 0) conn.close();
  }

  onStreamClosed(_conn: ClientConnection): void {}

  onClosed(conn: ClientConnection, err?: Error): void {
    const entry = this.entryOf.get(conn);
    if (entry === undefined) return;
    this.entryOf.delete(conn);
    this.unlist(entry);
    if (err !== undefined) this.log.debug({ node: entry.key, err: err.message }, 'health probe connection closed');
    const waiters = entry.waiters;
    entry.waiters = [];
    // Closed before the server's SETTINGS: the connection could not be made.
    const reason = err === undefined ? 'connection closed before HTTP/2 SETTINGS' : connectFailure(err);
    for (const probe of waiters) probe.finish('tcp_failure', reason);
  }

  // ---- tcp ----------------------------------------------------------------------------------------------------------

  private tcpProbe(target: ProbeTarget, check: ActiveProbe, resolve: (result: ProbeResult) => void): void {
    const socket = net.connect({ host: target.host, port: target.port });
    this.track(socket);
    const state = new SocketProbe(this, resolve, socket);
    state.timer = setTimeout(socketTimedOut, clampDelay(check.timeoutMs), state, check.timeoutMs);
    socket.once('connect', () => state.finish(RESULT_CONNECTED));
    socket.on('error', (err) => state.finish({ outcome: 'tcp_failure', reason: connectFailure(err) }));
  }

  // ---- http / https -------------------------------------------------------------------------------------------------

  private httpProbe(target: ProbeTarget, check: ActiveProbe, resolve: (result: ProbeResult) => void): void {
    const secure = check.type === 'https';
    const host = check.host ?? this.infoOf(target).authority;
    const headers: Record<string, string> = { Host: host, Connection: 'close' };
    for (const line of check.reqHeaders) addHeaderLine(headers, line);
    const t = target.tls;
    const verify = t?.verify ?? true;
    const name = hostOfAuthority(host);
    // Our own socket per probe (never a pooled one), so it is counted and destroyed with the probe.
    const createConnection = (): net.Socket => {
      const socket = secure
        ? tls.connect({
            host: target.host,
            port: target.port,
            servername: net.isIP(name) === 0 && name !== '' ? name : undefined,
            ALPNProtocols: ['http/1.1'],
            rejectUnauthorized: verify,
            minVersion: UPSTREAM_MIN_VERSION,
            ...(t?.ca !== undefined ? { ca: t.ca } : {}),
            ...(t?.clientCert !== undefined ? { cert: t.clientCert.cert, key: t.clientCert.key } : {}),
          })
        : net.connect({ host: target.host, port: target.port });
      this.track(socket);
      state.socket = socket;
      return socket;
    };
    const state = new SocketProbe(this, resolve, undefined);
    state.timer = setTimeout(socketTimedOut, clampDelay(check.timeoutMs), state, check.timeoutMs);
    let req: http.ClientRequest;
    try {
      req = (secure ? https : http).request({
        host: target.host,
        port: target.port,
        method: 'GET',
        path: check.httpPath,
        headers,
        createConnection,
      });
    } catch (err) {
      // A path Node refuses to send (ERR_UNESCAPED_CHARACTERS): the probe cannot reach the node as configured.
      return state.finish({ outcome: 'tcp_failure', reason: `request not sent: ${errorText(err)}` });
    }
    state.req = req;
    const limit = this.maxResponseBytes;
    req.on('error', (err) => state.finish({ outcome: 'tcp_failure', reason: errorText(err) }));
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      const result = httpResult(status, check);
      let bytes = 0;
      // The status line decides; the body is drained so the answer is whole, and only so far.
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > limit) state.finish(result);
      });
      res.once('end', () => state.finish(result));
      res.on('error', () => state.finish(result));
      res.once('aborted', () => state.finish(result));
    });
    req.end();
  }

  // ---- shared -------------------------------------------------------------------------------------------------------

  private track(socket: net.Socket): void {
    const sockets = this.sockets;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // Errors are read where they matter (the connection, the request); one after the probe ended must not throw.
    socket.on('error', ignore);
  }

  private infoOf(target: ProbeTarget): TargetInfo {
    let info = this.targets.get(target);
    if (info === undefined) {
      info = {
        key: connectionKey(target),
        authority: authorityOf(target.host, target.port),
        entry: undefined,
        fields: undefined,
        fieldsAuthority: '',
        fieldsTimeout: 0,
      };
      this.targets.set(target, info);
    }
    return info;
  }
}

/** One gRPC probe: the handler of its stream. */
class GrpcProbe extends Pending implements StreamHandler {
  readonly prober: Prober;
  readonly target: ProbeTarget;
  readonly check: ActiveProbe;
  readonly info: TargetInfo;
  readonly deadline: number;
  private readonly resolve: (result: ProbeResult) => void;
  timer: NodeJS.Timeout | undefined;
  entry: Entry | undefined;
  stream: Http2Stream | undefined;
  done = false;
  private headersSeen = false;
  /** DATA bytes received, and the part of the first message not parsed yet (copied: reads reuse their buffer). */
  private received = 0;
  private body: Buffer | undefined;
  /** The first message's ServingStatus once read, or one of the NO_/BAD_ codes. */
  private status = NO_MESSAGE;
  /** Retried once on a new connection after the server refused the stream unprocessed (GOAWAY, REFUSED_STREAM). */
  private retried = false;

  constructor(prober: Prober, target: ProbeTarget, check: ActiveProbe, info: TargetInfo, resolve: (result: ProbeResult) => void) {
    super();
    this.prober = prober;
    this.target = target;
    this.check = check;
    this.info = info;
    this.resolve = resolve;
    this.deadline = Date.now() + check.timeoutMs;
  }

  finish(outcome: ProbeOutcome, reason: string): void {
    this.end(outcome === 'success' && reason === 'SERVING' ? RESULT_SERVING : { outcome, reason });
  }

  private end(result: ProbeResult): void {
    if (this.done) return;
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.body = undefined;
    this.prober.forgetPending(this);
    // A stream still open (the probe gave up on it, or on its answer) is cancelled; one the server ended is closed
    // already (the engine forgets it after this handler returns): an RST_STREAM would only cost a write.
    const stream = this.stream;
    if (stream !== undefined && !stream.removed && stream.state !== StreamState.CLOSED) stream.reset(ErrorCode.CANCEL);
    this.resolve(result);
  }

  abort(): void {
    this.end(CLOSED);
  }

  onHeaders(_stream: Http2Stream, fields: string[], endStream: boolean): void {
    if (this.done) return;
    if (!this.headersSeen) {
      this.headersSeen = true;
      const status = fieldValue(fields, ':status');
      if (status !== '200') return this.finish('http_failure', `HTTP ${status ?? '?'}`);
      const type = fieldValue(fields, 'content-type');
      if (type === undefined || !isGrpcContentType(type)) return this.finish('http_failure', `content-type ${type ?? 'missing'}`);
      if (!endStream) return;
      // A trailers-only answer: its one header block carries grpc-status.
    }
    this.trailers(fields);
  }

  private trailers(fields: string[]): void {
    const grpcStatus = fieldValue(fields, 'grpc-status');
    if (grpcStatus === undefined) return this.finish('http_failure', 'no grpc-status');
    if (grpcStatus !== '0') {
      const message = fieldValue(fields, 'grpc-message');
      const text = message === undefined || message === '' ? '' : `: ${decodeGrpcMessage(message).slice(0, 200)}`;
      return this.finish('http_failure', `grpc-status ${grpcStatus}${text}`);
    }
    const status = this.status;
    if (status === SERVING) return this.end(RESULT_SERVING);
    if (status >= 0) return this.finish('http_failure', SERVING_STATUS[status] ?? `status ${status}`);
    if (status === NO_MESSAGE) return this.finish('http_failure', this.received === 0 ? 'no response message' : 'truncated response message');
    if (status === COMPRESSED) return this.finish('http_failure', 'compressed response message');
    this.finish('http_failure', 'malformed HealthCheckResponse');
  }

  onData(stream: Http2Stream, data: Buffer, endStream: boolean): void {
    stream.consume(data.length);
    if (this.done) return;
    this.received += data.length;
    const limit = this.prober.maxResponseBytes;
    if (this.received > limit) return this.finish('http_failure', `response above ${limit} bytes`);
    if (this.status === NO_MESSAGE) {
      const body = this.body;
      if (body === undefined && readMessage(this, data)) {
        // The whole message in this one delivery (the usual case): read in place, nothing copied.
      } else {
        // Split across deliveries: kept (the bytes are the read buffer's, valid during this call only) until whole.
        const joined = body === undefined ? Buffer.from(data) : Buffer.concat([body, data]);
        this.body = readMessage(this, joined) ? undefined : joined;
      }
    }
    if (endStream) this.finish('http_failure', 'stream ended without trailers');
  }

  /** The first message's status (readMessage). */
  setStatus(status: number): void {
    this.status = status;
  }

  onReset(_stream: Http2Stream, code: number, reason: ResetReasonValue): void {
    if (this.done) return;
    const unprocessed = reason === ResetReason.UNPROCESSED || (reason === ResetReason.PEER && code === ErrorCode.REFUSED_STREAM);
    if (unprocessed && !this.retried && this.deadline - Date.now() > 1) {
      // The server never saw it (a GOAWAY on a connection it ages out, for one): once more, on a new connection.
      this.retried = true;
      this.stream = undefined;
      this.headersSeen = false;
      this.body = undefined;
      this.received = 0;
      this.status = NO_MESSAGE;
      return this.prober.startGrpc(this);
    }
    switch (reason) {
      case ResetReason.PEER:
        return this.finish('http_failure', `stream reset ${rstName(code)}`);
      case ResetReason.UNPROCESSED:
        return this.finish('http_failure', 'stream refused by GOAWAY');
      case ResetReason.LOST:
        return this.finish('http_failure', 'connection lost');
      default:
        return this.finish('http_failure', `malformed response (${rstName(code)})`);
    }
  }

  onSent(_stream: Http2Stream, _bytes: number): void {}
}

/** GrpcProbe.status before the first message is whole, and for one that cannot be read. */
const NO_MESSAGE = -1;
const COMPRESSED = -2;
const MALFORMED = -3;

/** Reads the first gRPC message of `bytes` into the probe when it is all there; false when more must come. */
function readMessage(probe: GrpcProbe, bytes: Buffer): boolean {
  if (bytes.length < 5) return false;
  const length = bytes.readUInt32BE(1);
  if (bytes.length < 5 + length) return false;
  // We send no grpc-accept-encoding, so a compressed answer is the server's error.
  if (bytes[0] !== 0) probe.setStatus(COMPRESSED);
  else {
    const status = servingStatus(bytes, 5, 5 + length);
    probe.setStatus(status < 0 ? MALFORMED : status);
  }
  return true;
}

function grpcTimedOut(probe: GrpcProbe): void {
  probe.timer = undefined;
  if (!probe.done) probe.prober.grpcTimedOut(probe);
}

/** A tcp or http(s) probe: its socket (or request), its timer, its one result. */
class SocketProbe extends Pending {
  timer: NodeJS.Timeout | undefined;
  req: http.ClientRequest | undefined;
  private done = false;

  private readonly prober: Prober;
  private readonly resolve: (result: ProbeResult) => void;
  socket: net.Socket | undefined;

  constructor(prober: Prober, resolve: (result: ProbeResult) => void, socket: net.Socket | undefined) {
    super();
    this.prober = prober;
    this.resolve = resolve;
    this.socket = socket;
    prober.addPending(this);
  }

  finish(result: ProbeResult): void {
    if (this.done) return;
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.prober.forgetPending(this);
    // Nothing more is wanted from the node: the connection goes now (HTTP: Connection: close anyway).
    this.req?.destroy();
    this.socket?.destroy();
    this.resolve(result);
  }

  abort(): void {
    this.finish(CLOSED);
  }
}

function socketTimedOut(probe: SocketProbe, timeoutMs: number): void {
  probe.timer = undefined;
  probe.finish({ outcome: 'timeout', reason: `timed out after ${timeoutMs} ms` });
}

// ---- helpers ----------------------------------------------------------------------------------------------------

function httpResult(status: number, check: ActiveProbe): ProbeResult {
  if (check.healthyStatuses.includes(status)) return { outcome: 'success', reason: `HTTP ${status}` };
  if (check.unhealthyStatuses.includes(status)) return { outcome: 'http_failure', reason: `HTTP ${status}` };
  return { outcome: 'none', reason: `HTTP ${status}` };
}

/**
 * The connection a target's probes share: one per scheme, address and TLS identity (verification, CA, client
 * certificate), so two upstreams that reach a node the same way share it, and differently configured ones do not.
 */
function connectionKey(target: ProbeTarget): string {
  const base = `${target.scheme}|${target.host}|${target.port}`;
  const t = target.tls;
  if (target.scheme !== 'grpcs' || t === undefined) return base;
  const ca = t.ca === undefined ? '' : createHash('sha256').update(t.ca).digest('base64url').slice(0, 22);
  return `${base}|${t.verify ? 'verify' : 'noverify'}|${ca}|${t.clientCert?.id ?? ''}`;
}

/** `host:port`, with brackets around an IPv6 literal. */
function authorityOf(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The host of an authority or Host header (`name`, `name:port`, `[v6]:port`), without brackets. */
function hostOfAuthority(authority: string): string {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    return end < 0 ? authority : authority.slice(1, end);
  }
  if (net.isIPv6(authority)) return authority;
  const colon = authority.lastIndexOf(':');
  return colon < 0 ? authority : authority.slice(0, colon);
}

/** One of APISIX's `req_headers` ("Name: value"); a line Node would refuse to send is left out. */
function addHeaderLine(headers: Record<string, string>, line: string): void {
  const colon = line.indexOf(':');
  if (colon <= 0) return;
  const name = line.slice(0, colon).trim();
  const value = line.slice(colon + 1).trim();
  try {
    http.validateHeaderName(name);
    http.validateHeaderValue(name, value);
  } catch {
    return;
  }
  // A configured Host replaces ours (header names are case-insensitive).
  for (const existing of Object.keys(headers)) if (existing.toLowerCase() === name.toLowerCase()) delete headers[existing];
  headers[name] = value;
}

/** grpc-timeout (at most 8 digits): milliseconds, or whole seconds for very long timeouts. */
function grpcTimeout(ms: number): string {
  const whole = Math.ceil(ms);
  if (whole <= 99_999_999) return `${whole}m`;
  return `${Math.min(99_999_999, Math.ceil(whole / 1000))}S`;
}

/** HealthCheckRequest{service} (field 1, wire type 2) in a 5-octet gRPC frame; no service: an empty message. */
export function encodeHealthCheckRequest(service: string): Buffer {
  const text = Buffer.from(service, 'utf8');
  const length = text.length;
  const lengthOctets: number[] = [];
  let rest = length;
  do {
    const low = rest & 0x7f;
    rest = Math.floor(rest / 128);
    lengthOctets.push(rest > 0 ? low | 0x80 : low);
  } while (rest > 0);
  const messageLength = length === 0 ? 0 : 1 + lengthOctets.length + length;
  const out = Buffer.alloc(5 + messageLength);
  out[0] = 0; // not compressed
  out.writeUInt32BE(messageLength, 1);
  if (length > 0) {
    out[5] = 0x0a;
    for (let i = 0; i < lengthOctets.length; i++) out[6 + i] = lengthOctets[i] as number;
    text.copy(out, 6 + lengthOctets.length);
  }
  return out;
}

/**
 * The `status` (field 1, varint) of a HealthCheckResponse; 0 (UNKNOWN) when absent, as protobuf's default; −1 when
 * the message is malformed. Unknown fields are skipped, as protobuf parsers do.
 */
export function servingStatus(message: Buffer, start = 0, end = message.length): number {
  let pos = start;
  let status = 0;
  while (pos < end) {
    const tag = readVarint(message, pos, end);
    if (tag < 0) return -1;
    pos = varintEnd;
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 0) return -1;
    switch (wire) {
      case 0: {
        const value = readVarint(message, pos, end);
        if (value < 0) return -1;
        pos = varintEnd;
        if (field === 1) status = value; // a negative enum comes as ten octets: a large number, no status we know
        break;
      }
      case 1:
        pos += 8;
        break;
      case 2: {
        const length = readVarint(message, pos, end);
        if (length < 0) return -1;
        pos = varintEnd + length;
        break;
      }
      case 5:
        pos += 4;
        break;
      default:
        return -1; // groups (3, 4) and invalid wire types
    }
    if (pos > end) return -1;
  }
  return status;
}

/** Where the last varint read ended. */
let varintEnd = 0;

/** The varint at `pos` (10 octets at most; above 2^53 it loses precision, which no field here minds), or −1. */
function readVarint(buffer: Buffer, pos: number, end: number): number {
  let value = 0;
  let scale = 1;
  let at = pos;
  for (let i = 0; i < 10 && at < end; i++) {
    const octet = buffer[at++] as number;
    value += (octet & 0x7f) * scale;
    if ((octet & 0x80) === 0) {
      varintEnd = at;
      return value;
    }
    scale *= 128;
  }
  return -1;
}

/** application/grpc, application/grpc+proto, application/grpc;charset=… (the gRPC over HTTP/2 spec). */
function isGrpcContentType(type: string): boolean {
  if (!type.startsWith('application/grpc')) return false;
  const next = type.charCodeAt(16);
  return type.length === 16 || next === 43 /* + */ || next === 59 /* ; */;
}

/** grpc-message is percent-encoded (PROTOCOL-HTTP2.md). */
function decodeGrpcMessage(message: string): string {
  try {
    return decodeURIComponent(message);
  } catch {
    return message;
  }
}

function ignore(): void {}

/** "connect ECONNREFUSED 127.0.0.1:50051" as Node says it; "connect: self-signed certificate" for the others. */
function connectFailure(err: unknown): string {
  const text = errorText(err);
  return text.startsWith('connect') ? text : `connect: ${text}`;
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== undefined && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
