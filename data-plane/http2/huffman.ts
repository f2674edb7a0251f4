/**
 * The static Huffman code of HPACK (RFC 7541 §5.2, Appendix B) for the gateway's own HTTP/2 engine (issue #12):
 * the code table as the appendix gives it, an encoder driven by its code/length arrays, and a decoder driven by a
 * 4-bit state machine built once at module load from a decode tree of the same table, so there is one table to
 * check against the RFC and nothing generated elsewhere. The decoder enforces §5.2's rules on the end of a
 * string: padding of at most 7 bits, all ones (a prefix of EOS), and no EOS symbol inside the string.
 */

/** Symbols: the 256 octets and EOS (§5.2). */
const SYMBOL_COUNT = 257;
export const EOS = 256;
/** Padding is strictly less than 8 bits (§5.2). */
const MAX_PADDING_BITS = 7;
/** The shortest code is 5 bits, so a 4-bit step emits at most one symbol (what the state machine relies on). */
const STEP_BITS = 4;

/**
 * Appendix B, in symbol order: (code as a right-aligned hex number, length in bits) per symbol, eight symbols a
 * line. Checked when transcribed: 257 entries, every bit string equal to its hex column and length, the code
 * canonical and complete (Kraft sum exactly 1); the Appendix C.4 and C.6 vectors in the tests decode with it.
 */
// prettier-ignore
const APPENDIX_B: readonly number[] = [
  0x1ff8, 13, 0x7fffd8, 23, 0xfffffe2, 28, 0xfffffe3, 28, 0xfffffe4, 28, 0xfffffe5, 28, 0xfffffe6, 28, 0xfffffe7, 28, // 0–7
  0xfffffe8, 28, 0xffffea, 24, 0x3ffffffc, 30, 0xfffffe9, 28, 0xfffffea, 28, 0x3ffffffd, 30, 0xfffffeb, 28, 0xfffffec, 28, // 8–15
  0xfffffed, 28, 0xfffffee, 28, 0xfffffef, 28, 0xffffff0, 28, 0xffffff1, 28, 0xffffff2, 28, 0x3ffffffe, 30, 0xffffff3, 28, // 16–23
  0xffffff4, 28, 0xffffff5, 28, 0xffffff6, 28, 0xffffff7, 28, 0xffffff8, 28, 0xffffff9, 28, 0xffffffa, 28, 0xffffffb, 28, // 24–31
  0x14, 6, 0x3f8, 10, 0x3f9, 10, 0xffa, 12, 0x1ff9, 13, 0x15, 6, 0xf8, 8, 0x7fa, 11, // 32–39
  0x3fa, 10, 0x3fb, 10, 0xf9, 8, 0x7fb, 11, 0xfa, 8, 0x16, 6, 0x17, 6, 0x18, 6, // 40–47
  0x0, 5, 0x1, 5, 0x2, 5, 0x19, 6, 0x1a, 6, 0x1b, 6, 0x1c, 6, 0x1d, 6, // 48–55
  0x1e, 6, 0x1f, 6, 0x5c, 7, 0xfb, 8, 0x7ffc, 15, 0x20, 6, 0xffb, 12, 0x3fc, 10, // 56–63
  0x1ffa, 13, 0x21, 6, 0x5d, 7, 0x5e, 7, 0x5f, 7, 0x60, 7, 0x61, 7, 0x62, 7, // 64–71
  0x63, 7, 0x64, 7, 0x65, 7, 0x66, 7, 0x67, 7, 0x68, 7, 0x69, 7, 0x6a, 7, // 72–79
  0x6b, 7, 0x6c, 7, 0x6d, 7, 0x6e, 7, 0x6f, 7, 0x70, 7, 0x71, 7, 0x72, 7, // 80–87
  0xfc, 8, 0x73, 7, 0xfd, 8, 0x1ffb, 13, 0x7fff0, 19, 0x1ffc, 13, 0x3ffc, 14, 0x22, 6, // 88–95
  0x7ffd, 15, 0x3, 5, 0x23, 6, 0x4, 5, 0x24, 6, 0x5, 5, 0x25, 6, 0x26, 6, // 96–103
  0x27, 6, 0x6, 5, 0x74, 7, 0x75, 7, 0x28, 6, 0x29, 6, 0x2a, 6, 0x7, 5, // 104–111
  0x2b, 6, 0x76, 7, 0x2c, 6, 0x8, 5, 0x9, 5, 0x2d, 6, 0x77, 7, 0x78, 7, // 112–119
  0x79, 7, 0x7a, 7, 0x7b, 7, 0x7ffe, 15, 0x7fc, 11, 0x3ffd, 14, 0x1ffd, 13, 0xffffffc, 28, // 120–127
  0xfffe6, 20, 0x3fffd2, 22, 0xfffe7, 20, 0xfffe8, 20, 0x3fffd3, 22, 0x3fffd4, 22, 0x3fffd5, 22, 0x7fffd9, 23, // 128–135
  0x3fffd6, 22, 0x7fffda, 23, 0x7fffdb, 23, 0x7fffdc, 23, 0x7fffdd, 23, 0x7fffde, 23, 0xffffeb, 24, 0x7fffdf, 23, // 136–143
  0xffffec, 24, 0xffffed, 24, 0x3fffd7, 22, 0x7fffe0, 23, 0xffffee, 24, 0x7fffe1, 23, 0x7fffe2, 23, 0x7fffe3, 23, // 144–151
  0x7fffe4, 23, 0x1fffdc, 21, 0x3fffd8, 22, 0x7fffe5, 23, 0x3fffd9, 22, 0x7fffe6, 23, 0x7fffe7, 23, 0xffffef, 24, // 152–159
  0x3fffda, 22, 0x1fffdd, 21, 0xfffe9, 20, 0x3fffdb, 22, 0x3fffdc, 22, 0x7fffe8, 23, 0x7fffe9, 23, 0x1fffde, 21, // 160–167
  0x7fffea, 23, 0x3fffdd, 22, 0x3fffde, 22, 0xfffff0, 24, 0x1fffdf, 21, 0x3fffdf, 22, 0x7fffeb, 23, 0x7fffec, 23, // 168–175
  0x1fffe0, 21, 0x1fffe1, 21, 0x3fffe0, 22, 0x1fffe2, 21, 0x7fffed, 23, 0x3fffe1, 22, 0x7fffee, 23, 0x7fffef, 23, // 176–183
  0xfffea, 20, 0x3fffe2, 22, 0x3fffe3, 22, 0x3fffe4, 22, 0x7ffff0, 23, 0x3fffe5, 22, 0x3fffe6, 22, 0x7ffff1, 23, // 184–191
  0x3ffffe0, 26, 0x3ffffe1, 26, 0xfffeb, 20, 0x7fff1, 19, 0x3fffe7, 22, 0x7ffff2, 23, 0x3fffe8, 22, 0x1ffffec, 25, // 192–199
  0x3ffffe2, 26, 0x3ffffe3, 26, 0x3ffffe4, 26, 0x7ffffde, 27, 0x7ffffdf, 27, 0x3ffffe5, 26, 0xfffff1, 24, 0x1ffffed, 25, // 200–207
  0x7fff2, 19, 0x1fffe3, 21, 0x3ffffe6, 26, 0x7ffffe0, 27, 0x7ffffe1, 27, 0x3ffffe7, 26, 0x7ffffe2, 27, 0xfffff2, 24, // 208–215
  0x1fffe4, 21, 0x1fffe5, 21, 0x3ffffe8, 26, 0x3ffffe9, 26, 0xffffffd, 28, 0x7ffffe3, 27, 0x7ffffe4, 27, 0x7ffffe5, 27, // 216–223
  0xfffec, 20, 0xfffff3, 24, 0xfffed, 20, 0x1fffe6, 21, 0x3fffe9, 22, 0x1fffe7, 21, 0x1fffe8, 21, 0x7ffff3, 23, // 224–231
  0x3fffea, 22, 0x3fffeb, 22, 0x1ffffee, 25, 0x1ffffef, 25, 0xfffff4, 24, 0xfffff5, 24, 0x3ffffea, 26, 0x7ffff4, 23, // 232–239
  0x3ffffeb, 26, 0x7ffffe6, 27, 0x3ffffec, 26, 0x3ffffed, 26, 0x7ffffe7, 27, 0x7ffffe8, 27, 0x7ffffe9, 27, 0x7ffffea, 27, // 240–247
  0x7ffffeb, 27, 0xffffffe, 28, 0x7ffffec, 27, 0x7ffffed, 27, 0x7ffffee, 27, 0x7ffffef, 27, 0x7fffff0, 27, 0x3ffffee, 26, // 248–255
  0x3fffffff, 30, // 256 (EOS)
];

const CODES = new Uint32Array(SYMBOL_COUNT);
const LENGTHS = new Uint8Array(SYMBOL_COUNT);
for (let symbol = 0; symbol < SYMBOL_COUNT; symbol++) {
  CODES[symbol] = APPENDIX_B[symbol * 2] ?? 0;
  LENGTHS[symbol] = APPENDIX_B[symbol * 2 + 1] ?? 0;
}
if (APPENDIX_B.length !== SYMBOL_COUNT * 2) throw new Error('Appendix B table must have 257 entries');

/** The number of octets `value` (an octet string held as latin1) takes Huffman-coded, padding included. */
export function huffmanLength(value: string): number {
  let bits = 0;
  for (let i = 0; i < value.length; i++) bits += LENGTHS[value.charCodeAt(i) & 0xff] ?? 0;
  return (bits + 7) >>> 3;
}

/**
 * Writes `value` Huffman-coded at `offset` of `target` (which has room for huffmanLength(value) octets) and
 * returns the offset after it. The last octet is padded with the most significant bits of EOS, all ones (§5.2).
 * The accumulator holds fewer than 8 pending bits between symbols, so codes longer than 24 bits go in two parts to
 * keep it within 32 bits.
 */
export function huffmanEncode(value: string, target: Buffer, offset: number): number {
  let acc = 0;
  let pending = 0;
  let at = offset;
  for (let i = 0; i < value.length; i++) {
    const symbol = value.charCodeAt(i) & 0xff;
    let code = CODES[symbol] ?? 0;
    let length = LENGTHS[symbol] ?? 0;
    if (length > 24) {
      const high = length - 16;
      acc = ((acc << high) | (code >>> 16)) >>> 0;
      pending += high;
      while (pending >= 8) {
        pending -= 8;
        target[at++] = (acc >>> pending) & 0xff;
      }
      acc &= (1 << pending) - 1;
      code &= 0xffff;
      length = 16;
    }
    acc = ((acc << length) | code) >>> 0;
    pending += length;
    while (pending >= 8) {
      pending -= 8;
      target[at++] = (acc >>> pending) & 0xff;
    }
    acc &= (1 << pending) - 1;
  }
  if (pending > 0) target[at++] = ((acc << (8 - pending)) | (0xff >>> pending)) & 0xff;
  return at;
}

// The decode tree: internal nodes 0..255 (0 is the root), each with two children; a child ≥ 0 is an internal node,
// a child < 0 is the leaf of symbol −child − 1.
const INTERNAL_NODES = SYMBOL_COUNT - 1;
const children = new Int16Array(INTERNAL_NODES * 2).fill(0x7fff);
/** Whether the node's path from the root is all ones and at most 7 bits long: a valid place for a string to end. */
const paddingNode = new Uint8Array(INTERNAL_NODES);
{
  let nextNode = 1;
  paddingNode[0] = 1;
  for (let symbol = 0; symbol < SYMBOL_COUNT; symbol++) {
    const code = CODES[symbol] ?? 0;
    const length = LENGTHS[symbol] ?? 0;
    let node = 0;
    let allOnes = true;
    for (let bit = length - 1; bit >= 0; bit--) {
      const one = (code >>> bit) & 1;
      allOnes &&= one === 1;
      const slot = node * 2 + one;
      if (bit === 0) {
        children[slot] = -symbol - 1;
      } else {
        let child = children[slot] ?? 0;
        if (child === 0x7fff) {
          child = nextNode++;
          children[slot] = child;
          if (allOnes && length - bit <= MAX_PADDING_BITS) paddingNode[child] = 1;
        }
        node = child;
      }
    }
  }
  if (nextNode !== INTERNAL_NODES || children.includes(0x7fff)) throw new Error('Appendix B table is not a complete code');
}

/**
 * The state machine: for each internal node (state) and each 4-bit input, one entry packing the next state (bits
 * 0–7), the symbol emitted (bits 8–16, when FLAG_SYMBOL), and the flags. A state is where the walk of the tree
 * stands, so a string may end only in a state with FLAG_ACCEPT (the root or the EOS prefix up to 7 bits).
 */
const FLAG_SYMBOL = 1 << 17;
const FLAG_ACCEPT = 1 << 18;
const FLAG_FAIL = 1 << 19;
const TRANSITIONS = new Uint32Array(INTERNAL_NODES << STEP_BITS);
for (let state = 0; state < INTERNAL_NODES; state++) {
  for (let input = 0; input < 1 << STEP_BITS; input++) {
    let node = state;
    let entry = 0;
    for (let bit = STEP_BITS - 1; bit >= 0; bit--) {
      const child = children[node * 2 + ((input >>> bit) & 1)] ?? 0;
      if (child >= 0) {
        node = child;
      } else if (-child - 1 === EOS) {
        entry |= FLAG_FAIL; // §5.2: a string containing EOS is a decoding error
        break;
      } else {
        entry |= FLAG_SYMBOL | ((-child - 1) << 8);
        node = 0;
      }
    }
    if (paddingNode[node] === 1) entry |= FLAG_ACCEPT;
    TRANSITIONS[(state << STEP_BITS) | input] = entry | node;
  }
}

/** The most octets `encodedLength` Huffman-coded octets can decode to (the shortest code is 5 bits). */
export function huffmanMaxDecodedLength(encodedLength: number): number {
  return Math.ceil((encodedLength * 8) / 5);
}

/**
 * Decodes `source[start, end)` into `target` from offset 0 (room for huffmanMaxDecodedLength octets) and returns
 * the decoded length, or −1 when the string is invalid (§5.2: EOS inside it, padding longer than 7 bits or not
 * all ones); the caller turns −1 into COMPRESSION_ERROR.
 */
export function huffmanDecode(source: Buffer, start: number, end: number, target: Buffer): number {
  let state = 0;
  let accept = true;
  let at = 0;
  for (let i = start; i < end; i++) {
    const octet = source[i] ?? 0;
    let entry = TRANSITIONS[(state << STEP_BITS) | (octet >>> 4)] ?? FLAG_FAIL;
    if ((entry & FLAG_FAIL) !== 0) return -1;
    if ((entry & FLAG_SYMBOL) !== 0) target[at++] = (entry >>> 8) & 0xff;
    entry = TRANSITIONS[((entry & 0xff) << STEP_BITS) | (octet & 0xf)] ?? FLAG_FAIL;
    if ((entry & FLAG_FAIL) !== 0) return -1;
    if ((entry & FLAG_SYMBOL) !== 0) target[at++] = (entry >>> 8) & 0xff;
    state = entry & 0xff;
    accept = (entry & FLAG_ACCEPT) !== 0;
  }
  return accept ? at : -1;
}

/** The code and length of a symbol, for tests that check the table against the RFC's rows. */
export function huffmanCode(symbol: number): { readonly code: number; readonly bits: number } {
  return { code: CODES[symbol] ?? 0, bits: LENGTHS[symbol] ?? 0 };
}
