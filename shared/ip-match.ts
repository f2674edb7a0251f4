/**
 * IP addresses and CIDR blocks as plugins take them (`ip-restriction`'s `whitelist`/`blacklist`): `a.b.c.d`,
 * `a.b.c.d/n`, IPv6 and `v6/n`. Checked at admin-write time by shared/validate.ts and compiled once per snapshot
 * into a node:net BlockList, which answers per call without allocating.
 */
import { BlockList, isIP } from 'node:net';

/** An IPv4 client of a dual-stack listener shows as `::ffff:a.b.c.d`; it is matched as the IPv4 address. */
const IPV4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

export interface IpBlock {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** `text` as an address (a /32 or /128 block) or a CIDR block; undefined when it is neither. */
export function parseIpBlock(text: string): IpBlock | undefined {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return undefined;
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefixText)) return undefined;
    prefix = Number(prefixText);
    if (prefix > max) return undefined;
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** A set of blocks to test client addresses against. */
export class IpMatcher {
  readonly #list = new BlockList();

  /** `blocks` must each parse (parseIpBlock); one that does not is an error of the caller's validation. */
  constructor(blocks: readonly string[]) {
    for (const text of blocks) {
      const block = parseIpBlock(text);
      if (block === undefined) throw new Error(`not an IP address or CIDR block: ${text}`);
      this.#list.addSubnet(block.address, block.prefix, block.family);
    }
  }

  /** True when `peer` (a socket's remoteAddress) is in one of the blocks; false for an empty or unparsable one. */
  has(peer: string): boolean {
    const address = IPV4_MAPPED.exec(peer)?.[1] ?? peer;
    const version = isIP(address);
    if (version === 0) return false;
    return this.#list.check(address, version === 4 ? 'ipv4' : 'ipv6');
  }
}
