/**
 * gRPC success checked with a real gRPC client: a sample of calls of a case through one target with @grpc/grpc-js,
 * each checked for grpc-status 0 and the expected payload (the echoed message, or N messages of S bytes). h2load
 * cannot see grpc-status, so this is what says that a 200 response carried a successful call.
 */
import { credentials, Client, Metadata, type ServiceError, status as GrpcStatus } from '@grpc/grpc-js';
import { requestMessage, type LoadCase } from './cases.ts';

export interface SampleResult {
  calls: number;
  ok: number;
  /** The first few problems, for the report. */
  problems: string[];
}

const identity = (b: Buffer): Buffer => b;
const CALL_LIMIT_MS = 30_000;

/** `headers`: metadata every call carries (gateway-plugins' API key), as `name: value`. */
export async function sampleCalls(address: string, tls: boolean, c: LoadCase, headers: readonly string[] = []): Promise<SampleResult> {
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
