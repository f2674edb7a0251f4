/**
 * W3C Trace Context parsing and id generation (data-plane/observability/trace-context.ts) against the spec's valid
 * and invalid traceparent examples, and APISIX's opentelemetry samplers (data-plane/observability/sampler.ts):
 * always_on/always_off, trace_id_ratio deterministic in the trace id, parent_base with and without a parent, and
 * the sampler schema's limits.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileSampler, traceIdLow52 } from '../../data-plane/observability/sampler.ts';
import { validateSampler } from '../../shared/validate.ts';

const validSampler = (value: unknown): boolean => validateSampler(value).ok;
import {
  MAX_TRACESTATE_LENGTH,
  formatTraceparent,
  newSpanId,
  newTraceAndSpanIds,
  newTraceId,
  parseTraceparent,
  validTracestate,
  type TraceParent,
} from '../../data-plane/observability/trace-context.ts';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT_ID = 'b7ad6b7169203331';
const VALID = `00-${TRACE_ID}-${PARENT_ID}-01`;
const HEX_32 = /^[0-9a-f]{32}$/;
const HEX_16 = /^[0-9a-f]{16}$/;

describe('traceparent', () => {
  test('a valid version-00 header parses into its ids and the sampled flag', () => {
    assert.deepEqual(parseTraceparent(VALID), { traceId: TRACE_ID, parentId: PARENT_ID, sampled: true });
    assert.deepEqual(parseTraceparent(`00-${TRACE_ID}-${PARENT_ID}-00`), { traceId: TRACE_ID, parentId: PARENT_ID, sampled: false });
  });

  test('only the sampled bit of the flags decides, other bits are ignored', () => {
    assert.equal(parseTraceparent(`00-${TRACE_ID}-${PARENT_ID}-03`)?.sampled, true);
    assert.equal(parseTraceparent(`00-${TRACE_ID}-${PARENT_ID}-fe`)?.sampled, false);
  });

  test('format and parse round-trip', () => {
    for (const sampled of [true, false]) {
      const header = formatTraceparent(TRACE_ID, PARENT_ID, sampled);
      assert.equal(header.length, 55);
      assert.deepEqual(parseTraceparent(header), { traceId: TRACE_ID, parentId: PARENT_ID, sampled });
    }
    assert.equal(formatTraceparent(TRACE_ID, PARENT_ID, true), VALID);
  });

  test("the spec's invalid headers are refused", () => {
    const invalid = [
      undefined,
      '',
      `00-${'0'.repeat(32)}-${PARENT_ID}-01`, // all-zero trace-id
      `00-${TRACE_ID}-${'0'.repeat(16)}-01`, // all-zero parent-id
      `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`, // uppercase trace-id
      `00-${TRACE_ID}-${PARENT_ID.toUpperCase()}-01`, // uppercase parent-id
      `00-${TRACE_ID}-${PARENT_ID}-0A`, // uppercase flags
      `ff-${TRACE_ID}-${PARENT_ID}-01`, // version ff
      `FF-${TRACE_ID}-${PARENT_ID}-01`,
      `0g-${TRACE_ID}-${PARENT_ID}-01`, // version not hex
      VALID.slice(0, 54), // short
      `00-${TRACE_ID.slice(1)}-${PARENT_ID}-01`, // short trace-id
      `00-${TRACE_ID}-${PARENT_ID}0-1`, // dash misplaced
      `00_${TRACE_ID}-${PARENT_ID}-01`, // wrong separators
      `00-${TRACE_ID}_${PARENT_ID}-01`,
      `00-${TRACE_ID}-${PARENT_ID}_01`,
      `00-${TRACE_ID}-${PARENT_ID}-zz`, // flags not hex
      `00-${TRACE_ID}-${PARENT_ID}-01-extra`, // version 00 is exactly 55 characters
      `${VALID} `,
      ` ${VALID}`.slice(0, 55),
    ];
    for (const value of invalid) assert.equal(parseTraceparent(value), undefined, String(value));
  });

  test('a future version is read by its first 55 characters when a dash or the end follows', () => {
    const expected: TraceParent = { traceId: TRACE_ID, parentId: PARENT_ID, sampled: true };
    assert.deepEqual(parseTraceparent(`cc-${TRACE_ID}-${PARENT_ID}-09-what-the-future-will-be-like`), expected);
    assert.deepEqual(parseTraceparent(`01-${TRACE_ID}-${PARENT_ID}-01`), expected);
    assert.equal(parseTraceparent(`cc-${TRACE_ID}-${PARENT_ID}-01xyz`), undefined);
    assert.equal(parseTraceparent(`cc-${'0'.repeat(32)}-${PARENT_ID}-01-more`), undefined);
  });
});

describe('ids and tracestate', () => {
  test('new trace ids and span ids are lowercase hex of the right length and distinct over 10,000 draws', () => {
    const DRAWS = 10_000;
    const traceIds = new Set<string>();
    const spanIds = new Set<string>();
    for (let i = 0; i < DRAWS; i++) {
      const traceId = newTraceId();
      const spanId = newSpanId();
      assert.match(traceId, HEX_32);
      assert.match(spanId, HEX_16);
      assert.notEqual(traceId, '0'.repeat(32));
      assert.notEqual(spanId, '0'.repeat(16));
      traceIds.add(traceId);
      spanIds.add(spanId);
    }
    assert.equal(traceIds.size, DRAWS);
    assert.equal(spanIds.size, DRAWS);
  });

  test('pairs drawn together are well-formed and distinct, and do not repeat ids drawn alone', () => {
    const DRAWS = 10_000;
    const seen = new Set<string>();
    for (let i = 0; i < DRAWS; i++) {
      const { traceId, spanId } = newTraceAndSpanIds();
      assert.match(traceId, HEX_32);
      assert.match(spanId, HEX_16);
      assert.notEqual(traceId, '0'.repeat(32));
      assert.notEqual(spanId, '0'.repeat(16));
      seen.add(traceId).add(spanId);
      seen.add(newSpanId());
    }
    assert.equal(seen.size, 3 * DRAWS);
  });

  test('a generated pair makes a traceparent that parses back', () => {
    const traceId = newTraceId();
    const spanId = newSpanId();
    assert.deepEqual(parseTraceparent(formatTraceparent(traceId, spanId, false)), { traceId, parentId: spanId, sampled: false });
  });

  test('tracestate passes when printable ASCII within 512 characters, and not otherwise', () => {
    assert.equal(validTracestate('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'), true);
    assert.equal(validTracestate('a=1 ,\tb=2'), true);
    assert.equal(validTracestate('x'.repeat(MAX_TRACESTATE_LENGTH)), true);
    assert.equal(validTracestate('x'.repeat(MAX_TRACESTATE_LENGTH + 1)), false);
    assert.equal(validTracestate('a=\u00e9'), false);
    assert.equal(validTracestate('a=1\nb=2'), false);
  });
});

describe('samplers', () => {
  const sampledParent: TraceParent = { traceId: TRACE_ID, parentId: PARENT_ID, sampled: true };
  const unsampledParent: TraceParent = { traceId: TRACE_ID, parentId: PARENT_ID, sampled: false };

  test('always_on samples and always_off does not, whatever the parent says', () => {
    const on = compileSampler({ name: 'always_on' });
    const off = compileSampler({ name: 'always_off' });
    for (const parent of [undefined, sampledParent, unsampledParent]) {
      assert.equal(on(parent, TRACE_ID), true);
      assert.equal(off(parent, TRACE_ID), false);
    }
  });

  test("no sampler, or one without a name, is APISIX's default always_off", () => {
    assert.equal(compileSampler(undefined)(sampledParent, TRACE_ID), false);
    assert.equal(compileSampler({})(undefined, TRACE_ID), false);
  });

  test('the ratio reads the low 52 bits of the trace id', () => {
    assert.equal(traceIdLow52('00000000000000000000000000000000'), 0);
    assert.equal(traceIdLow52('ffffffffffffffffffffffffffffffff'), 2 ** 52 - 1);
    assert.equal(traceIdLow52('ffffffffffffffffff08000000000000'), 2 ** 51);
    assert.equal(traceIdLow52(TRACE_ID), parseInt(TRACE_ID.slice(-13), 16));
  });

  test('trace_id_ratio 0 samples nothing and 1 samples everything', () => {
    const none = compileSampler({ name: 'trace_id_ratio', options: { fraction: 0 } });
    const fallback = compileSampler({ name: 'trace_id_ratio' });
    const all = compileSampler({ name: 'trace_id_ratio', options: { fraction: 1 } });
    for (const id of ['0'.repeat(31) + '1', 'f'.repeat(32), TRACE_ID]) {
      assert.equal(none(undefined, id), false);
      assert.equal(fallback(undefined, id), false);
      assert.equal(all(undefined, id), true);
    }
  });

  test('trace_id_ratio 0.5 splits at 2^51 and answers the same for the same trace id', () => {
    const half = compileSampler({ name: 'trace_id_ratio', options: { fraction: 0.5 } });
    assert.equal(half(undefined, `${'f'.repeat(19)}7ffffffffffff`), true);
    assert.equal(half(undefined, `${'0'.repeat(19)}8000000000000`), false);
    const ids = Array.from({ length: 100 }, () => newTraceId());
    const first = ids.map((id) => half(undefined, id));
    assert.deepEqual(
      ids.map((id) => half(sampledParent, id)),
      first,
    );
  });

  test('trace_id_ratio 0.5 samples about half of 20,000 random trace ids', () => {
    const DRAWS = 20_000;
    const half = compileSampler({ name: 'trace_id_ratio', options: { fraction: 0.5 } });
    let sampled = 0;
    for (let i = 0; i < DRAWS; i++) if (half(undefined, newTraceId())) sampled++;
    const share = sampled / DRAWS;
    assert.ok(share >= 0.45 && share <= 0.55, `sampled share ${share}`);
  });

  test("parent_base follows the parent's sampled flag and asks the root sampler without a parent", () => {
    const defaultRoot = compileSampler({ name: 'parent_base' });
    assert.equal(defaultRoot(sampledParent, TRACE_ID), true);
    assert.equal(defaultRoot(unsampledParent, TRACE_ID), false);
    assert.equal(defaultRoot(undefined, TRACE_ID), false);

    const rootOn = compileSampler({ name: 'parent_base', options: { root: { name: 'always_on' } } });
    assert.equal(rootOn(undefined, TRACE_ID), true);
    assert.equal(rootOn(unsampledParent, TRACE_ID), false);

    const rootRatio = compileSampler({ name: 'parent_base', options: { root: { name: 'trace_id_ratio', options: { fraction: 0.5 } } } });
    assert.equal(rootRatio(undefined, `${'0'.repeat(19)}0000000000001`), true);
    assert.equal(rootRatio(undefined, `${'0'.repeat(19)}fffffffffffff`), false);
    assert.equal(rootRatio(sampledParent, `${'0'.repeat(19)}fffffffffffff`), true);
  });

  test('the sampler schema takes APISIX documents and refuses unknown fields and fractions outside 0..1', () => {
    assert.equal(validSampler({ name: 'always_on' }), true);
    assert.equal(validSampler({}), true);
    assert.equal(
      validSampler({ name: 'parent_base', options: { root: { name: 'trace_id_ratio', options: { fraction: 0.1 } } } }),
      true,
    );
    assert.equal(validSampler({ name: 'sometimes' }), false);
    assert.equal(validSampler({ name: 'always_on', extra: 1 }), false);
    assert.equal(validSampler({ name: 'trace_id_ratio', options: { fraction: 1.5 } }), false);
    assert.equal(validSampler({ name: 'trace_id_ratio', options: { fraction: -0.1 } }), false);
    assert.equal(validSampler({ name: 'trace_id_ratio', options: { ratio: 0.1 } }), false);
    assert.equal(validSampler({ name: 'parent_base', options: { root: { name: 'parent_base' } } }), false);
    assert.equal(validSampler({ name: 'parent_base', options: { root: { name: 'always_on', x: 1 } } }), false);
  });
});
