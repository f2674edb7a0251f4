/**
 * `chash`: consistent hashing on a ring (apisix/balancer/chash.lua over lua-resty-balancer's `resty.chash`, which is
 * ketama-like). Each node owns points on a 32-bit ring, in proportion to its weight; a call's key is hashed onto the
 * ring and goes to the owner of the first point at or after it (binary search over a sorted Uint32Array).
 *
 * - Points: 160 per unit of weight (resty.chash's CONSISTENT_POINTS), so a node of weight w has 160·w. The ring is
 *   capped at 160,000 points (1,000 nodes of weight 1: 1.25 MiB of typed arrays, built in about 10 ms on a config
 *   change): above that every node gets round(w · 160,000 / total weight) points, at least 1.
 * - A point's position depends only on its node's key and its ordinal: point j of a node is
 *   fmix32(crc32(key) + j · 0x9E3779B9) (murmur3's finaliser over a golden-ratio sequence). So building a balancer
 *   without one node removes only that node's points: every key that was not on it keeps its node, and about 1/N of
 *   the keys move. (While the cap is in force the points per unit of weight follow the total weight, so removing a
 *   node also trims a few points from the others and moves a little more than 1/N.)
 * - A key's position is fmix32(crc32(UTF-8 of the key)). crc32 is what APISIX hashes keys with; the finaliser spreads
 *   crc32's linear output evenly over the ring for keys that differ in a few characters (user-1, user-2, ...). The
 *   key is hashed character by character: no string or buffer is allocated per pick.
 * - A node masked out (down, or already tried by this call): the walk goes on along the ring to the next point of a
 *   usable node, so a down node's keys spread over the others in proportion to their weight, and come back to it when
 *   it is usable again. APISIX's retry does the same with `picker:next()`.
 *
 * Not bit-compatible with APISIX: resty.chash derives its points with its own C routine and orders nodes by Lua's
 * `pairs`, so the node a key lands on differs; the distribution and the stability under node changes are the same.
 */
import type { Balancer, BalancerNode } from './types.ts';

/** Points per unit of weight (resty.chash's CONSISTENT_POINTS, ketama's 160). */
export const POINTS_PER_WEIGHT = 160;
/** Upper bound of the ring: 1,000 nodes of weight 1 keep their full 160 points each. */
export const MAX_RING_POINTS = 160_000;
/** Ring steps over masked points before checking, once, that some node is usable at all (else the walk is the ring). */
const WALK_CHECK = 64;

const CRC_TABLE = ((): Int32Array => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

function crcByte(crc: number, byte: number): number {
  return (CRC_TABLE[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
}

/**
 * CRC-32 (IEEE, as ngx.crc32_long) of the UTF-8 encoding of `s`, encoded on the fly from UTF-16 code units; a lone
 * surrogate counts as U+FFFD, as TextEncoder writes it.
 */
export function crc32Utf8(s: string): number {
  let crc = -1;
  const len = s.length;
  for (let i = 0; i < len; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      crc = (CRC_TABLE[(crc ^ c) & 0xff] as number) ^ (crc >>> 8);
      continue;
    }
    if (c < 0x800) {
      crc = crcByte(crc, 0xc0 | (c >> 6));
      crc = crcByte(crc, 0x80 | (c & 0x3f));
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < len ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
        crc = crcByte(crc, 0xf0 | (c >> 18));
        crc = crcByte(crc, 0x80 | ((c >> 12) & 0x3f));
        crc = crcByte(crc, 0x80 | ((c >> 6) & 0x3f));
        crc = crcByte(crc, 0x80 | (c & 0x3f));
        continue;
      }
      c = 0xfffd;
    }
    crc = crcByte(crc, 0xe0 | (c >> 12));
    crc = crcByte(crc, 0x80 | ((c >> 6) & 0x3f));
    crc = crcByte(crc, 0x80 | (c & 0x3f));
  }
  return (crc ^ -1) >>> 0;
}

/** murmur3's 32-bit finaliser: a bijection with full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Where a call's key lands on the ring. */
export function ringPosition(key: string): number {
  return fmix32(crc32Utf8(key));
}

/**
 * Sorts `keys` ascending and moves `values` with them: LSD radix sort, four stable passes of 8 bits. A ring of
 * 160,000 points sorts in a few ms where Array/TypedArray sort (comparison-based) takes 10-20 ms.
 */
function radixSort(keys: Uint32Array<ArrayBuffer>, values: Uint32Array<ArrayBuffer>): void {
  const n = keys.length;
  let srcK = keys;
  let srcV = values;
  let dstK = new Uint32Array(n);
  let dstV = new Uint32Array(n);
  const offsets = new Uint32Array(256);
  for (let shift = 0; shift < 32; shift += 8) {
    offsets.fill(0);
    // Indices below n and 256, and octets: every typed-array read here is in range.
    for (let i = 0; i < n; i++) {
      const d = ((srcK[i] as number) >>> shift) & 0xff;
      offsets[d] = (offsets[d] as number) + 1;
    }
    let sum = 0;
    for (let d = 0; d < 256; d++) {
      const c = offsets[d] as number;
      offsets[d] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const key = srcK[i] as number;
      const d = (key >>> shift) & 0xff;
      const at = offsets[d] as number;
      offsets[d] = at + 1;
      dstK[at] = key;
      dstV[at] = srcV[i] as number;
    }
    [srcK, dstK] = [dstK, srcK];
    [srcV, dstV] = [dstV, srcV];
  }
  // Four passes: the result is back in the arrays passed in.
}

export class ConsistentHashBalancer implements Balancer {
  /** Point positions, ascending. */
  private readonly points: Uint32Array;
  /** The node index owning each point. */
  private readonly owners: Uint32Array;
  /** Node indices that own points (weight > 0), for the one "is anything usable" check of a long walk. */
  private readonly weighted: Uint32Array;

  constructor(nodes: readonly BalancerNode[]) {
    let total = 0;
    let weighted = 0;
    for (const node of nodes) {
      if (node.weight > 0) {
        total += node.weight;
        weighted++;
      }
    }
    const perWeight = total * POINTS_PER_WEIGHT <= MAX_RING_POINTS ? POINTS_PER_WEIGHT : MAX_RING_POINTS / total;
    const counts = new Uint32Array(nodes.length);
    let size = 0;
    this.weighted = new Uint32Array(weighted);
    weighted = 0;
    for (let i = 0; i < nodes.length; i++) {
      const w = (nodes[i] as BalancerNode).weight;
      if (!(w > 0)) continue;
      const count = Math.max(1, Math.round(w * perWeight));
      counts[i] = count;
      size += count;
      this.weighted[weighted++] = i;
    }
    // Positions generated node by node in index order, then sorted with their owners by a stable radix sort:
    // equal positions (a handful on a full ring) stay in node index order, which removing a node does not change.
    const points = new Uint32Array(size);
    const owners = new Uint32Array(size);
    let k = 0;
    for (let i = 0; i < nodes.length; i++) {
      const count = counts[i] as number;
      if (count === 0) continue;
      const base = crc32Utf8((nodes[i] as BalancerNode).key);
      for (let j = 0; j < count; j++) {
        points[k] = fmix32((base + Math.imul(j, 0x9e3779b9)) | 0);
        owners[k++] = i;
      }
    }
    radixSort(points, owners);
    this.points = points;
    this.owners = owners;
  }

  /** Points on the ring (for tests and diagnostics). */
  get ringSize(): number {
    return this.points.length;
  }

  pick(usable: Uint8Array | undefined, hashKey: string): number {
    const points = this.points;
    const size = points.length;
    if (size === 0) return -1;
    const h = ringPosition(hashKey);
    // Lower bound: the first point at or after h; past the last point the ring wraps to the first.
    let lo = 0;
    let hi = size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((points[mid] as number) < h) lo = mid + 1;
      else hi = mid;
    }
    let p = lo === size ? 0 : lo;
    const owners = this.owners;
    let owner = owners[p] as number;
    if (usable === undefined || usable[owner] !== 0) return owner;
    for (let steps = 1; ; steps++) {
      if (steps === WALK_CHECK && !this.anyUsable(usable)) return -1;
      p = p + 1 === size ? 0 : p + 1;
      owner = owners[p] as number;
      if (usable[owner] !== 0) return owner;
    }
  }

  begin(_index: number): void {}

  end(_index: number, _latencyMs: number, _failed: boolean): void {}

  private anyUsable(usable: Uint8Array): boolean {
    const weighted = this.weighted;
    for (let i = 0; i < weighted.length; i++) if (usable[weighted[i] as number] !== 0) return true;
    return false;
  }
}
