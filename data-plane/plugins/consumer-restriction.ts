/**
 * `consumer-restriction` (APISIX priority 2400, so after the authentication plugins): the consumer they found must
 * be in `whitelist`, or not in `blacklist`. A call with no consumer (no authentication plugin on the route) gets
 * UNAUTHENTICATED `Missing authentication or identity verification.`; a consumer not allowed, PERMISSION_DENIED
 * with `rejected_msg` (APISIX's default `The consumer_name is forbidden.`).
 */
import { AccessDenied, AuthenticationFailed } from '../../shared/errors.ts';
import type { ConsumerRestrictionConf } from '../../shared/schema/plugin-policies.ts';
import type { CompiledPlugin } from './pipeline.ts';

const PRIORITY = 2400;

export function compileConsumerRestriction(conf: ConsumerRestrictionConf): CompiledPlugin {
  const allow = conf.whitelist !== undefined;
  const names = new Set(conf.whitelist ?? conf.blacklist ?? []);
  const unidentified = { error: new AuthenticationFailed('Missing authentication or identity verification.') };
  const forbidden = { error: new AccessDenied(conf.rejected_msg ?? 'The consumer_name is forbidden.', conf.rejected_code ?? 403) };
  return {
    name: 'consumer-restriction',
    priority: PRIORITY,
    access(request) {
      const consumer = request.consumer;
      if (consumer === undefined) return unidentified;
      return names.has(consumer.username) === allow ? undefined : forbidden;
    },
  };
}
