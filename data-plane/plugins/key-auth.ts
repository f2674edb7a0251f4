/**
 * `key-auth` (APISIX priority 2500) on a route or service: the call's key, from the request header `header`
 * (default `apikey`; gRPC metadata is a header), must be a consumer's `key-auth.key`. A call without one gets
 * UNAUTHENTICATED `Missing API key in request`, one with a key no consumer has `Invalid API key in request` (APISIX's
 * texts). A call that passes carries its consumer's name upstream in `x-consumer-username` (a client's own is
 * replaced) and to the plugins after this one; `hide_credentials` keeps the key from the upstream.
 */
import { AuthenticationFailed } from '../../shared/errors.ts';
import type { KeyAuthConf } from '../../shared/schema/plugin-policies.ts';
import { admitConsumer } from './consumers.ts';
import type { CompiledPlugin } from './pipeline.ts';

const PRIORITY = 2500;
const DEFAULT_HEADER = 'apikey';

export function compileKeyAuth(conf: KeyAuthConf): CompiledPlugin {
  const header = (conf.header ?? DEFAULT_HEADER).toLowerCase();
  const hide = conf.hide_credentials ?? false;
  const missing = { error: new AuthenticationFailed('Missing API key in request') };
  const invalid = { error: new AuthenticationFailed('Invalid API key in request') };
  return {
    name: 'key-auth',
    priority: PRIORITY,
    access(request) {
      const key = request.header(header);
      if (key === undefined || key === '') return missing;
      const consumer = request.consumers.byKey(key);
      if (consumer === undefined) return invalid;
      admitConsumer(request, consumer, header, hide);
      return undefined;
    },
  };
}
