/**
 * gRPC success checked with a real gRPC client: a sample of calls of a case through one target with @grpc/grpc-js,
 * each checked for grpc-status 0 and the expected payload (the echoed message, or N messages of S bytes). h2load
 * cannot see grpc-status, so this is what says that a 200 response carried a successful call.
 *
 * Issue #17's cases have no client library in between: raw requests over the case's HTTP version (one keep-alive
 * connection, or one HTTP/2 session), each checked for status 200, the content type, and the body: grpc-web's
 * frames (PROTOCOL-WEB.md: the echoed message, then a trailers frame with `grpc-status: 0` and nothing after it), or
 * JSON deep-equal to the request's. Their answers' length is what each measured call must then receive (h2load
 * counts body bytes, not their content).
 */
import { isDeepStrictEqual } from 'node:util';
import http from 'node:http';
import { credentials, Client, Metadata, type ServiceError, status as GrpcStatus } from '@grpc/grpc-js';
import { http1Request, http2Request, parseWebBody, type RawAnswer } from '../../test/helpers/grpc-web-raw.ts';
import { CONTENT_TYPES, jsonRequest, requestBody, requestHeaders, requestMessage, requestPath, type LoadCase } from './cases.ts';

export interface SampleResult {
  calls: number;
  ok: number;
  /** The first few problems, for the report. */
  problems: string[];
  /** grpc-web and JSON: the body length of the answers that passed (NaN when none did, or when they differ). */
  answerBytes?: number;
}

const identity = (b: Buffer): Buffer => b;
const CALL_LIMIT_MS = 30_000;

/** `headers`: metadata every call carries (gateway-plugins' API key), as `name: value`. */
export async function sampleCalls(address: string, tls: boolean, c: LoadCase, headers: readonly string[] = []): Promise<SampleResult> {
  if (c.protocol !== 'grpc') return sampleRaw(address, c, headers);
  const client = new Client(address, tls ? credentials.createSsl(null, null, null, { rejectUnauthorized: false }) : credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    // A name rather than the IP as TLS servername (Node warns about IPs in SNI); certificates are not verified.
    ...(tls ? { 'grpc.ssl_target_name_override': 'localhost' } : {}),
  });
  const path = `/${c.service}/${c.method}`;
  const metadata = new Metadata();
  for (const header of headers) {
    const colon = header.indexOf(':');
    metadata.set(header.slice(0, colon).trim(), header.slice(colon + 1).trim());
  }
  const problems: string[] = [];
  let ok = 0;
  try {
    for (let i = 0; i < c.sampleCalls; i++) {
      const problem = c.method === 'Unary' ? await unary(client, path, requestMessage(c, i + 1), metadata) : await stream(client, path, c, metadata);
      if (problem === undefined) ok++;
      else if (problems.length < 3) problems.push(problem);
    }
  } finally {
    client.close();
  }
  return { calls: c.sampleCalls, ok, problems };
}

function unary(client: Client, path: string, message: Buffer, metadata: Metadata): Promise<string | undefined> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, identity, identity, message, metadata, { deadline: Date.now() + CALL_LIMIT_MS }, (err: ServiceError | null, reply?: Buffer) => {
      if (err !== null) return resolve(`grpc-status ${err.code} (${GrpcStatus[err.code]}): ${err.details}`);
      if (reply === undefined || !reply.equals(message)) return resolve(`echo differs: sent ${message.length} B, got ${reply?.length ?? 0} B`);
      resolve(undefined);
    });
  });
}

function stream(client: Client, path: string, c: LoadCase, metadata: Metadata): Promise<string | undefined> {
  const expected = c.stream ?? { messages: 0, bytes: 0 };
  return new Promise((resolve) => {
    const call = client.makeServerStreamRequest(path, identity, identity, requestMessage(c), metadata, { deadline: Date.now() + CALL_LIMIT_MS });
    let messages = 0;
    let wrongSize = 0;
    call.on('data', (message: Buffer) => {
      messages++;
      if (message.length !== expected.bytes) wrongSize++;
    });
    call.on('error', (err: ServiceError) => resolve(`grpc-status ${err.code} (${GrpcStatus[err.code]}): ${err.details}`));
    call.on('status', (s: { code: number; details: string }) => {
      if (s.code !== 0) return; // reported by 'error'
      if (messages !== expected.messages || wrongSize > 0) {
        resolve(`stream: ${messages} messages (${wrongSize} of a wrong size), wanted ${expected.messages} × ${expected.bytes} B`);
      } else {
        resolve(undefined);
      }
    });
  });
}

/** Issue #17's cases: c.sampleCalls raw requests, each with its own payload, over the case's HTTP version. */
async function sampleRaw(address: string, c: LoadCase, headers: readonly string[]): Promise<SampleResult> {
  const fields: Record<string, string> = {};
  for (const header of [...requestHeaders(c), ...headers]) {
    const colon = header.indexOf(':');
    fields[header.slice(0, colon).trim()] = header.slice(colon + 1).trim();
  }
  // One connection for every request, as h2load's connections are kept.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const problems: string[] = [];
  const lengths = new Set<number>();
  let ok = 0;
  try {
    for (let i = 0; i < c.sampleCalls; i++) {
      const request = { path: requestPath(c), headers: fields, body: requestBody(c, i + 1) };
      let problem: string | undefined;
      try {
        const answer = c.http1 ? await http1Request(address, { ...request, agent }) : await http2Request(address, request);
        problem = checkAnswer(c, answer, i + 1);
        if (problem === undefined) lengths.add(answer.body.length);
      } catch (err) {
        problem = `request failed: ${err instanceof Error ? err.message : String(err)}`;
      }
      if (problem === undefined) ok++;
      else if (problems.length < 3) problems.push(problem);
    }
  } finally {
    agent.destroy();
  }
  if (lengths.size > 1) problems.push(`answers of ${[...lengths].join(', ')} B to requests of one size`);
  return { calls: c.sampleCalls, ok, problems, answerBytes: lengths.size === 1 ? ([...lengths][0] as number) : Number.NaN };
}

/** What is wrong with one answer to the request of `seed`, if anything. */
function checkAnswer(c: LoadCase, answer: RawAnswer, seed: number): string | undefined {
  const type = String(answer.headers['content-type']);
  if (answer.status !== 200) return `HTTP ${answer.status} (grpc-status ${String(answer.headers['grpc-status'])}): ${answer.body.toString('utf8').slice(0, 200)}`;
  if (type !== CONTENT_TYPES[c.protocol]) return `content-type ${type}, not ${CONTENT_TYPES[c.protocol]}`;
  if (c.protocol === 'json') {
    let got: unknown;
    try {
      got = JSON.parse(answer.body.toString('utf8'));
    } catch {
      return `answer is not JSON: ${answer.body.toString('utf8').slice(0, 200)}`;
    }
    return isDeepStrictEqual(got, jsonRequest(seed)) ? undefined : `JSON answer ${JSON.stringify(got).slice(0, 200)} differs from the request ${JSON.stringify(jsonRequest(seed))}`;
  }
  const body = parseWebBody(answer.body);
  const sent = requestMessage(c, seed);
  if (answer.headers['grpc-status'] !== undefined) return `trailers-only answer: grpc-status ${String(answer.headers['grpc-status'])} ${String(answer.headers['grpc-message'] ?? '')}`;
  if (body.messages.length !== 1 || !(body.messages[0] as Buffer).equals(sent)) return `grpc-web: ${body.messages.length} messages (${body.messages.map((m) => m.length).join(', ')} B), wanted the ${sent.length} B echo`;
  if (body.trailers?.['grpc-status'] !== '0') return `grpc-web trailers frame: ${JSON.stringify(body.trailers)}, wanted grpc-status 0`;
  if (body.trailing !== 0) return `grpc-web: ${body.trailing} B after the trailers frame`;
  return undefined;
}
