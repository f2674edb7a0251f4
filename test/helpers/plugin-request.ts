/**
 * A call as the plugins see it, for unit tests of plugins and the pipeline: testRequest() with what a test sets
 * (headers, address, route, path), the releases plugins register with onDone recorded; accessNow() for the plugins
 * that answer at once (it asserts no promise came back).
 */
import assert from 'node:assert/strict';
import { NO_CONSUMERS } from '../../data-plane/plugins/consumers.ts';
import type { CallEnded, PluginRequest } from '../../data-plane/plugins/request.ts';

export interface TestRequest extends PluginRequest {
  /** What the plugins registered with onDone, in order. */
  readonly releases: CallEnded[];
}

export function testRequest(overrides: Partial<PluginRequest> & { headers?: Record<string, string> } = {}): TestRequest {
  const headers = overrides.headers ?? {};
  const releases: CallEnded[] = [];
  return {
    routeId: overrides.routeId ?? 'r1',
    path: overrides.path ?? '/a.B/C',
    host: overrides.host ?? 'gw.example',
    remoteAddress: overrides.remoteAddress ?? '10.0.0.1',
    remotePort: overrides.remotePort ?? 40000,
    localAddress: overrides.localAddress ?? '10.0.0.254',
    localPort: overrides.localPort ?? 9081,
    consumers: NO_CONSUMERS,
    consumer: undefined,
    upstream: undefined,
    header: (name) => headers[name],
    setUpstreamHeader: () => undefined,
    removeUpstreamHeader: () => undefined,
    addUpstreamHeader: () => undefined,
    onDone: (release) => void releases.push(release),
    releases,
  };
}

export function accessNow<T>(plugin: { access(request: PluginRequest): T | Promise<T> }, request: PluginRequest): T {
  const verdict = plugin.access(request);
  assert.ok(!(verdict instanceof Promise), 'answered at once');
  return verdict;
}
