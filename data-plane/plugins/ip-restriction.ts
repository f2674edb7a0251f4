/**
 * `ip-restriction` (APISIX priority 3000): the client's address (the TCP peer's; no forwarding header is trusted)
 * against `whitelist` or `blacklist`. A refused client gets PERMISSION_DENIED with `message`, before any node is
 * picked.
 */
import { AccessDenied } from '../../shared/errors.ts';
import { IpMatcher } from '../../shared/ip-match.ts';
import type { IpRestrictionConf } from '../../shared/schema/plugin-policies.ts';
import type { CompiledPlugin } from './pipeline.ts';

/** APISIX's priority for ip-restriction. */
const PRIORITY = 3000;
/** APISIX's default `message`. */
const DEFAULT_MESSAGE = 'Your IP address is not allowed';

export function compileIpRestriction(conf: IpRestrictionConf): CompiledPlugin {
  const allow = conf.whitelist !== undefined;
  const matcher = new IpMatcher(conf.whitelist ?? conf.blacklist ?? []);
  const refusal = { error: new AccessDenied(conf.message ?? DEFAULT_MESSAGE, conf.response_code ?? 403) };
  return {
    name: 'ip-restriction',
    priority: PRIORITY,
    access: (request) => (matcher.has(request.remoteAddress) === allow ? undefined : refusal),
  };
}
