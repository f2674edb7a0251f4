/**
 * Request ids in UUID v4 form (APISIX's request-id plugin's default algorithm is `uuid`), made cheaply: the first
 * 80 bits after the version and variant are drawn once per process from the system's CSPRNG, and the last 48
 * bits count up from a random start. Ids are unique within a process (2^48 calls before the counter wraps) and,
 * with 74 random bits per process, across processes and replicas; they are not secrets and not unpredictable,
 * which a request id need not be. crypto.randomUUID() costs ~0.5 µs per call in a busy data plane (its entropy
 * refills showed in the profile of issue #14's benchmark); this costs one addition and a short hex conversion.
 */
import { randomBytes, randomUUID } from 'node:crypto';

/** `xxxxxxxx-xxxx-4xxx-yxxx-`: the random, versioned part of every id this process makes. */
const PREFIX = randomUUID().slice(0, 24);
const HALF = 2 ** 24;
/** Every 12-bit value as 3 hex digits: Number#toString(16) is slow in V8 (0.4 µs per id in the profile). */
const HEX3: readonly string[] = Array.from({ length: 4096 }, (_, i) => i.toString(16).padStart(3, '0'));
/** The counter as two 24-bit halves (whole numbers, so the bit operations below are exact). */
let high = randomBytes(3).readUIntBE(0, 3);
let low = randomBytes(3).readUIntBE(0, 3);

export function newRequestId(): string {
  low++;
  if (low === HALF) {
    low = 0;
    high = (high + 1) % HALF;
  }
  return PREFIX + (HEX3[high >>> 12] as string) + (HEX3[high & 0xfff] as string) + (HEX3[low >>> 12] as string) + (HEX3[low & 0xfff] as string);
}
