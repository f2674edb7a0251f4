/**
 * The two HPACK tables (RFC 7541 §2.3) for the gateway's own HTTP/2 engine (issue #12): the static table of
 * Appendix A with lookup maps built once for the encoder, and the dynamic table with §4's size accounting and
 * eviction, shared by the decoder and the encoder in hpack.ts. Names and values are octet strings held as latin1
 * JavaScript strings, so a string's length is its length in octets (§4.1 counts octets).
 */

/** §4.1: each entry costs its name and value lengths plus 32 octets of overhead. */
export const ENTRY_OVERHEAD = 32;
/** SETTINGS_HEADER_TABLE_SIZE's initial value (RFC 9113 §6.5.2). */
export const DEFAULT_HEADER_TABLE_SIZE = 4096;

/** Appendix A: index i + 1 is STATIC_TABLE[i] as [name, value]. */
// prettier-ignore
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''],
  ['etag', ''], ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''],
  ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''],
  ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
  ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''],
  ['set-cookie', ''], ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''],
  ['via', ''], ['www-authenticate', ''],
];
export const STATIC_TABLE_LENGTH = STATIC_TABLE.length;

/** For the encoder: a name's first static index, and its static indexes by value (full matches). */
export interface StaticName {
  readonly index: number;
  readonly values: ReadonlyMap<string, number>;
}
export const STATIC_BY_NAME: ReadonlyMap<string, StaticName> = (() => {
  const byName = new Map<string, { index: number; values: Map<string, number> }>();
  STATIC_TABLE.forEach(([name, value], i) => {
    let entry = byName.get(name);
    if (entry === undefined) {
      entry = { index: i + 1, values: new Map() };
      byName.set(name, entry);
    }
    if (!entry.values.has(value)) entry.values.set(value, i + 1);
  });
  return byName;
})();

const INITIAL_CAPACITY = 16;
/** The ring of an empty table that never had an entry: shared, never written (grow() replaces it before a write). */
const NO_ENTRIES: string[] = [];

/**
 * The dynamic table (§2.3.2, §4): a ring of entries, newest first for indexing. `maxSize` is the limit the last
 * table size update set (§4.2); adding an entry evicts from the oldest end until it fits, and an entry larger than
 * the limit empties the table and is not added (§4.4).
 */
export class DynamicTable {
  maxSize: number;
  /** The table's size as §4.1 counts it. */
  size = 0;
  length = 0;
  /** The ring, allocated with the first entry (a connection whose peer never indexes keeps none). */
  private names: string[] = NO_ENTRIES;
  private values: string[] = NO_ENTRIES;
  /** Slot of the oldest entry. */
  private oldest = 0;

  constructor(maxSize = DEFAULT_HEADER_TABLE_SIZE) {
    this.maxSize = maxSize;
  }

  /** Name of the entry at dynamic index `i` (0 = newest); the caller checks `i < length`. */
  name(i: number): string {
    return this.names[this.slot(i)] ?? '';
  }

  value(i: number): string {
    return this.values[this.slot(i)] ?? '';
  }

  /** §4.4: evict, then insert at the newest end (or not at all when the entry alone exceeds the limit). */
  add(name: string, value: string): void {
    const entrySize = ENTRY_OVERHEAD + name.length + value.length;
    if (entrySize > this.maxSize) {
      this.clear();
      return;
    }
    while (this.size + entrySize > this.maxSize) this.evictOldest();
    if (this.length === this.names.length) this.grow();
    const slot = (this.oldest + this.length) & (this.names.length - 1);
    this.names[slot] = name;
    this.values[slot] = value;
    this.length++;
    this.size += entrySize;
  }

  /** §4.3: a new limit evicts until the table fits it. */
  resize(maxSize: number): void {
    this.maxSize = maxSize;
    while (this.size > maxSize) this.evictOldest();
  }

  /** The entries newest first as [name, value] pairs (tests and diagnostics, not the hot path). */
  entries(): [string, string][] {
    const out: [string, string][] = [];
    for (let i = 0; i < this.length; i++) out.push([this.name(i), this.value(i)]);
    return out;
  }

  private slot(i: number): number {
    return (this.oldest + this.length - 1 - i) & (this.names.length - 1);
  }

  /** Removes the oldest entry (subclasses that index the table hook here: every eviction passes through). */
  protected evictOldest(): void {
    const slot = this.oldest;
    this.size -= ENTRY_OVERHEAD + (this.names[slot] ?? '').length + (this.values[slot] ?? '').length;
    this.names[slot] = '';
    this.values[slot] = '';
    this.oldest = (slot + 1) & (this.names.length - 1);
    this.length--;
  }

  private clear(): void {
    while (this.length > 0) this.evictOldest();
  }

  /** Doubles the ring (capacity stays a power of two for the masks), oldest entry moved to slot 0. */
  private grow(): void {
    const capacity = this.names.length;
    const next = capacity === 0 ? INITIAL_CAPACITY : capacity * 2;
    const names = new Array<string>(next).fill('');
    const values = new Array<string>(next).fill('');
    for (let i = 0; i < this.length; i++) {
      const from = (this.oldest + i) & (capacity - 1);
      names[i] = this.names[from] ?? '';
      values[i] = this.values[from] ?? '';
    }
    this.names = names;
    this.values = values;
    this.oldest = 0;
  }
}
