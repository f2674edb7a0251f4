/**
 * grpcurl's command line, the part of it the seed document and the README use, parsed the way Go's flag package
 * does: `-flag value`, `-flag=value`, `--flag`, boolean flags without a value, repeatable -H/-proto/-import-path.
 * Flags may also follow the positional arguments (Go stops at the first one; accepting more is harmless here).
 * Also the -d format: JSON objects one after another.
 */
import { HELLOWORLD_PROTO } from './greeter-proto.ts';

export const USAGE = `Usage:
  greeter-client [flags] address symbol

A grpcurl stand-in for this repository. 'address' is host:port ([v6]:port); 'symbol' is a fully-qualified method,
package.Service.Method or package.Service/Method. There is no server reflection: without -proto the methods come
from examples/proto/helloworld.proto.

Flags:
  -plaintext             plaintext HTTP/2 (h2c) instead of TLS
  -insecure              TLS without verifying the server's certificate or name
  -cacert file           PEM roots to verify the server with (ignored with -insecure)
  -cert file -key file   client certificate and key (mutual TLS)
  -servername name       TLS server name (SNI, verification) and :authority
  -authority name        :authority; with TLS also the server name
  -H 'name: value'       request metadata, repeatable (-rpc-header is the same)
  -d data                request JSON; several objects for client streams; '@' reads stdin
  -proto file            .proto to load, repeatable; -import-path dir, repeatable
  -max-time seconds      deadline of the call
  -keep-proto-names      print .proto field names instead of lowerCamelCase
  -emit-defaults         print fields at their zero value
`;

export interface GrpcurlArgs {
  address: string;
  symbol: string;
  plaintext: boolean;
  insecure: boolean;
  /** -d as given; '@' means read stdin. */
  data: string;
  headers: string[];
  protoFiles: string[];
  importPaths: string[];
  cacertFile?: string;
  certFile?: string;
  keyFile?: string;
  servername?: string;
  authority?: string;
  maxTimeSeconds?: number;
  keepProtoNames: boolean;
  emitDefaults: boolean;
}

/** A command-line mistake: grpcurl prints it with a hint to -help and exits 2. */
export class UsageError extends Error {}

/** Something wrong before the call started (unknown method, bad -d JSON): grpcurl's "Error invoking method", exit 1. */
export class InvocationError extends Error {}

const BOOLEAN_FLAGS = new Set(['plaintext', 'insecure', 'keep-proto-names', 'emit-defaults', 'help']);
/** -connect-timeout is accepted for compatibility and unused: grpc-js fails a call as soon as the dial fails. */
const STRING_FLAGS = new Set([
  'd', 'H', 'rpc-header', 'proto', 'import-path', 'cacert', 'cert', 'key', 'servername', 'authority',
  'max-time', 'connect-timeout',
]);

export function parseGrpcurlArgs(argv: readonly string[]): GrpcurlArgs | 'help' {
  const strings = new Map<string, string[]>();
  const booleans = new Set<string>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i] ?? '';
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    if (BOOLEAN_FLAGS.has(name)) {
      const value = eq === -1 ? 'true' : body.slice(eq + 1);
      if (value !== 'true' && value !== 'false') throw new UsageError(`invalid boolean value "${value}" for -${name}`);
      if (value === 'true') booleans.add(name);
      else booleans.delete(name);
    } else if (STRING_FLAGS.has(name)) {
      const value = eq === -1 ? argv[i + 1] : body.slice(eq + 1);
      if (eq === -1) i += 1;
      if (value === undefined) throw new UsageError(`flag needs an argument: -${name}`);
      const key = name === 'rpc-header' ? 'H' : name;
      strings.set(key, [...(strings.get(key) ?? []), value]);
    } else {
      throw new UsageError(`flag provided but not defined: -${name}`);
    }
  }
  if (booleans.has('help')) return 'help';

  const last = (name: string): string | undefined => strings.get(name)?.at(-1);
  const [address, symbol, ...extra] = positional;
  if (address === undefined || symbol === undefined) throw new UsageError('Too few arguments.');
  if (extra.length > 0) throw new UsageError('Too many arguments.');
  const plaintext = booleans.has('plaintext');
  const insecure = booleans.has('insecure');
  if (insecure && plaintext) throw new UsageError('The -insecure argument can only be used with TLS.');
  if ((last('cert') === undefined) !== (last('key') === undefined)) {
    throw new UsageError('The -cert and -key arguments must be used together and both be present.');
  }
  const servername = last('servername');
  const authority = last('authority');
  if (servername !== undefined && authority !== undefined && servername !== authority) {
    throw new UsageError('Cannot specify different values for -servername and -authority.');
  }
  const maxTime = last('max-time');
  const maxTimeSeconds = maxTime === undefined ? undefined : Number(maxTime);
  if (maxTimeSeconds !== undefined && !(maxTimeSeconds >= 0)) {
    throw new UsageError('The -max-time argument must not be negative.');
  }
  const args: GrpcurlArgs = {
    address,
    symbol,
    plaintext,
    insecure,
    data: last('d') ?? '',
    headers: strings.get('H') ?? [],
    protoFiles: strings.get('proto') ?? [HELLOWORLD_PROTO],
    importPaths: strings.get('import-path') ?? [],
    keepProtoNames: booleans.has('keep-proto-names'),
    emitDefaults: booleans.has('emit-defaults'),
  };
  const cacert = last('cacert');
  if (cacert !== undefined) args.cacertFile = cacert;
  const cert = last('cert');
  const key = last('key');
  if (cert !== undefined && key !== undefined) {
    args.certFile = cert;
    args.keyFile = key;
  }
  if (servername !== undefined) args.servername = servername;
  if (authority !== undefined) args.authority = authority;
  if (maxTimeSeconds !== undefined && maxTimeSeconds > 0) args.maxTimeSeconds = maxTimeSeconds;
  return args;
}

/** grpcurl -d: JSON values one after another, optionally separated by whitespace. */
export function parseJsonStream(text: string): object[] {
  const messages: object[] = [];
  let i = 0;
  while (i < text.length) {
    if (/\s/.test(text.charAt(i))) {
      i += 1;
      continue;
    }
    const end = endOfJsonValue(text, i);
    let value: unknown;
    try {
      value = JSON.parse(text.slice(i, end));
    } catch (error) {
      throw new InvocationError(`error getting request data: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new InvocationError('error getting request data: a request message must be a JSON object');
    }
    messages.push(value);
    i = end;
  }
  return messages;
}

/** Index just past the JSON value starting at `start`: bracket depth outside strings, or up to whitespace. */
function endOfJsonValue(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i += 1) {
    const char = text.charAt(i);
    if (inString) {
      if (char === '\\') i += 1;
      else if (char === '"') inString = false;
    } else if (char === '"') inString = true;
    else if (char === '{' || char === '[') depth += 1;
    else if (char === '}' || char === ']') {
      depth -= 1;
      if (depth === 0) return i + 1;
    } else if (depth === 0 && /\s/.test(char)) return i;
  }
  return text.length;
}
