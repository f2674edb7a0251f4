/**
 * A grpcurl stand-in (grpcurl is not packaged for this machine), so the seed document's calls can be run as written
 * apart from the program name:
 *
 *   node examples/greeter-client.ts -plaintext -d '{"name":"apisix"}' 127.0.0.1:9081 helloworld.Greeter.SayHello
 *   node examples/greeter-client.ts -insecure -d '{"name":"apisix"}' 127.0.0.1:9443 helloworld.Greeter.SayHello
 *
 * What it copies from grpcurl: responses as protojson with two-space indent, one after another for streams, `{\n  \n}`
 * for an empty message; a failed call as `ERROR:\n  Code: <Name>\n  Message: <details>` on stderr with exit code
 * 64 + status; a failed dial as `Failed to dial target host "<address>": …` with exit code 1; usage errors exit 2.
 * -servername (or else -authority) becomes the :authority and the TLS server name; no SNI is sent when that name (or
 * the address) is an IP literal, like grpc-go. `callGreeter()` is the same call without the process, for tests.
 */
import {
  Client,
  credentials,
  Metadata,
  status as GrpcStatus,
  type ChannelOptions,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ClientWritableStream,
  type StatusObject,
} from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { clientTlsCredentials } from './client-tls.ts';
import { isMainModule } from './is-main.ts';
import { HELLOWORLD_PROTO, loadService } from './greeter-proto.ts';
import { flattenMetadata, metadataFromHeaders } from './metadata-text.ts';
import {
  InvocationError,
  parseGrpcurlArgs,
  parseJsonStream,
  USAGE,
  UsageError,
  type GrpcurlArgs,
} from './grpcurl-args.ts';

export { InvocationError };

export interface CallGreeterOptions {
  address: string;
  /** `package.Service.Method` or `package.Service/Method`. */
  method: string;
  /** Request messages as JSON text; client streams take several objects one after another. Default `{}`. */
  data?: string;
  /** Plaintext HTTP/2 (h2c). Default false: TLS, like grpcurl. */
  plaintext?: boolean;
  insecure?: boolean;
  /** PEM roots for verification. */
  rootCert?: string;
  clientCert?: { cert: string; key: string };
  servername?: string;
  authority?: string;
  /** `name: value` strings, as grpcurl's -H. */
  headers?: readonly string[];
  /** Default: examples/proto/helloworld.proto. */
  protoFiles?: readonly string[];
  importPaths?: readonly string[];
  keepProtoNames?: boolean;
  emitDefaults?: boolean;
  maxTimeSeconds?: number;
  /** Called with each response as it arrives (the CLI prints it at once, as grpcurl does for streams). */
  onResponse?: (message: object) => void;
}

export interface GreeterCallResult {
  responses: object[];
  code: GrpcStatus;
  /** grpc-go's name of the code: OK, Unimplemented, Unavailable, … */
  codeName: string;
  details: string;
  /** Response headers and trailers, binary values in base64. */
  headers: Record<string, string>;
  trailers: Record<string, string>;
  /** No connection could be made (refused, TLS handshake failed): grpcurl's "Failed to dial target host". */
  dialFailed: boolean;
}


/** Go's codes.Code.String(), which grpcurl prints. */
export const STATUS_NAMES: readonly string[] = [
  'OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists',
  'PermissionDenied', 'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange', 'Unimplemented',
  'Internal', 'Unavailable', 'DataLoss', 'Unauthenticated',
];
/** grpcurl exits with 64 + status so that Canceled (1) and Unknown (2) are not mistaken for its own failures. */
export const STATUS_EXIT_OFFSET = 64;
/** grpc-js's details when the call could not be sent because no connection was ever established. */
const DIAL_FAILURE_DETAILS = 'No connection established';

export async function callGreeter(options: CallGreeterOptions): Promise<GreeterCallResult> {
  const { serviceName, methodName } = splitSymbol(options.method);
  const service = loadService(options.protoFiles ?? [HELLOWORLD_PROTO], serviceName, {
    importPaths: options.importPaths ?? [],
    keepCase: options.keepProtoNames ?? false,
    defaults: options.emitDefaults ?? false,
  });
  const method = service[methodName];
  if (method === undefined) {
    throw new InvocationError(`service "${serviceName}" does not include a method named "${methodName}"`);
  }
  const requests = parseJsonStream(options.data ?? '');
  if (!method.requestStream && requests.length > 1) {
    throw new InvocationError(`method "${options.method}" is a unary RPC, but request data contained more than 1 message`);
  }
  let metadata: Metadata;
  try {
    metadata = metadataFromHeaders(options.headers ?? []);
  } catch (error) {
    throw new InvocationError(`invalid header: ${error instanceof Error ? error.message : String(error)}`);
  }

  const plaintext = options.plaintext ?? false;
  const authority = plaintext ? options.authority : (options.servername ?? options.authority);
  const channelOptions: ChannelOptions = {
    'grpc.primary_user_agent': 'greeter-client (grpcurl stand-in)',
    ...(authority === undefined ? {} : { 'grpc.default_authority': authority }),
  };
  const channelCredentials = plaintext
    ? credentials.createInsecure()
    : clientTlsCredentials({
        ...(options.insecure === true ? { insecure: true } : {}),
        ...(options.rootCert === undefined ? {} : { rootCert: options.rootCert }),
        ...(options.clientCert === undefined ? {} : { clientCert: options.clientCert }),
      });
  const client = new Client(options.address, channelCredentials, channelOptions);
  const callOptions = options.maxTimeSeconds === undefined ? {} : { deadline: Date.now() + options.maxTimeSeconds * 1000 };

  const responses: object[] = [];
  const received = (message: object): void => {
    responses.push(message);
    options.onResponse?.(message);
  };
  const serialize = method.requestSerialize;
  const deserialize = method.responseDeserialize;
  try {
    const onValue = (_error: unknown, value?: object): void => {
      if (value !== undefined) received(value);
    };
    // `call` carries headers and status; `reader` the responses of a server stream; `writer` the requests of a client one.
    let call: ClientUnaryCall | ClientReadableStream<object> | ClientWritableStream<object>;
    let reader: ClientReadableStream<object> | undefined;
    let writer: ClientWritableStream<object> | undefined;
    if (method.requestStream && method.responseStream) {
      const duplex = client.makeBidiStreamRequest(method.path, serialize, deserialize, metadata, callOptions);
      [call, reader, writer] = [duplex, duplex, duplex];
    } else if (method.requestStream) {
      writer = client.makeClientStreamRequest(method.path, serialize, deserialize, metadata, callOptions, onValue);
      call = writer;
    } else if (method.responseStream) {
      reader = client.makeServerStreamRequest(method.path, serialize, deserialize, requests[0] ?? {}, metadata, callOptions);
      call = reader;
    } else {
      call = client.makeUnaryRequest(method.path, serialize, deserialize, requests[0] ?? {}, metadata, callOptions, onValue);
    }
    let headers: Record<string, string> = {};
    call.on('metadata', (responseHeaders: Metadata) => (headers = flattenMetadata(responseHeaders)));
    const status = new Promise<StatusObject>((resolve) => call.once('status', resolve));
    // Buffered responses can be delivered after 'status': the stream's own end is the last word on them.
    const drained = new Promise<void>((resolve) => {
      if (reader === undefined) return resolve();
      reader.on('data', received);
      // A failed stream also emits 'error'; the status carries the same information.
      reader.on('error', () => resolve());
      reader.once('end', () => resolve());
      reader.once('close', () => resolve());
    });
    if (writer !== undefined) {
      writer.on('error', () => undefined);
      for (const request of requests) writer.write(request);
      writer.end();
    }
    const [final] = await Promise.all([status, drained]);
    return {
      responses,
      code: final.code,
      codeName: STATUS_NAMES[final.code] ?? `Code(${final.code})`,
      details: final.details,
      headers,
      trailers: flattenMetadata(final.metadata),
      dialFailed: final.code === GrpcStatus.UNAVAILABLE && final.details.startsWith(DIAL_FAILURE_DETAILS),
    };
  } finally {
    client.close();
  }
}

/** One response the way grpcurl prints it (golang/protobuf jsonpb, two-space indent). */
export function formatMessage(message: object): string {
  return Object.keys(message).length === 0 ? '{\n  \n}' : JSON.stringify(message, null, 2);
}

/** grpcurl.PrintStatus for a non-OK status. */
export function formatStatusError(result: Pick<GreeterCallResult, 'codeName' | 'details'>): string {
  return `ERROR:\n  Code: ${result.codeName}\n  Message: ${result.details}\n`;
}

function splitSymbol(symbol: string): { serviceName: string; methodName: string } {
  const trimmed = symbol.replace(/^\./, '');
  const cut = trimmed.includes('/') ? trimmed.lastIndexOf('/') : trimmed.lastIndexOf('.');
  if (cut <= 0) throw new InvocationError(`given method name "${symbol}" is not in expected format`);
  return { serviceName: trimmed.slice(0, cut), methodName: trimmed.slice(cut + 1) };
}

/** grpc-js: "No connection established. Last error: Error: connect ECONNREFUSED …. Resolution note: …" → the error. */
function dialError(details: string): string {
  const match = /Last error: (?:Error: )?(.*?)(?:\. Resolution note:.*)?$/s.exec(details);
  return match?.[1] ?? details;
}

async function main(argv: readonly string[]): Promise<number> {
  let args: GrpcurlArgs | 'help';
  try {
    args = parseGrpcurlArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${error.message}\nTry 'greeter-client -help' for more details.\n`);
    return 2;
  }
  if (args === 'help') {
    process.stderr.write(USAGE);
    return 0;
  }
  let result: GreeterCallResult;
  try {
    result = await callGreeter({
      address: args.address,
      method: args.symbol,
      data: args.data === '@' ? readFileSync(0, 'utf8') : args.data,
      plaintext: args.plaintext,
      insecure: args.insecure,
      headers: args.headers,
      protoFiles: args.protoFiles,
      importPaths: args.importPaths,
      keepProtoNames: args.keepProtoNames,
      emitDefaults: args.emitDefaults,
      ...(args.cacertFile === undefined ? {} : { rootCert: readFileSync(args.cacertFile, 'utf8') }),
      ...(args.certFile === undefined || args.keyFile === undefined
        ? {}
        : { clientCert: { cert: readFileSync(args.certFile, 'utf8'), key: readFileSync(args.keyFile, 'utf8') } }),
      ...(args.servername === undefined ? {} : { servername: args.servername }),
      ...(args.authority === undefined ? {} : { authority: args.authority }),
      ...(args.maxTimeSeconds === undefined ? {} : { maxTimeSeconds: args.maxTimeSeconds }),
      onResponse: (message) => process.stdout.write(`${formatMessage(message)}\n`),
    });
  } catch (error) {
    process.stderr.write(`Error invoking method "${args.symbol}": ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  if (result.dialFailed) {
    process.stderr.write(`Failed to dial target host "${args.address}": ${dialError(result.details)}\n`);
    return 1;
  }
  if (result.code === GrpcStatus.OK) return 0;
  process.stderr.write(formatStatusError(result));
  return STATUS_EXIT_OFFSET + result.code;
}

if (isMainModule(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
