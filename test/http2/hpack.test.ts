/**
 * HPACK (RFC 7541) for the engine of issue #12: every example of Appendix C as byte vectors (with the dynamic table
 * after each block), the Huffman code of Appendix B, encoder → decoder round trips from a fixed seed with table
 * size changes and eviction, and the malformed inputs that must each be a COMPRESSION_ERROR.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HeaderListTooLarge, HpackCompressionError, HpackDecoder, writeInteger } from '../../data-plane/http2/hpack.ts';
import { HpackEncoder } from '../../data-plane/http2/hpack-encoder.ts';
import { STATIC_TABLE } from '../../data-plane/http2/hpack-tables.ts';
import { EOS, huffmanCode, huffmanDecode, huffmanEncode, huffmanLength, huffmanMaxDecodedLength } from '../../data-plane/http2/huffman.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

interface Step {
  readonly block: string;
  readonly fields: readonly string[];
  readonly table: readonly (readonly [string, string])[];
  readonly size: number;
}

function decodeSeries(tableSize: number, steps: readonly Step[]): void {
  const decoder = new HpackDecoder({ maxTableSize: tableSize });
  for (const step of steps) {
    assert.deepEqual(decoder.decode(hex(step.block)), step.fields);
    assert.deepEqual(decoder.table.entries(), step.table);
    assert.equal(decoder.table.size, step.size);
  }
}

function assertCompressionError(fn: () => unknown, reason: RegExp): void {
  // An HpackCompressionError's code is COMPRESSION_ERROR by its type.
  assert.throws(fn, (err: unknown) => err instanceof HpackCompressionError && reason.test(err.message));
}

const AUTHORITY = [':authority', 'www.example.com'] as const;
const NO_CACHE = ['cache-control', 'no-cache'] as const;
const CUSTOM = ['custom-key', 'custom-value'] as const;
const REQ1 = [':method', 'GET', ':scheme', 'http', ':path', '/', ...AUTHORITY];
const REQ2 = [...REQ1, ...NO_CACHE];
const REQ3 = [':method', 'GET', ':scheme', 'https', ':path', '/index.html', ...AUTHORITY, ...CUSTOM];

const LOCATION = ['location', 'https://www.example.com'] as const;
const DATE1 = ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'] as const;
const DATE2 = ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'] as const;
const PRIVATE = ['cache-control', 'private'] as const;
const COOKIE = ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'] as const;
const RESP1 = [':status', '302', ...PRIVATE, ...DATE1, ...LOCATION];
const RESP2 = [':status', '307', ...PRIVATE, ...DATE1, ...LOCATION];
const RESP3 = [':status', '200', ...PRIVATE, ...DATE2, ...LOCATION, 'content-encoding', 'gzip', ...COOKIE];
const RESP_TABLES = [
  [LOCATION, DATE1, PRIVATE, [':status', '302']],
  [[':status', '307'], LOCATION, DATE1, PRIVATE],
  [COOKIE, ['content-encoding', 'gzip'], DATE2],
] as const;

describe('RFC 7541 Appendix C', () => {
  test('C.1 integers are written with their prefixes', () => {
    const out = Buffer.alloc(8);
    assert.deepEqual(out.subarray(0, writeInteger(out, 0, 10, 5, 0)), hex('0a')); // C.1.1
    assert.deepEqual(out.subarray(0, writeInteger(out, 0, 1337, 5, 0)), hex('1f9a0a')); // C.1.2
    assert.deepEqual(out.subarray(0, writeInteger(out, 0, 42, 8, 0)), hex('2a')); // C.1.3
  });

  test('C.1 integers are read back through a 5-bit-prefix size update', () => {
    const decoder = new HpackDecoder();
    decoder.decode(hex('2a')); // 001 prefix + 10
    assert.equal(decoder.table.maxSize, 10);
    decoder.decode(hex('3f9a0a')); // 001 prefix + 1337
    assert.equal(decoder.table.maxSize, 1337);
  });

  test('C.2 literal and indexed fields decode and index as the examples say', () => {
    decodeSeries(4096, [{ block: '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572', fields: ['custom-key', 'custom-header'], table: [['custom-key', 'custom-header']], size: 55 }]);
    decodeSeries(4096, [{ block: '040c 2f73 616d 706c 652f 7061 7468', fields: [':path', '/sample/path'], table: [], size: 0 }]);
    decodeSeries(4096, [{ block: '1008 7061 7373 776f 7264 0673 6563 7265 74', fields: ['password', 'secret'], table: [], size: 0 }]);
    decodeSeries(4096, [{ block: '82', fields: [':method', 'GET'], table: [], size: 0 }]);
  });

  test('C.2.3 a never-indexed field is reported so a relay can keep it never-indexed', () => {
    const never: number[] = [];
    new HpackDecoder().decode(hex('82 1008 7061 7373 776f 7264 0673 6563 7265 74'), never);
    assert.deepEqual(never, [1]);
  });

  test('C.3 requests without Huffman coding', () => {
    decodeSeries(4096, [
      { block: '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', fields: REQ1, table: [AUTHORITY], size: 57 },
      { block: '8286 84be 5808 6e6f 2d63 6163 6865', fields: REQ2, table: [NO_CACHE, AUTHORITY], size: 110 },
      { block: '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65', fields: REQ3, table: [CUSTOM, NO_CACHE, AUTHORITY], size: 164 },
    ]);
  });

  test('C.4 requests with Huffman coding', () => {
    decodeSeries(4096, [
      { block: '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', fields: REQ1, table: [AUTHORITY], size: 57 },
      { block: '8286 84be 5886 a8eb 1064 9cbf', fields: REQ2, table: [NO_CACHE, AUTHORITY], size: 110 },
      { block: '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf', fields: REQ3, table: [CUSTOM, NO_CACHE, AUTHORITY], size: 164 },
    ]);
  });

  test('C.5 responses without Huffman coding evict at a table size of 256', () => {
    decodeSeries(256, [
      { block: '4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', fields: RESP1, table: RESP_TABLES[0], size: 222 },
      { block: '4803 3330 37c1 c0bf', fields: RESP2, table: RESP_TABLES[1], size: 222 },
      { block: '88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31', fields: RESP3, table: RESP_TABLES[2], size: 215 },
    ]);
  });

  test('C.6 responses with Huffman coding evict at a table size of 256', () => {
    decodeSeries(256, [
      { block: '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3', fields: RESP1, table: RESP_TABLES[0], size: 222 },
      { block: '4883 640e ffc1 c0bf', fields: RESP2, table: RESP_TABLES[1], size: 222 },
      { block: '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07', fields: RESP3, table: RESP_TABLES[2], size: 215 },
    ]);
  });
});

describe('Huffman code (Appendix B)', () => {
  const strings: readonly (readonly [string, string])[] = [
    ['www.example.com', 'f1e3 c2e5 f23a 6ba0 ab90 f4ff'],
    ['no-cache', 'a8eb 1064 9cbf'],
    ['custom-key', '25a8 49e9 5ba9 7d7f'],
    ['custom-value', '25a8 49e9 5bb8 e8b4 bf'],
    ['302', '6402'],
    ['private', 'aec3 771a 4b'],
    ['Mon, 21 Oct 2013 20:13:21 GMT', 'd07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff'],
    ['https://www.example.com', '9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3'],
    ['gzip', '9bd9 ab'],
    [COOKIE[1], '94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07'],
  ];

  test('the table has 257 symbols forming a complete prefix code', () => {
    let kraft = 0;
    for (let symbol = 0; symbol <= EOS; symbol++) kraft += 2 ** -huffmanCode(symbol).bits;
    assert.equal(kraft, 1);
    assert.deepEqual(huffmanCode(EOS), { code: 0x3fffffff, bits: 30 });
    assert.deepEqual(huffmanCode(0x20), { code: 0x14, bits: 6 });
  });

  test('the strings of C.4 and C.6 encode to the RFC bytes and decode back', () => {
    for (const [text, coded] of strings) {
      const out = Buffer.alloc(huffmanLength(text));
      assert.equal(huffmanEncode(text, out, 0), out.length);
      assert.deepEqual(out, hex(coded), text);
      const back = Buffer.alloc(huffmanMaxDecodedLength(out.length));
      assert.equal(back.toString('latin1', 0, huffmanDecode(out, 0, out.length, back)), text);
    }
  });

  test('every octet value round-trips, including the 30-bit codes', () => {
    let all = '';
    for (let octet = 255; octet >= 0; octet--) all += String.fromCharCode(octet);
    const out = Buffer.alloc(huffmanLength(all));
    huffmanEncode(all, out, 0);
    const back = Buffer.alloc(huffmanMaxDecodedLength(out.length));
    assert.equal(back.toString('latin1', 0, huffmanDecode(out, 0, out.length, back)), all);
  });
});

/** mulberry32: a small seeded generator, so a failing round trip can be replayed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('encoder → decoder round trips', () => {
  const NAMES = [':method', ':path', ':authority', ':scheme', 'content-type', 'te', 'grpc-timeout', 'grpc-encoding', 'user-agent', 'authorization', 'cookie', 'x-custom', 'x-trace', 'grpc-status', 'accept-encoding'];
  const VALUES = ['POST', '/helloworld.Greeter/SayHello', 'application/grpc', 'trailers', 'gzip, deflate', '', 'grpc-node-js/1.14.7', '100m', 'Bearer abc'];

  function randomValue(random: () => number): string {
    if (random() < 0.6) return VALUES[Math.floor(random() * VALUES.length)] ?? '';
    let value = '';
    const length = Math.floor(random() * (random() < 0.1 ? 300 : 24));
    for (let i = 0; i < length; i++) value += String.fromCharCode(Math.floor(random() * 256));
    return value;
  }

  test('random header lists survive with the tables in step, across size changes and eviction', () => {
    const random = seeded(12);
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    const sizes = [4096, 256, 0, 64, 1024, 4096];
    let nearlyFull = 0; // blocks that leave the table within 100 octets of its limit: later ones must evict
    for (let block = 0; block < 400; block++) {
      if (block % 40 === 39) encoder.setPeerMaxTableSize(sizes[Math.floor(random() * sizes.length)] ?? 4096);
      const fields: string[] = [];
      const count = 1 + Math.floor(random() * 12);
      for (let i = 0; i < count; i++) fields.push(NAMES[Math.floor(random() * NAMES.length)] ?? 'x', randomValue(random));
      assert.deepEqual(decoder.decode(encoder.encode(fields)), fields, `block ${block}`);
      assert.deepEqual(decoder.table.entries(), encoder.table.entries(), `table after block ${block}`);
      assert.equal(decoder.table.size, encoder.table.size);
      assert.ok(decoder.table.size <= decoder.table.maxSize);
      if (decoder.table.maxSize > 0 && decoder.table.size > decoder.table.maxSize - 100) nearlyFull++;
    }
    assert.ok(nearlyFull > 50, `only ${nearlyFull} blocks filled the table`);
  });

  test('a lowered then raised table size announces the smallest size first', () => {
    const encoder = new HpackEncoder();
    encoder.setPeerMaxTableSize(0);
    encoder.setPeerMaxTableSize(2048);
    assert.deepEqual(encoder.encode([]), hex('20 3fe1 0f')); // §4.2: 0, then 2048
  });

  test('a repeated request costs one octet per field the second time', () => {
    const encoder = new HpackEncoder();
    const fields = [':method', 'POST', ':scheme', 'http', ':path', '/helloworld.Greeter/SayHello', ':authority', 'localhost:9081', 'content-type', 'application/grpc', 'te', 'trailers', 'user-agent', 'grpc-node-js/1.14.7'];
    encoder.encode(fields);
    assert.equal(encoder.encode(fields).length, fields.length / 2);
  });

  test('credentials are sent never-indexed and kept out of the table', () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    const never: number[] = [];
    const fields = ['authorization', 'Bearer secret-token', 'cookie', 'a=1', 'x-relayed', 'v'];
    assert.deepEqual(decoder.decode(encoder.encode(fields, [2]), never), fields);
    assert.deepEqual(never, [0, 1, 2]);
    assert.equal(encoder.table.length, 0);
  });
});

describe('malformed header blocks are COMPRESSION_ERROR', () => {
  test('a truncated integer', () => assertCompressionError(() => new HpackDecoder().decode(hex('ff')), /truncated integer/));
  test('an integer above 2^31 − 1', () => assertCompressionError(() => new HpackDecoder().decode(hex('ff ffffffff0f')), /overflow/));
  test('an integer with too many continuation octets', () => assertCompressionError(() => new HpackDecoder().decode(hex('ff 8080808080 00')), /continuation/));
  test('an indexed field with index 0', () => assertCompressionError(() => new HpackDecoder().decode(hex('80')), /index 0/));
  test('an index beyond the static and dynamic tables', () => {
    assertCompressionError(() => new HpackDecoder().decode(hex('be')), /beyond/);
    assertCompressionError(() => new HpackDecoder().decode(hex('7f00 0161')), /beyond/); // literal whose name index is 62
  });
  test('a string longer than the block', () => assertCompressionError(() => new HpackDecoder().decode(hex('01 05 6162')), /longer than the block/));
  test('a block that ends before its string', () => assertCompressionError(() => new HpackDecoder().decode(hex('01')), /truncated string/));
  test('Huffman padding that is not all ones', () => assertCompressionError(() => new HpackDecoder().decode(hex('01 81 00')), /Huffman/)); // '0' + 000
  test('Huffman padding longer than 7 bits', () => assertCompressionError(() => new HpackDecoder().decode(hex('01 82 07ff')), /Huffman/)); // '0' + 11 ones
  test('an EOS symbol inside a Huffman string', () => assertCompressionError(() => new HpackDecoder().decode(hex('01 84 ffffffff')), /Huffman/));
  test('a table size update above the advertised size', () => assertCompressionError(() => new HpackDecoder().decode(hex('3fe21f')), /above 4096/));
  test('a table size update after a field', () => assertCompressionError(() => new HpackDecoder().decode(hex('82 20')), /after a field/));
  test('a block without the size update owed after our setting was lowered', () => {
    const decoder = new HpackDecoder();
    decoder.decode(hex('40 0161 0162')); // a: b, indexed
    decoder.setMaxTableSize(100);
    assertCompressionError(() => decoder.decode(hex('82')), /missing dynamic table size update/);
    const next = new HpackDecoder();
    next.setMaxTableSize(100);
    assert.deepEqual(next.decode(hex('3f45 82')), [':method', 'GET']); // §6.3: an update to 100 first
    assert.equal(next.table.maxSize, 100);
  });

  test('a header list over the limit fails with its own error after keeping the table in step', () => {
    const decoder = new HpackDecoder({ maxHeaderListSize: 100 });
    assert.throws(() => decoder.decode(hex('8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d')), (err: unknown) => err instanceof HeaderListTooLarge && err.limit === 100 && !(err instanceof HpackCompressionError));
    assert.deepEqual(decoder.table.entries(), [AUTHORITY]);
  });

  test('random bytes never raise anything but the typed errors', () => {
    const random = seeded(7541);
    for (let i = 0; i < 3000; i++) {
      const block = Buffer.alloc(1 + Math.floor(random() * 40));
      for (let j = 0; j < block.length; j++) block[j] = Math.floor(random() * 256);
      try {
        new HpackDecoder({ maxHeaderListSize: 4096 }).decode(block);
      } catch (err) {
        assert.ok(err instanceof HpackCompressionError || err instanceof HeaderListTooLarge, String(err));
      }
    }
  });
});

test('the static table has the 61 entries of Appendix A', () => {
  assert.equal(STATIC_TABLE.length, 61);
  assert.deepEqual(STATIC_TABLE[0], [':authority', '']);
  assert.deepEqual(STATIC_TABLE[15], ['accept-encoding', 'gzip, deflate']);
  assert.deepEqual(STATIC_TABLE[60], ['www-authenticate', '']);
});

describe('field characters (RFC 9113 §8.2.1) checked while decoding', () => {
  /** A literal field with a new name, incrementally indexed (0x40) or not (0x00), raw strings. */
  const literal = (name: string, value: string, indexed: boolean): Buffer =>
    Buffer.concat([Buffer.from([indexed ? 0x40 : 0x00, name.length]), Buffer.from(name, 'latin1'), Buffer.from([value.length]), Buffer.from(value, 'latin1')]);
  /** The newest dynamic table entry (index 62), fully indexed. */
  const newest = Buffer.from([0x80 | 62]);

  test('valid literals and indexed fields are not malformed; a bad name, a bad value each are', () => {
    const decoder = new HpackDecoder();
    decoder.decode(Buffer.concat([Buffer.from([0x82]), literal('x-ok', 'fine', true), newest]));
    assert.equal(decoder.malformed, false);
    for (const [name, value] of [['X-Upper', 'v'], ['x-sp ace', 'v'], ['x-colon:', 'v'], ['x-v', 'a\r\nb'], ['x-v', ' lead'], ['x-v', 'nul\0']] as const) {
      decoder.decode(literal(name, value, false));
      assert.equal(decoder.malformed, true, `${JSON.stringify(name)}: ${JSON.stringify(value)}`);
      decoder.decode(Buffer.from([0x82]));
      assert.equal(decoder.malformed, false, 'the flag is per block');
    }
  });

  test('an invalid literal that was indexed stays malformed when it is referenced by index later', () => {
    const decoder = new HpackDecoder();
    decoder.decode(literal('x-bad', 'a\nb', true));
    assert.equal(decoder.malformed, true);
    decoder.decode(newest);
    assert.equal(decoder.malformed, true, 'the indexed copy of the bad field');
    // A literal value under the bad entry's name (indexed name 62) is checked too.
    decoder.decode(Buffer.from([0x0f, 62 - 15, 1, 0x61]));
    assert.equal(decoder.malformed, false, 'x-bad: a is a valid field');
  });
});
