/**
 * The admin API's client address allow-list, `deployment.admin.allow_admin`: APISIX renders it
 * as nginx `allow <cidr>; … deny all;`, so a client outside every block gets 403 before any key is looked at. The
 * default is loopback only. The address is the TCP peer's: no forwarding header is trusted, since anyone can set one.
 */
import { BlockList, isIPv4 } from 'node:net';
import type { onRequestAsyncHookHandler } from 'fastify';
import { AdminForbidden } from '../../shared/errors.ts';

/** An IPv4 client of a dual-stack listener shows as `::ffff:a.b.c.d`; it is matched as the IPv4 address. */
const IPV4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/** `cidrs` are canonical `address/prefix` blocks, as shared/config.ts produces them. */
export function createAllowAdminHook(cidrs: readonly string[]): onRequestAsyncHookHandler {
  const allowed = new BlockList();
  for (const cidr of cidrs) {
    const slash = cidr.lastIndexOf('/');
    const address = cidr.slice(0, slash);
    allowed.addSubnet(address, Number(cidr.slice(slash + 1)), isIPv4(address) ? 'ipv4' : 'ipv6');
  }
  return async (request) => {
    const peer = request.socket.remoteAddress ?? '';
    const address = IPV4_MAPPED.exec(peer)?.[1] ?? peer;
    const family = isIPv4(address) ? 'ipv4' : 'ipv6';
    if (address === '' || !allowed.check(address, family)) throw new AdminForbidden(address === '' ? 'an unknown address' : address);
  };
}
