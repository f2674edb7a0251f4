/**
 * The standard gRPC health service (grpc.health.v1.Health, doc/health-checking.md of grpc/grpc) for the example
 * upstream, so that the gateway's `checks.active.type: "grpc"` has something real to ask. `Check` answers the
 * status set for the service (the empty name is the whole server), or NOT_FOUND for a service it does not know, as
 * grpc-go's and grpc-js's own health servers do; `Watch` is UNIMPLEMENTED (the gateway does not use it).
 */
import { status as GrpcStatusCode, type ServerUnaryCall, type UntypedServiceImplementation, type sendUnaryData } from '@grpc/grpc-js';
import type { ServiceDefinition } from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import { loadService } from './greeter-proto.ts';

export const HEALTH_PROTO = fileURLToPath(new URL('./proto/health.proto', import.meta.url));
export type ServingStatus = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN' | 'UNKNOWN';

export function loadHealthService(): ServiceDefinition {
  return loadService(HEALTH_PROTO, 'grpc.health.v1.Health');
}

export interface HealthState {
  /** Status per service name ('' = the server as a whole). */
  readonly statuses: Map<string, ServingStatus>;
  /** Check calls answered so far, and the last one's service and `:authority`. */
  checks: number;
  lastService: string | undefined;
  lastAuthority: string | undefined;
  /** Distinct peers (address:port) that sent Check calls: one per prober connection. */
  readonly peers: Set<string>;
  /** The last Check calls (at most MAX_SEEN): their service and `:authority`. */
  readonly seen: { service: string; authority: string }[];
}

const MAX_SEEN = 100;

export function createHealthState(services: readonly string[]): HealthState {
  const statuses = new Map<string, ServingStatus>([['', 'SERVING']]);
  for (const name of services) statuses.set(name, 'SERVING');
  return { statuses, checks: 0, lastService: undefined, lastAuthority: undefined, peers: new Set(), seen: [] };
}

export function createHealthHandlers(state: HealthState): UntypedServiceImplementation {
  return {
    Check(call: ServerUnaryCall<{ service?: string }, object>, callback: sendUnaryData<object>) {
      const service = call.request.service ?? '';
      state.checks += 1;
      state.lastService = service;
      state.lastAuthority = call.getHost();
      if (state.peers.size < 1000) state.peers.add(call.getPeer());
      if (state.seen.length === MAX_SEEN) state.seen.shift();
      state.seen.push({ service, authority: state.lastAuthority });
      const status = state.statuses.get(service);
      if (status === undefined) callback({ code: GrpcStatusCode.NOT_FOUND, details: `unknown service ${JSON.stringify(service)}` });
      else callback(null, { status });
    },
    Watch(call: { emit(event: 'error', err: object): void }) {
      call.emit('error', { code: GrpcStatusCode.UNIMPLEMENTED, details: 'Watch is not implemented' });
    },
  };
}
