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

/** Credentials are never indexed (§7.1.3): a shared table would let another stream probe them. */
const SENSITIVE_NAMES = new Set(['authorization', 'proxy-authorization']);
/** Cookies are never indexed only when short: a short value is guessable, a long one costs too much to resend. */
const COOKIE_NAMES = new Set(['cookie', 'set-cookie']);
const SHORT_COOKIE = 20;
/** Values that change on every call: indexing them would only evict fields that repeat. */
const VOLATILE_NAMES = new Set(['grpc-timeout', 'content-length', 'date', 'x-request-id', 'traceparent', 'grpc-trace-bin']);
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

/** Where blocks are encoded before their copy is returned: one buffer for every encoder (encoding is synchronous). */
const output = { buf: Buffer.allocUnsafe(INITIAL_OUTPUT) };

export class HpackEncoder {
  readonly table: DynamicTable;
  /** Our own ceiling; the table uses min(ceiling, the peer's SETTINGS_HEADER_TABLE_SIZE). */
  private readonly ceiling: number;
  /** Smallest and last table sizes since the last block, when a size update is owed (§4.2). */
  private pendingMin = -1;
  private pendingLast = -1;

  constructor(options: HpackEncoderOptions = {}) {
    this.ceiling = options.maxTableSize ?? DEFAULT_HEADER_TABLE_SIZE;
    // The table starts at the protocol's initial 4096 (RFC 9113 §6.5.2) until the peer's SETTINGS say otherwise.
    const initial = Math.min(this.ceiling, DEFAULT_HEADER_TABLE_SIZE);
    this.table = new DynamicTable(initial);
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
      at = this.field(at, name, value, neverIndexed?.includes(i >>> 1) === true);
    }
    const block = Buffer.allocUnsafe(at);
    output.buf.copy(block, 0, 0, at);
    return block;
  }

  private field(start: number, name: string, value: string, forceNever: boolean): number {
    // Worst case: two integers and both strings raw.
    this.reserve(start, 3 * MAX_INTEGER_OCTETS + name.length + value.length);
    const never = forceNever || SENSITIVE_NAMES.has(name) || (COOKIE_NAMES.has(name) && value.length < SHORT_COOKIE);
    const staticName = STATIC_BY_NAME.get(name);
    let nameIndex = staticName?.index ?? 0;
    if (!never) {
      const full = staticName?.values.get(value) ?? this.findDynamic(name, value);
      if (full > 0) return writeInteger(output.buf, start, full, 7, INDEXED);
    }
    if (nameIndex === 0) nameIndex = this.findDynamicName(name);
    const entrySize = ENTRY_OVERHEAD + name.length + value.length;
    const index = !never && !VOLATILE_NAMES.has(name) && entrySize <= this.table.maxSize * MAX_INDEXED_SHARE;
    let at: number;
    if (index) at = writeInteger(output.buf, start, nameIndex, 6, LITERAL_INDEXED);
    else at = writeInteger(output.buf, start, nameIndex, 4, never ? LITERAL_NEVER_INDEXED : LITERAL_NOT_INDEXED);
    if (nameIndex === 0) at = this.string(at, name);
    at = this.string(at, value);
    if (index) this.table.add(name, value);
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

  /** Full match in the dynamic table: its index (§2.3.3), or 0. A linear scan: the table holds tens of entries. */
  private findDynamic(name: string, value: string): number {
    const table = this.table;
    for (let i = 0; i < table.length; i++) {
      if (table.name(i) === name && table.value(i) === value) return STATIC_TABLE_LENGTH + 1 + i;
    }
    return 0;
  }

  private findDynamicName(name: string): number {
    const table = this.table;
    for (let i = 0; i < table.length; i++) if (table.name(i) === name) return STATIC_TABLE_LENGTH + 1 + i;
    return 0;
  }

  /** Grows the output so `needed` octets fit after `at` (Huffman is never longer than raw, so raw bounds it). */
  private reserve(at: number, needed: number): void {
    if (at + needed <= output.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(output.buf.length * 2, at + needed));
    output.buf.copy(grown, 0, 0, at);
    output.buf = grown;
  }
}
