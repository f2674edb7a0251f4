/**
 * The HPACK encoder (RFC 7541) for the gateway's own HTTP/2 engine (issue #12): turns a header list
 * [name, value, …] into one header block. Its choices, per field: an indexed field (§6.1) on a full match in the
 * static or dynamic table; a never-indexed literal (§6.2.3) for credentials; a literal with incremental indexing
 * (§6.2.1) for fields likely to repeat on the connection; a literal without indexing (§6.2.2) for values that
 * change per call. Names reuse a table index when there is one; strings are Huffman-coded when that is shorter
 * (§5.2). A change of the peer's SETTINGS_HEADER_TABLE_SIZE is signalled at the start of the next block (§4.2).
 */
import { writeInteger, MAX_INTEGER_OCTETS } from './hpack.ts';
import { DEFAULT_HEADER_TABLE_SIZE, DynamicTable, ENTRY_OVERHEAD, STATIC_BY_NAME, STATIC_TABLE_LENGTH } from './hpack-tables.ts';
import { huffmanEncode, huffmanLength } from './huffman.ts';

/** How a field of a given name is represented when the table holds no full match for it. */
const Policy = {
  /** A literal with incremental indexing (§6.2.1), when the entry fits. */
  Index: 0,
  /** Credentials are never indexed (§7.1.3): a shared table would let another stream probe them. */
  Never: 1,
  /** Cookies are never indexed only when short: a short value is guessable, a long one costs too much to resend. */
  Cookie: 2,
  /**
   * Values that change on every call: indexing them would only evict fields that repeat (§6.2.2). The first one
   * is indexed all the same when the name is in neither table, so that later ones refer to the name by its index
   * instead of sending it again: one entry of the table, saving every peer from decoding the name on every call.
   */
  Volatile: 3,
} as const;
type Policy = (typeof Policy)[keyof typeof Policy];
const SHORT_COOKIE = 20;

/** What the encoder knows of a name before looking at the dynamic table: one map lookup per field. */
interface NameInfo {
  /** The name's first static index (Appendix A), or 0. */
  readonly staticIndex: number;
  /** Full static matches by value, when the static table has any for this name. */
  readonly staticValues: ReadonlyMap<string, number> | undefined;
  readonly policy: Policy;
}
const NAME_INFO: ReadonlyMap<string, NameInfo> = (() => {
  const policies = new Map<string, Policy>([
    ['authorization', Policy.Never],
    ['proxy-authorization', Policy.Never],
    ['cookie', Policy.Cookie],
    ['set-cookie', Policy.Cookie],
    ...['grpc-timeout', 'content-length', 'date', 'x-request-id', 'traceparent', 'grpc-trace-bin'].map((n) => [n, Policy.Volatile] as const),
  ]);
  const out = new Map<string, NameInfo>();
  for (const [name, entry] of STATIC_BY_NAME) {
    out.set(name, { staticIndex: entry.index, staticValues: entry.values, policy: policies.get(name) ?? Policy.Index });
  }
  for (const [name, policy] of policies) if (!out.has(name)) out.set(name, { staticIndex: 0, staticValues: undefined, policy });
  return out;
})();
/** An entry above this share of the table would evict most of it for one field (§4.4). */
const MAX_INDEXED_SHARE = 0.75;

const INDEXED = 0x80; // §6.1
const LITERAL_INDEXED = 0x40; // §6.2.1, 6-bit prefix
const LITERAL_NOT_INDEXED = 0x00; // §6.2.2, 4-bit prefix
const LITERAL_NEVER_INDEXED = 0x10; // §6.2.3, 4-bit prefix
const SIZE_UPDATE = 0x20; // §6.3, 5-bit prefix
const HUFFMAN_FLAG = 0x80; // §5.2
const INITIAL_OUTPUT = 512;

export interface HpackEncoderOptions {
  /** The most dynamic table we are willing to use, whatever the peer allows (memory per connection). */
  readonly maxTableSize?: number;
}

/** Per name in the encoder's table: the newest entry of that name, and the newest entry of each of its values. */
interface DynamicName {
  /** Insertion number of the newest entry with this name. */
  latest: number;
  readonly values: Map<string, number>;
}

/**
 * The encoder's dynamic table: the same ring and §4 accounting as the decoder's, plus an index from name and value
 * to the entry, so that a lookup costs two map reads instead of a scan with string compares. Entries are known by
 * their insertion number k (0 for the first entry ever added): the dynamic index of entry k is `inserted − 1 − k`
 * while it is in the table. Every eviction passes through `evictOldest`, which drops the entry from the index.
 */
export class IndexedTable extends DynamicTable {
  private inserted = 0;
  private byName: Map<string, DynamicName> | undefined;

  override add(name: string, value: string): void {
    const fits = ENTRY_OVERHEAD + name.length + value.length <= this.maxSize;
    super.add(name, value);
    if (!fits) return; // §4.4: the table was emptied and the entry not added
    const k = this.inserted++;
    const byName = (this.byName ??= new Map<string, DynamicName>());
    const known = byName.get(name);
    if (known === undefined) byName.set(name, { latest: k, values: new Map([[value, k]]) });
    else {
      known.latest = k;
      known.values.set(value, k);
    }
  }

  /** The full match's index in the header table (§2.3.3), or 0. */
  fullIndex(name: string, value: string): number {
    const k = this.byName?.get(name)?.values.get(value);
    return k === undefined ? 0 : STATIC_TABLE_LENGTH + this.inserted - k;
  }

  /** The index of an entry with this name (the newest), or 0. */
  nameIndex(name: string): number {
    const known = this.byName?.get(name);
    return known === undefined ? 0 : STATIC_TABLE_LENGTH + this.inserted - known.latest;
  }

  protected override evictOldest(): void {
    const k = this.inserted - this.length;
    const name = this.name(this.length - 1);
    const value = this.value(this.length - 1);
    super.evictOldest();
    const known = this.byName?.get(name);
    if (known === undefined) return;
    // Eviction goes oldest first: when the name's newest entry leaves, no entry of that name is left.
    if (known.latest === k) this.byName?.delete(name);
    else if (known.values.get(value) === k) known.values.delete(value);
  }
}

/** Where blocks are encoded before their copy is returned: one buffer for every encoder (encoding is synchronous). */
const output = { buf: Buffer.allocUnsafe(INITIAL_OUTPUT) };

/** The shared output of `encodeBlock`: the last block encoded, from offset 0. */
export function encodedOutput(): Buffer {
  return output.buf;
}

export class HpackEncoder {
  readonly table: IndexedTable;
  /** Our own ceiling; the table uses min(ceiling, the peer's SETTINGS_HEADER_TABLE_SIZE). */
  private readonly ceiling: number;
  /** Smallest and last table sizes since the last block, when a size update is owed (§4.2). */
  private pendingMin = -1;
  private pendingLast = -1;

  constructor(options: HpackEncoderOptions = {}) {
    this.ceiling = options.maxTableSize ?? DEFAULT_HEADER_TABLE_SIZE;
    // The table starts at the protocol's initial 4096 (RFC 9113 §6.5.2) until the peer's SETTINGS say otherwise.
    const initial = Math.min(this.ceiling, DEFAULT_HEADER_TABLE_SIZE);
    this.table = new IndexedTable(initial);
    if (initial !== DEFAULT_HEADER_TABLE_SIZE) this.pendingMin = this.pendingLast = initial;
  }

  /** The peer's SETTINGS_HEADER_TABLE_SIZE: the table shrinks now and the change is announced in the next block. */
  setPeerMaxTableSize(peerSize: number): void {
    const size = Math.min(peerSize, this.ceiling);
    if (size === this.table.maxSize && this.pendingLast < 0) return;
    this.table.resize(size);
    this.pendingMin = this.pendingMin < 0 ? size : Math.min(this.pendingMin, size);
    this.pendingLast = size;
  }

  /**
   * One header block for `fields` ([name, value, …], lowercase names, latin1 strings). `neverIndexed` lists field
   * numbers (position / 2) to send never-indexed, e.g. the ones the decoder reported for a relayed list (§6.2.3).
   * Returns a new Buffer the caller owns.
   */
  encode(fields: readonly string[], neverIndexed?: readonly number[]): Buffer {
    const length = this.encodeBlock(fields, neverIndexed);
    const block = Buffer.allocUnsafe(length);
    output.buf.copy(block, 0, 0, length);
    return block;
  }

  /**
   * The same block, left in the encoders' shared output (`encodedOutput()`, valid until the next encode) instead of
   * copied: a connection copies it straight into its frames. Returns its length.
   */
  encodeBlock(fields: readonly string[], neverIndexed?: readonly number[]): number {
    let at = 0;
    this.reserve(at, 2 * MAX_INTEGER_OCTETS);
    if (this.pendingLast >= 0) {
      // §4.2: the smallest size since the last block first, then the final one if it differs.
      at = writeInteger(output.buf, at, this.pendingMin, 5, SIZE_UPDATE);
      if (this.pendingLast !== this.pendingMin) at = writeInteger(output.buf, at, this.pendingLast, 5, SIZE_UPDATE);
      this.pendingMin = this.pendingLast = -1;
    }
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const name = fields[i] ?? '';
      const value = fields[i + 1] ?? '';
      at = this.field(at, name, value, neverIndexed !== undefined && neverIndexed.includes(i >>> 1));
    }
    return at;
  }

  private field(start: number, name: string, value: string, forceNever: boolean): number {
    // Worst case: two integers and both strings raw.
    this.reserve(start, 3 * MAX_INTEGER_OCTETS + name.length + value.length);
    const info = NAME_INFO.get(name);
    const policy = info === undefined ? Policy.Index : info.policy;
    const never = forceNever || policy === Policy.Never || (policy === Policy.Cookie && value.length < SHORT_COOKIE);
    const table = this.table;
    const volatile = policy === Policy.Volatile;
    // A volatile value (a request id, a traceparent) is sent once: no lookup of the value, and raw, since
    // Huffman-coding 36 to 55 random-looking octets costs more CPU than the ~9 octets it saves.
    if (!never && !volatile) {
      const full = info?.staticValues?.get(value) ?? table.fullIndex(name, value);
      if (full > 0) return writeInteger(output.buf, start, full, 7, INDEXED);
    }
    const staticIndex = info === undefined ? 0 : info.staticIndex;
    const nameIndex = staticIndex > 0 ? staticIndex : table.nameIndex(name);
    const entrySize = ENTRY_OVERHEAD + name.length + value.length;
    const index = !never && (!volatile || nameIndex === 0) && entrySize <= table.maxSize * MAX_INDEXED_SHARE;
    let at: number;
    if (index) at = writeInteger(output.buf, start, nameIndex, 6, LITERAL_INDEXED);
    else at = writeInteger(output.buf, start, nameIndex, 4, never ? LITERAL_NEVER_INDEXED : LITERAL_NOT_INDEXED);
    if (nameIndex === 0) at = this.string(at, name);
    if (volatile) {
      at = writeInteger(output.buf, at, value.length, 7, 0);
      at += output.buf.write(value, at, 'latin1');
    } else at = this.string(at, value);
    if (index) table.add(name, value);
    return at;
  }

  /** §5.2: the shorter of raw and Huffman-coded. */
  private string(start: number, value: string): number {
    const coded = huffmanLength(value);
    if (coded < value.length) {
      const at = writeInteger(output.buf, start, coded, 7, HUFFMAN_FLAG);
      return huffmanEncode(value, output.buf, at);
    }
    const at = writeInteger(output.buf, start, value.length, 7, 0);
    return at + output.buf.write(value, at, 'latin1');
  }

  /** Grows the output so `needed` octets fit after `at` (Huffman is never longer than raw, so raw bounds it). */
  private reserve(at: number, needed: number): void {
    if (at + needed <= output.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(output.buf.length * 2, at + needed));
    output.buf.copy(grown, 0, 0, at);
    output.buf = grown;
  }
}
