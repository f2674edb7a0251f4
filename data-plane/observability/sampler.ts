/**
 * The sampling decision of APISIX's opentelemetry plugin (route `plugins.opentelemetry.sampler`, APISIX docs
 * "opentelemetry" plugin, Attributes): `always_on`, `always_off`, `trace_id_ratio` with `options.fraction`, and
 * `parent_base`, which follows the caller's sampled flag and asks `options.root` when there is no parent. Defaults
 * are APISIX's: no sampler or no name is `always_off`, a missing fraction is 0, a missing root is `always_off`.
 *
 * `trace_id_ratio` is the OpenTelemetry sampler spec's TraceIdRatioBased: deterministic in the trace id, so every
 * hop that sees the same trace id and ratio makes the same decision. The spec compares the id's low-order bits with
 * fraction × 2^n; here n = 52 (the last 13 hex characters), the most a double holds exactly, so the test is one
 * digit loop and one compare with no BigInt. A config is compiled once into a closure; a decision allocates nothing.
 */
import type { RootSamplerConf, SamplerConf } from '../../shared/schema/observability-plugins.ts';
import type { TraceParent } from './trace-context.ts';

// The schemas live with the route plugins' (shared/schema/observability-plugins.ts): the admin API checks them too.
export type { RootSamplerConf, SamplerConf } from '../../shared/schema/observability-plugins.ts';

/** Whether to record and export this call's span. `traceId` is the id the span will carry (the parent's, or new). */
export type Sampler = (parent: TraceParent | undefined, traceId: string) => boolean;

/** Hex characters of the trace id compared: its last 13, i.e. its low 52 bits. */
const RATIO_HEX_DIGITS = 13;
/** 2^52: one past the largest value of RATIO_HEX_DIGITS hex digits. */
const RATIO_SPACE = 2 ** (RATIO_HEX_DIGITS * 4);
const TRACE_ID_HEX_LENGTH = 32;
const RATIO_START = TRACE_ID_HEX_LENGTH - RATIO_HEX_DIGITS;

const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const LOWER_A = 0x61;
const HEX_RADIX = 16;
const LETTER_OFFSET = 10;

const alwaysOn: Sampler = () => true;
const alwaysOff: Sampler = () => false;

/** The low 52 bits of a (lowercase hex, 32-character) trace id as an exact integer. */
export function traceIdLow52(traceId: string): number {
  let value = 0;
  for (let i = RATIO_START; i < TRACE_ID_HEX_LENGTH; i++) {
    const code = traceId.charCodeAt(i);
    const digit = code >= DIGIT_0 && code <= DIGIT_9 ? code - DIGIT_0 : code - LOWER_A + LETTER_OFFSET;
    value = value * HEX_RADIX + digit;
  }
  return value;
}

function ratioSampler(fraction: number | undefined): Sampler {
  const share = fraction ?? 0;
  if (!(share > 0)) return alwaysOff;
  if (share >= 1) return alwaysOn;
  const threshold = share * RATIO_SPACE;
  return (_parent, traceId) => traceIdLow52(traceId) < threshold;
}

function rootSampler(conf: RootSamplerConf | undefined): Sampler {
  switch (conf?.name) {
    case 'always_on':
      return alwaysOn;
    case 'trace_id_ratio':
      return ratioSampler(conf.options?.fraction);
    default:
      return alwaysOff;
  }
}

/** The decision function for one route's (or the global) sampler config; undefined is APISIX's always_off. */
export function compileSampler(conf: SamplerConf | undefined): Sampler {
  switch (conf?.name) {
    case 'always_on':
      return alwaysOn;
    case 'trace_id_ratio':
      return ratioSampler(conf.options?.fraction);
    case 'parent_base': {
      const root = rootSampler(conf.options?.root);
      return (parent, traceId) => (parent === undefined ? root(parent, traceId) : parent.sampled);
    }
    default:
      return alwaysOff;
  }
}
