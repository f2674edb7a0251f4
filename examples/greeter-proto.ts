/**
 * Loads .proto files with @grpc/proto-loader and finds a service in them. The one place that knows the load options,
 * shared by the example server, the grpcurl stand-in (which loads any -proto file) and the test helpers.
 */
import { loadSync, type MethodDefinition, type ServiceDefinition } from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

/** The Greeter of api7/grpc_server_example, as the seed document's grpcurl commands call it. */
export const HELLOWORLD_PROTO = fileURLToPath(new URL('./proto/helloworld.proto', import.meta.url));
export const GREETER_SERVICE = 'helloworld.Greeter';

export const GREETER_METHODS = [
  'SayHello',
  'SayHelloServerStream',
  'SayHelloClientStream',
  'SayHelloBidirectionalStream',
] as const;
export type GreeterMethod = (typeof GREETER_METHODS)[number];

export interface HelloRequest {
  name?: string;
}
export interface HelloReply {
  message?: string;
}

export interface LoadProtoOptions {
  importPaths?: readonly string[];
  /**
   * Keep the .proto field names (true, the default) or use protobuf's JSON names (false: lowerCamelCase, what grpcurl
   * prints). Only the JavaScript objects differ; the bytes on the wire are the same.
   */
  keepCase?: boolean;
  /** Fill in fields at their zero value (grpcurl -emit-defaults). Default false, like protojson. */
  defaults?: boolean;
}

export type AnyMethodDefinition = MethodDefinition<object, object>;

/**
 * Loads the files and returns the named service (`package.Service`), or throws when it is not there.
 * Objects come out as protojson would write them (what grpcurl prints): 64-bit integers as strings, enums by name,
 * bytes as base64, fields at their zero value left out unless `defaults`.
 */
export function loadService(
  files: string | readonly string[],
  serviceName: string,
  options: LoadProtoOptions = {},
): ServiceDefinition {
  const definition = loadSync(typeof files === 'string' ? files : [...files], {
    keepCase: options.keepCase ?? true,
    longs: String,
    enums: String,
    bytes: String,
    defaults: options.defaults ?? false,
    includeDirs: [...(options.importPaths ?? [])],
  });
  const found = definition[serviceName];
  // Messages and enums carry a `format`; services are plain maps of method definitions.
  if (found === undefined || 'format' in found) {
    throw new Error(`target server does not expose service "${serviceName}"`);
  }
  return found;
}

/** The Greeter service from examples/proto/helloworld.proto, field names as written there. */
export function loadGreeterService(): ServiceDefinition {
  return loadService(HELLOWORLD_PROTO, GREETER_SERVICE);
}
