/** A plugin's (or a chain's) access verdict, for the plugins that answer at once: asserts no promise came back. */
import assert from 'node:assert/strict';
import type { PluginRequest } from '../../data-plane/plugins/request.ts';

export function accessNow<T>(plugin: { access(request: PluginRequest): T | Promise<T> }, request: PluginRequest): T {
  const verdict = plugin.access(request);
  assert.ok(!(verdict instanceof Promise), 'answered at once');
  return verdict;
}
