/**
 * Greeter upstreams and clients for tests: `startGreeterNode()` starts examples/greeter-server.ts on a free port
 * (TLS with a generated certificate when asked), `greeterClient()` opens a real @grpc/grpc-js client to it or to
 * the gateway, and the promise helpers run one call of each kind and report the reply, the status and which node
 * served it (`x-served-by`).
 *
 * TLS without verification. grpc-js's `createSsl(roots, null, null, { checkServerIdentity: () => undefined })`
 * does NOT skip verification: that callback only replaces the name check, and OpenSSL still fails the chain
 * ("self-signed certificate"). What skips it is `rejectUnauthorized: false`. The clients here use
 * examples/client-tls.ts, which does that for `insecure: true`; otherwise they verify for real, and a test passes
 * the node's self-signed certificate (`node.rootCert`) as `rootCert`: a self-signed certificate is its own root.
 *
 * SNI. grpc-js's built-in TLS credentials send the target host as SNI even when it is an IP (Node 20 only warns,
 * DEP0123). These clients behave like grpcurl/grpc-go instead: SNI is `servername`, else the `authority`'s host,
 * else the address's host, and none at all when that is an IP literal. So `greeterClient('127.0.0.1:9443', { tls:
 * { insecure: true } })` sends no SNI, and `servername: 'test.com'` sends test.com (and verifies against it).
 */
import {
  Client,
  credentials,
  Metadata,
  type CallOptions,
  type ChannelOptions,
  type ClientDuplexStream,
  type ClientReadableStream,
  type StatusObject,
} from '@grpc/grpc-js';
import type { MethodDefinition } from '@grpc/proto-loader';
import { clientTlsCredentials, type ClientTlsOptions } from '../../examples/client-tls.ts';
import { loadGreeterService, type GreeterMethod } from '../../examples/greeter-proto.ts';
import { startGreeter, type GreeterServer } from '../../examples/greeter-server.ts';
import { SERVED_BY_HEADER } from '../../examples/greeter-service.ts';
import { makeCert } from './certs.ts';

export { SERVED_BY_HEADER, DELAY_HEADER, STATUS_HEADER } from '../../examples/greeter-service.ts';
export type { GreeterServer };

export interface GreeterNode extends GreeterServer {
  /** The node's certificate (TLS only): trust it as a root to verify the node. */
  readonly rootCert: string | undefined;
}

/** SANs of a TLS node's certificate unless a test asks for others. */
const DEFAULT_NODE_SANS = ['localhost', '127.0.0.1'];

export async function startGreeterNode(
  options: { tls?: boolean; id?: string; sans?: readonly string[] } = {},
): Promise<GreeterNode> {
  const pem = options.tls === true ? await makeCert({ sans: options.sans ?? DEFAULT_NODE_SANS }) : undefined;
  const server = await startGreeter({
    ...(pem === undefined ? {} : { tls: pem }),
    ...(options.id === undefined ? {} : { id: options.id }),
  });
  // Not a spread: the server's record is read through getters, which a spread would freeze.
  return Object.assign(server, { rootCert: pem?.cert });
}

export interface GreeterClientOptions {
  /** TLS (the gateway's 9443 or a grpcs node); plaintext h2c when absent. */
  tls?: ClientTlsOptions;
  /** `:authority` of every call (and, with TLS and no servername, the name for SNI and verification). */
  authority?: string;
  channelOptions?: ChannelOptions;
}

export function greeterClient(address: string, options: GreeterClientOptions = {}): Client {
  const channelCredentials =
    options.tls === undefined ? credentials.createInsecure() : clientTlsCredentials(options.tls);
  return new Client(address, channelCredentials, {
    ...options.channelOptions,
    ...(options.authority === undefined ? {} : { 'grpc.default_authority': options.authority }),
  });
}

const service = loadGreeterService();

/** The method's path and (de)serializers, for tests that drive a call by hand. */
export function greeterMethod(method: GreeterMethod): MethodDefinition<object, object> {
  const definition = service[method];
  if (definition === undefined) throw new Error(`helloworld.proto has no ${method}`);
  return definition;
}

export interface CallOutcome {
  /** Reply messages in order ('' for a reply whose message is empty); none when the call failed first. */
  messages: string[];
  /** `x-served-by` from the response headers, or from the trailers of a trailers-only failure. */
  servedBy: string | undefined;
  /** Status with its trailers; code 0 is OK. */
  status: StatusObject;
  /** Response headers, undefined when the response was trailers-only. */
  headers: Metadata | undefined;
}

export interface UnaryOutcome extends CallOutcome {
  /** The reply's message, undefined when the call failed. */
  message: string | undefined;
}

export function sayHello(
  client: Client,
  name: string,
  metadata: Metadata = new Metadata(),
  options: CallOptions = {},
): Promise<UnaryOutcome> {
  const { path, requestSerialize, responseDeserialize } = greeterMethod('SayHello');
  const messages: string[] = [];
  const call = client.makeUnaryRequest(path, requestSerialize, responseDeserialize, { name }, metadata, options, (_e, reply) => {
    if (reply !== undefined) messages.push(messageOf(reply));
  });
  return outcome(call, messages).then((result) => ({ ...result, message: result.messages[0] }));
}

export function sayHelloServerStream(
  client: Client,
  name: string,
  metadata: Metadata = new Metadata(),
  options: CallOptions = {},
): Promise<CallOutcome> {
  const { path, requestSerialize, responseDeserialize } = greeterMethod('SayHelloServerStream');
  const stream = client.makeServerStreamRequest(path, requestSerialize, responseDeserialize, { name }, metadata, options);
  return collect(stream, []);
}

export function sayHelloClientStream(
  client: Client,
  names: readonly string[],
  metadata: Metadata = new Metadata(),
  options: CallOptions = {},
): Promise<UnaryOutcome> {
  const { path, requestSerialize, responseDeserialize } = greeterMethod('SayHelloClientStream');
  const messages: string[] = [];
  const call = client.makeClientStreamRequest(path, requestSerialize, responseDeserialize, metadata, options, (_e, reply) => {
    if (reply !== undefined) messages.push(messageOf(reply));
  });
  call.on('error', () => undefined);
  for (const name of names) call.write({ name });
  call.end();
  return outcome(call, messages).then((result) => ({ ...result, message: result.messages[0] }));
}

export function sayHelloBidirectionalStream(
  client: Client,
  names: readonly string[],
  metadata: Metadata = new Metadata(),
  options: CallOptions = {},
): Promise<CallOutcome> {
  const stream = openBidirectionalStream(client, metadata, options);
  const done = collect(stream, []);
  for (const name of names) stream.write({ name });
  stream.end();
  return done;
}

/** An open bidirectional call, for tests that interleave writes and reads, cancel, or watch backpressure. */
export function openBidirectionalStream(
  client: Client,
  metadata: Metadata = new Metadata(),
  options: CallOptions = {},
): ClientDuplexStream<object, object> {
  const { path, requestSerialize, responseDeserialize } = greeterMethod('SayHelloBidirectionalStream');
  return client.makeBidiStreamRequest(path, requestSerialize, responseDeserialize, metadata, options);
}

/** `message` of a decoded HelloReply; proto3 leaves an empty string off the wire, so absent means ''. */
export function messageOf(reply: object): string {
  return 'message' in reply && typeof reply.message === 'string' ? reply.message : '';
}

/** Reads a response stream to its end: buffered messages may still be delivered after 'status'. */
function collect(stream: ClientReadableStream<object>, messages: string[]): Promise<CallOutcome> {
  const drained = new Promise<void>((resolve) => {
    stream.on('data', (reply: object) => messages.push(messageOf(reply)));
    // A failed stream emits 'error' too; the status carries the same information.
    stream.on('error', () => resolve());
    stream.once('end', () => resolve());
    stream.once('close', () => resolve());
  });
  return Promise.all([outcome(stream, messages), drained]).then(([result]) => result);
}

interface CallEvents {
  on(event: 'metadata', listener: (metadata: Metadata) => void): unknown;
  once(event: 'status', listener: (status: StatusObject) => void): unknown;
}

function outcome(call: CallEvents, messages: string[]): Promise<CallOutcome> {
  let headers: Metadata | undefined;
  call.on('metadata', (received) => (headers = received));
  return new Promise((resolve) => {
    call.once('status', (status) => {
      const fromHeaders = headers?.get(SERVED_BY_HEADER)[0];
      const servedBy = fromHeaders ?? status.metadata.get(SERVED_BY_HEADER)[0];
      resolve({ messages, servedBy: typeof servedBy === 'string' ? servedBy : undefined, status, headers });
    });
  });
}
