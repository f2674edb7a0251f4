/**
 * A transcoded call as the proxy sees it (issue #17, `grpc-transcode`): a Downstream that wraps the client's HTTP
 * exchange (HTTP/1.1 or HTTP/2) and speaks gRPC towards the Call.
 *
 * - Request: the HTTP body is read whole (bounded: the route's grpc-limits cap, else MAX_BODY_BYTES; beyond it,
 *   413), then it and the query parameters become the method's input message (json-mapping.ts), handed to the Call
 *   as one framed message that ends the request. A body that does not fit the message is a 400 naming the field.
 * - Unary answer: the reply message becomes the JSON body, sent with the upstream's metadata and trailers as
 *   headers once the trailers came; a gRPC error becomes the HTTP status grpc/grpc doc/statuscodes.md maps it to,
 *   with `grpc-status`/`grpc-message` headers and, under `show_status_in_body`, a JSON body
 *   `{"code", "message", "details"}` (details decoded from `grpc-status-details-bin`, as `status_detail_type` when
 *   set).
 * - Server streaming (beyond APISIX): `200 application/x-ndjson` at the upstream's response headers, one JSON line
 *   per message as it arrives (flow control end to end: the upstream is credited as the lines leave), and an error
 *   after messages as a last line `{"error": {"code", "message"}}`; the trailers follow on HTTP/2.
 */
import { JsonMappingError, MessageTooLarge, describe, type GatewayError } from '../../shared/errors.ts';
import { GrpcStatus, httpStatusFromGrpc } from '../../shared/grpc-status.ts';
import { ErrorCode, type ResetReasonValue } from '../http2/connection.ts';
import { fieldValue } from '../http2/fields.ts';
import { ByteMap, WrappedDownstream } from '../proxy/wrapped-downstream.ts';
import type { Downstream } from '../proxy/downstream.ts';
import { statusBody } from './status-details.ts';
import { jsonToMessage, messageToJson, queryToJson } from './json-mapping.ts';
import type { TranscodeTarget } from './transcode-target.ts';
import type { WebCors } from '../web/cors.ts';

/** The largest request body or response message without a grpc-limits cap: gRPC's default message limit, 4 MiB. */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
/**
 * Request bodies one client connection may have the gateway keep at once (they are read whole before the call):
 * the per-connection buffer budget's default (32 MiB), so that 128 HTTP/2 streams that never end their bodies
 * cannot make one connection hold 128 × 4 MiB. Beyond it, 413.
 */
export const MAX_CONNECTION_BODY_BYTES = 32 * 1024 * 1024;
/** Bytes of request bodies kept per client connection (its socket), across its transcoded streams. */
const BODY_BYTES_BY_CONNECTION = new WeakMap<object, number>();
const FRAME_HEADER_BYTES = 5;
/** Objects merged field by field down to this depth (query, body and path rarely nest deeper); below, replaced. */
const MERGE_DEPTH = 32;
/** An upstream answer that cannot be transcoded is the upstream's fault, as nginx's 502 says. */
const BAD_GATEWAY = 502;

export class TranscodeStream extends WrappedDownstream {
  /** The HTTP status answered (the gRPC status's mapping), for metrics and the access log. */
  answeredStatus: number | undefined;
  private readonly target: TranscodeTarget;
  private readonly query: string;
  private readonly contentType: string;
  private readonly maxBody: number;
  private readonly maxResponse: number;
  private body: Buffer[] | undefined = [];
  private bodyBytes = 0;
  private requestDone = false;
  /** Set by the gateway's own refusal of the request (its HTTP status wins over the gRPC mapping). */
  private refusal: GatewayError | undefined;
  /** The upstream's answer could not be transcoded (too large, not the method's message): a 502. */
  private answerFailed = false;
  // The answer.
  private metadata: string[] | undefined;
  private streaming = false;
  private finished = false;
  private reply: unknown;
  private replies = 0;
  /** The message being read: its frame header, then its bytes. */
  private readonly frameHeader = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerBytes = 0;
  private message: Buffer | undefined;
  private messageBytes = 0;
  /** Streaming: the JSON lines written to the message bytes they stand for, and credit held while lines wait. */
  private readonly written = new ByteMap();
  private deferred = 0;

  /** The fields the request's path fills (path_template). */
  private readonly pathFields: [string, string][];
  /** The route's cors plugin, and the request's Origin: the CORS fields every answer gets. */
  private readonly cors: WebCors | undefined;
  private readonly origin: string | undefined;

  constructor(inner: Downstream, target: TranscodeTarget, request: { query: string; contentType: string; origin: string | undefined; cors: WebCors | undefined; pathFields: [string, string][] }, maxRequest: number | undefined, maxResponse: number | undefined) {
    super(inner);
    this.cors = request.cors;
    this.pathFields = request.pathFields;
    this.origin = request.origin;
    this.target = target;
    this.query = request.query;
    this.contentType = request.contentType;
    this.maxBody = maxRequest ?? MAX_BODY_BYTES;
    this.maxResponse = maxResponse ?? MAX_BODY_BYTES;
  }

  // ---- the HTTP request ------------------------------------------------------------------------------------------

  onHeaders(inner: Downstream, _fields: string[], endStream: boolean): void {
    if (endStream) this.onData(inner, Buffer.alloc(0), true);
  }

  onData(_inner: Downstream, data: Buffer, endStream: boolean, owned?: boolean): void {
    if (data.length > 0) this.inner.consume(data.length); // taken: the body is read whole
    const body = this.body;
    if (body === undefined) return;
    if (data.length > 0) {
      this.bodyBytes += data.length;
      const socket = this.inner.conn.socket;
      const connectionBytes = (BODY_BYTES_BY_CONNECTION.get(socket) ?? 0) + data.length;
      BODY_BYTES_BY_CONNECTION.set(socket, connectionBytes);
      if (this.bodyBytes > this.maxBody || connectionBytes > MAX_CONNECTION_BODY_BYTES) {
        this.releaseBody();
        return this.refuse(new MessageTooLarge('request', this.bodyBytes, Math.min(this.maxBody, MAX_CONNECTION_BODY_BYTES)));
      }
      body.push(owned === true ? data : Buffer.from(data));
    }
    if (endStream) this.requestEnded();
  }

  /** The request ended with its HEADERS (an HTTP/2 GET): the message is made once a handler is there. */
  requestEnded(): void {
    const body = this.body;
    if (body === undefined || this.requestDone) return;
    this.requestDone = true;
    this.releaseBody();
    let framed: Buffer;
    try {
      const message = jsonToMessage(this.target.requestType, this.requestJson(Buffer.concat(body)), this.target.options);
      framed = Buffer.allocUnsafe(FRAME_HEADER_BYTES + message.length);
      framed[0] = 0;
      framed.writeUInt32BE(message.length, 1);
      framed.set(message, FRAME_HEADER_BYTES);
    } catch (err) {
      return this.refuse(err instanceof JsonMappingError ? err : new JsonMappingError(describe(err)));
    }
    this.handler?.onData(this, framed, true, true);
  }

  /** The query parameters, the JSON (or form) body's fields over them, and the path's (path_template) over both. */
  private requestJson(body: Buffer): unknown {
    const type = this.target.requestType;
    const json = this.query === '' ? {} : queryToJson(type, new URLSearchParams(this.query));
    if (body.length > 0) {
      if (this.contentType.startsWith('application/x-www-form-urlencoded')) mergeInto(json, queryToJson(type, new URLSearchParams(body.toString('utf8'))));
      else {
        let parsed: unknown;
        try {
          parsed = JSON.parse(body.toString('utf8'));
        } catch (err) {
          throw new JsonMappingError(`the request body is not JSON: ${describe(err)}`);
        }
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new JsonMappingError('the request body must be a JSON object');
        mergeInto(json, parsed as Record<string, unknown>);
      }
    }
    if (this.pathFields.length > 0) mergeInto(json, queryToJson(type, this.pathFields, 'path parameter'));
    return json;
  }

  private refuse(err: GatewayError): void {
    this.refusal = err;
    const handler = this.handler;
    if (handler?.onMalformed !== undefined) handler.onMalformed(this, err);
    else this.inner.reset(ErrorCode.CANCEL);
  }

  /** The body is no longer kept: its bytes leave the connection's count. */
  private releaseBody(): void {
    this.body = undefined;
    if (this.bodyBytes === 0) return;
    const socket = this.inner.conn.socket;
    const left = (BODY_BYTES_BY_CONNECTION.get(socket) ?? 0) - this.bodyBytes;
    if (left > 0) BODY_BYTES_BY_CONNECTION.set(socket, left);
    else BODY_BYTES_BY_CONNECTION.delete(socket);
  }

  override onReset(inner: Downstream, code: number, reason: ResetReasonValue): void {
    this.releaseBody();
    super.onReset(inner, code, reason);
  }

  onSent(_inner: Downstream, bytes: number): void {
    if (!this.streaming) return;
    let raw = this.written.take(bytes);
    if (this.written.empty && this.deferred > 0) {
      raw += this.deferred;
      this.deferred = 0;
    }
    if (raw > 0) this.handler?.onSent(this, raw);
  }

  consume(_bytes: number): void {
    // The body was credited as it was read.
  }

  // ---- the gRPC answer -------------------------------------------------------------------------------------------

  sendHeaders(fields: string[], endStream: boolean): void {
    if (this.finished) return;
    if (this.metadata === undefined) {
      // Trailers-only: the fields are the trailers (end() adds them), no metadata before them.
      this.metadata = endStream ? [] : metadataOf(fields);
      if (endStream) return this.end(fields);
      if (this.target.serverStreaming) {
        this.streaming = true;
        this.inner.sendHeaders(this.withCors([':status', '200', 'content-type', 'application/x-ndjson', ...this.metadata]), false);
      }
      return;
    }
    this.end(fields);
  }

  sendData(data: Buffer, _endStream: boolean): void {
    if (this.finished) return;
    let at = 0;
    let lines: Buffer[] | undefined;
    let raw = 0;
    while (at < data.length) {
      if (this.message === undefined) {
        const take = Math.min(FRAME_HEADER_BYTES - this.headerBytes, data.length - at);
        data.copy(this.frameHeader, this.headerBytes, at, at + take);
        this.headerBytes += take;
        at += take;
        raw += take;
        if (this.headerBytes < FRAME_HEADER_BYTES) break;
        const size = this.frameHeader.readUInt32BE(1);
        if (this.frameHeader[0] !== 0) return this.failAnswer(new JsonMappingError('the upstream sent a compressed message, which transcoding does not read', 'response'));
        if (size > this.maxResponse) return this.failAnswer(new MessageTooLarge('response', size, this.maxResponse));
        this.message = Buffer.allocUnsafe(size);
        this.messageBytes = 0;
      }
      const message = this.message;
      const take = Math.min(message.length - this.messageBytes, data.length - at);
      data.copy(message, this.messageBytes, at, at + take);
      this.messageBytes += take;
      at += take;
      raw += take;
      if (this.messageBytes < message.length) break;
      this.message = undefined;
      this.headerBytes = 0;
      let json: unknown;
      try {
        json = messageToJson(this.target.responseType, message, this.target.options);
      } catch (err) {
        return this.failAnswer(err instanceof JsonMappingError ? err : new JsonMappingError(describe(err), 'response'));
      }
      this.replies++;
      if (!this.streaming) {
        this.reply = json;
        continue;
      }
      (lines ??= []).push(Buffer.from(`${JSON.stringify(json)}\n`));
      this.written.add((lines[lines.length - 1] as Buffer).length, raw);
      raw = 0;
    }
    if (lines !== undefined) this.inner.sendData(lines.length === 1 ? (lines[0] as Buffer) : Buffer.concat(lines), false);
    if (raw === 0) return;
    // Bytes kept in a partial message or a unary reply are the gateway's to hold (bounded by the message cap): the
    // upstream is credited for them now, so a message larger than a stream window can arrive. While lines wait for
    // the client, though, the credit waits with them: the upstream is then held to one window however its messages
    // are cut into DATA frames.
    if (this.streaming && !this.written.empty) this.deferred += raw;
    else this.handler?.onSent(this, raw);
  }

  /** The answer cannot be written: the Call ends it (upstream cancelled), as it does a message over a cap. */
  private failAnswer(err: GatewayError): void {
    this.answerFailed = true;
    const handler = this.handler;
    if (handler?.onMalformed !== undefined) handler.onMalformed(this, err);
    else this.inner.reset(ErrorCode.INTERNAL_ERROR);
  }

  /** The trailers (or a trailers-only answer) came: the HTTP answer is made. */
  private end(trailers: string[]): void {
    this.finished = true;
    this.releaseBody(); // answered: what the client still sends is dropped

    const statusText = fieldValue(trailers, 'grpc-status') ?? '';
    // Only digits are a status (an empty or odd value is not OK): PROTOCOL-HTTP2.md's Status is 1*DIGIT.
    const code = /^\d{1,2}$/.test(statusText) ? Number(statusText) : GrpcStatus.UNKNOWN;
    const message = percentDecoded(fieldValue(trailers, 'grpc-message') ?? '');
    const trailerFields = metadataOf(trailers);
    if (this.streaming) {
      if (code !== GrpcStatus.OK) this.inner.sendData(Buffer.from(`${JSON.stringify({ error: { code, message } })}\n`), false);
      this.inner.sendHeaders(trailerFields, true);
      return;
    }
    const headers = this.metadata ?? [];
    if (code === GrpcStatus.OK && (this.target.serverStreaming || this.replies === 1)) {
      // A stream that ended with no message: an empty NDJSON body.
      const body = this.target.serverStreaming ? Buffer.alloc(0) : Buffer.from(JSON.stringify(this.reply));
      const type = this.target.serverStreaming ? 'application/x-ndjson' : 'application/json';
      return this.answer([':status', '200', 'content-type', type, ...headers, ...trailerFields], body);
    }
    if (code === GrpcStatus.OK) {
      const problem = `the upstream answered a unary call with ${String(this.replies)} messages`;
      return this.answer([':status', '502', 'content-type', 'application/json', 'grpc-status', String(GrpcStatus.INTERNAL), 'grpc-message', encodeURIComponent(problem)], Buffer.from(JSON.stringify({ code: GrpcStatus.INTERNAL, message: problem })));
    }
    const status = this.answerFailed ? BAD_GATEWAY : (this.refusal?.httpStatus ?? httpStatusFromGrpc(code));
    if (!this.target.showStatusInBody) return this.answer([':status', String(status), ...headers, ...trailerFields], Buffer.alloc(0));
    const body = statusBody(code, message, fieldValue(trailers, 'grpc-status-details-bin'), this.target.detailType, this.target.options);
    this.answer([':status', String(status), 'content-type', 'application/json', ...headers, ...trailerFields], Buffer.from(JSON.stringify(body)));
  }

  private withCors(fields: string[]): string[] {
    const cors = this.cors;
    if (cors === undefined) return fields;
    const names: string[] = [];
    for (let i = 0; i < fields.length; i += 2) if ((fields[i] as string).charCodeAt(0) !== 58 /* ':' */) names.push(fields[i] as string);
    cors.answerFields(fields, this.origin, names);
    return fields;
  }

  private answer(fields: string[], body: Buffer): void {
    this.answeredStatus = Number(fields[1]);
    fields.push('content-length', String(body.length));
    this.inner.sendHeaders(this.withCors(fields), body.length === 0);
    if (body.length > 0) this.inner.sendData(body, true);
  }
}

/**
 * `source`'s fields into `target`, objects merged field by field (a path's `post.id` beside the body's `post.title`),
 * anything else replaced. Both are JSON parsed here: no prototype keys reach an object (JSON.parse makes own data
 * properties, and the mapping refuses names no field has).
 */
function mergeInto(target: Record<string, unknown>, source: Record<string, unknown>, depth = 0): void {
  for (const [key, value] of Object.entries(source)) {
    const before = Object.hasOwn(target, key) ? target[key] : undefined;
    if (depth < MERGE_DEPTH && isPlainObject(before) && isPlainObject(value)) mergeInto(before, value, depth + 1);
    else Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Response metadata as HTTP headers: what is not HTTP/2's own or gRPC's framing. */
function metadataOf(fields: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    if (name.charCodeAt(0) === 58 /* ':' */ || name === 'content-type' || name === 'content-length' || name === 'grpc-encoding' || name === 'grpc-accept-encoding') continue;
    out.push(name, fields[i + 1] as string);
  }
  return out;
}

/** grpc-message is percent-encoded (PROTOCOL-HTTP2.md); a malformed one is shown as it came. */
function percentDecoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
