/**
 * HPACK (RFC 7541) for the gateway's own HTTP/2 engine (issue #12): the decoder that turns one complete header
 * block (the connection has already joined HEADERS and CONTINUATION) into a header list, and the errors it raises.
 * Integer and string primitives (§5) are here too; the encoder is in hpack-encoder.ts, the tables in
 * hpack-tables.ts, the Huffman code in huffman.ts.
 *
 * Header lists are flat arrays [name, value, name, value, …] of latin1 strings (octets preserved exactly): one
 * array per block is less allocation than a callback per field would cost once the caller builds its own list,
 * and it is what the encoder takes, so a relay can pass a list through unchanged.
 */
import { ErrorCode } from './frame.ts';
import { DEFAULT_HEADER_TABLE_SIZE, DynamicTable, ENTRY_OVERHEAD, STATIC_TABLE, STATIC_TABLE_LENGTH } from './hpack-tables.ts';
import { huffmanDecode, huffmanMaxDecodedLength } from './huffman.ts';
import { validFieldName, validFieldValue } from './fields.ts';

/** A header block that cannot be decoded: a connection error of type COMPRESSION_ERROR (RFC 9113 §4.3). */
export class HpackCompressionError extends Error {
  readonly code = ErrorCode.COMPRESSION_ERROR;
  constructor(reason: string) {
    super(`HPACK: ${reason}`);
    this.name = 'HpackCompressionError';
  }
}

/**
 * The block decoded but its header list is larger than our SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 §6.5.2). Not a
 * compression error: the whole block was still processed, so the dynamic table stays in step with the peer's
 * (RFC 9113 §8.2.3 asks for that), and the connection may answer the one stream (431 or a reset) and go on.
 */
export class HeaderListTooLarge extends Error {
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number) {
    super(`HPACK: header list of at least ${size} octets above the limit of ${limit}`);
    this.name = 'HeaderListTooLarge';
    this.size = size;
    this.limit = limit;
  }
}

/** §5.1: we refuse integers above 2^31 − 1 (no length, index or size we accept comes close). */
const MAX_INTEGER = 0x7fffffff;
/** Continuation octets of 7 bits each: 5 reach 2^35, enough for any integer we accept; more is an attack. */
const MAX_CONTINUATION_OCTETS = 5;

/** The first octet's patterns (§6). */
const INDEXED = 0x80; // §6.1: 1xxxxxxx
const LITERAL_INDEXED = 0x40; // §6.2.1: 01xxxxxx
const SIZE_UPDATE = 0x20; // §6.3: 001xxxxx
const NEVER_INDEXED = 0x10; // §6.2.3: 0001xxxx (0000xxxx is §6.2.2, without indexing)
const HUFFMAN_FLAG = 0x80; // §5.2: the H bit of a string length

export interface HpackDecoderOptions {
  /** The SETTINGS_HEADER_TABLE_SIZE we advertised: the ceiling of any size update (§6.3). */
  readonly maxTableSize?: number;
  /** Our SETTINGS_MAX_HEADER_LIST_SIZE, counted as RFC 9113 §6.5.2 does (32 + name + value per field). */
  readonly maxHeaderListSize?: number;
}

/** Huffman strings are decoded here, then copied into a string: one buffer for every decoder (decoding is synchronous). */
let scratch = Buffer.allocUnsafe(256);

export class HpackDecoder {
  readonly table: DynamicTable;
  maxHeaderListSize: number;
  /** The SETTINGS_HEADER_TABLE_SIZE we advertised (§4.2: the peer's size updates may not exceed it). */
  private maxTableSize: number;
  /** We lowered our setting below the table's limit: the next block must start with a size update (§4.2). */
  private updateRequired = false;
  private pos = 0;
  /**
   * The last decoded block has a field whose characters RFC 9113 §8.2.1 forbids (a malformed message, a stream
   * error for the caller: not a COMPRESSION_ERROR). Literals are checked as they are decoded; fields taken from the
   * tables are not scanned again, unless an invalid literal was ever indexed (`tainted`).
   */
  malformed = false;
  private tainted = false;

  constructor(options: HpackDecoderOptions = {}) {
    this.maxTableSize = options.maxTableSize ?? DEFAULT_HEADER_TABLE_SIZE;
    this.maxHeaderListSize = options.maxHeaderListSize ?? Number.MAX_SAFE_INTEGER;
    this.table = new DynamicTable(this.maxTableSize);
  }

  /** Our SETTINGS_HEADER_TABLE_SIZE changed (call once the peer acknowledged it). */
  setMaxTableSize(size: number): void {
    if (size < this.table.maxSize) this.updateRequired = true;
    this.maxTableSize = size;
  }

  /**
   * Decodes one whole header block into [name, value, …]. `neverIndexed`, when given, receives the field number
   * (position / 2) of each field sent never-indexed, which an intermediary must forward the same way (§6.2.3).
   * Throws HpackCompressionError for any malformed block, HeaderListTooLarge after a well-formed but oversized one.
   */
  decode(block: Buffer, neverIndexed?: number[]): string[] {
    const fields: string[] = [];
    const end = block.length;
    let listSize = 0;
    let fieldsSeen = false;
    let malformed = false;
    this.pos = 0;
    while (this.pos < end) {
      const first = block[this.pos] ?? 0;
      let name: string;
      let value: string;
      if ((first & INDEXED) !== 0) {
        const index = this.integer(block, 7);
        if (index === 0) throw new HpackCompressionError('indexed field with index 0'); // §6.1
        name = this.indexedName(index);
        value = index <= STATIC_TABLE_LENGTH ? (STATIC_TABLE[index - 1]?.[1] ?? '') : this.table.value(index - STATIC_TABLE_LENGTH - 1);
        if (this.tainted && index > STATIC_TABLE_LENGTH && !(validFieldName(name) && validFieldValue(value))) malformed = true;
      } else if ((first & SIZE_UPDATE) !== 0 && (first & LITERAL_INDEXED) === 0) {
        // §4.2: only at the start of a block; §6.3: never above the size we advertised.
        if (fieldsSeen) throw new HpackCompressionError('dynamic table size update after a field');
        const size = this.integer(block, 5);
        if (size > this.maxTableSize) throw new HpackCompressionError(`dynamic table size update to ${size} above ${this.maxTableSize}`);
        this.table.resize(size);
        this.updateRequired = false;
        continue;
      } else {
        const incremental = (first & LITERAL_INDEXED) !== 0;
        const index = this.integer(block, incremental ? 6 : 4);
        name = index === 0 ? this.string(block) : this.indexedName(index);
        value = this.string(block);
        const nameOk = index === 0 || (this.tainted && index > STATIC_TABLE_LENGTH) ? validFieldName(name) : true;
        if (!nameOk || !validFieldValue(value)) {
          malformed = true;
          if (incremental) this.tainted = true;
        }
        if (incremental) this.table.add(name, value); // §6.2.1
        else if ((first & NEVER_INDEXED) !== 0) neverIndexed?.push(fields.length >>> 1);
      }
      if (this.updateRequired) throw new HpackCompressionError('missing dynamic table size update after a lowered setting');
      fieldsSeen = true;
      listSize += ENTRY_OVERHEAD + name.length + value.length;
      // Past the limit: stop collecting but keep decoding so the dynamic table stays in step (RFC 9113 §8.2.3).
      if (listSize <= this.maxHeaderListSize) fields.push(name, value);
    }
    if (this.updateRequired) throw new HpackCompressionError('missing dynamic table size update after a lowered setting');
    if (listSize > this.maxHeaderListSize) throw new HeaderListTooLarge(listSize, this.maxHeaderListSize);
    this.malformed = malformed;
    return fields;
  }

  /** §2.3.3: 1..61 static, then the dynamic table newest first; anything past both is an error. */
  private indexedName(index: number): string {
    if (index <= STATIC_TABLE_LENGTH) return STATIC_TABLE[index - 1]?.[0] ?? '';
    const dynamic = index - STATIC_TABLE_LENGTH - 1;
    if (dynamic >= this.table.length) throw new HpackCompressionError(`index ${index} beyond the tables`);
    return this.table.name(dynamic);
  }

  /** §5.1 with an N-bit prefix, from `this.pos`; advances it. */
  private integer(block: Buffer, prefixBits: number): number {
    const max = (1 << prefixBits) - 1;
    const first = (block[this.pos++] ?? 0) & max;
    if (first < max) return first;
    let value = max;
    for (let i = 0; i < MAX_CONTINUATION_OCTETS; i++) {
      if (this.pos >= block.length) throw new HpackCompressionError('truncated integer');
      const octet = block[this.pos++] ?? 0;
      value += (octet & 0x7f) * 2 ** (7 * i);
      if (value > MAX_INTEGER) throw new HpackCompressionError('integer overflow');
      if ((octet & 0x80) === 0) return value;
    }
    throw new HpackCompressionError('integer with too many continuation octets');
  }

  /** §5.2: a length with the H bit, then that many octets, raw or Huffman-coded. */
  private string(block: Buffer): string {
    if (this.pos >= block.length) throw new HpackCompressionError('truncated string');
    const huffman = ((block[this.pos] ?? 0) & HUFFMAN_FLAG) !== 0;
    const length = this.integer(block, 7);
    const start = this.pos;
    const end = start + length;
    if (end > block.length) throw new HpackCompressionError('string longer than the block');
    this.pos = end;
    if (!huffman) return block.toString('latin1', start, end);
    const capacity = huffmanMaxDecodedLength(length);
    if (scratch.length < capacity) scratch = Buffer.allocUnsafe(Math.max(capacity, scratch.length * 2));
    const decoded = huffmanDecode(block, start, end, scratch);
    if (decoded < 0) throw new HpackCompressionError('invalid Huffman string (EOS or bad padding)');
    return scratch.toString('latin1', 0, decoded);
  }
}

/** §5.1: writes `value` with an N-bit prefix whose other bits are `pattern`; returns the offset after it. */
export function writeInteger(target: Buffer, offset: number, value: number, prefixBits: number, pattern: number): number {
  const max = (1 << prefixBits) - 1;
  let at = offset;
  if (value < max) {
    target[at++] = pattern | value;
    return at;
  }
  target[at++] = pattern | max;
  let rest = value - max;
  while (rest >= 0x80) {
    target[at++] = (rest & 0x7f) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  target[at++] = rest;
  return at;
}

/** Octets writeInteger needs at most for a value below 2^31 (prefix octet + 5 continuation octets). */
export const MAX_INTEGER_OCTETS = 1 + MAX_CONTINUATION_OCTETS;
