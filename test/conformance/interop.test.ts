/**
 * Conformance: grpc's interop cases (doc/interop-test-descriptions.md) through a whole gateway, plus the cases a
 * gateway adds (streaming with intervals, 1,000 concurrent calls on one connection, a 5,000-round-trip bidi stream,
 * compressed messages passed through byte for byte), each in all four combinations {h2c, TLS} downstream ×
 * {grpc, grpcs} upstream, with @grpc/grpc-js clients and a @grpc/grpc-js TestService upstream. The compression
 * cases use a byte-level TestService upstream instead (grpc-js's server cannot compress responses or show the
 * compressed flag), and one of them a raw node:http2 client, to compare bytes on both legs.
 *
 * One gateway serves the file (context.ts); each case is one test titled `<case> via <combination>`, e.g.
 * "large_unary via h2c→grpcs". With CONFORMANCE_TABLE=<path> the case × combination table is written there at
 * the end (results-table.ts).
 */
import { after, before, describe, test } from 'node:test';
import { performance } from 'node:perf_hooks';
import { COMPRESSION_CASES } from './cases-compression.ts';
import { GATEWAY_CASES } from './cases-gateway.ts';
import { INTEROP_CASES } from './cases-interop.ts';
import { COMBINATIONS, startConformanceFixture, type ConformanceFixture } from './context.ts';
import { ResultsTable, tablePathFromEnv } from './results-table.ts';

const CASES = [...INTEROP_CASES, ...GATEWAY_CASES, ...COMPRESSION_CASES];
/** No case takes long; one that hangs fails instead of stalling the file. */
const CASE_TIMEOUT_MS = 30_000;

const results = new ResultsTable(
  CASES.map((c) => c.name),
  COMBINATIONS.map((c) => c.name),
);

describe('gRPC interop cases through the gateway', () => {
  let fixture: ConformanceFixture | undefined;

  before(async () => {
    fixture = await startConformanceFixture();
  });

  after(async () => {
    await fixture?.close();
    await results.writeTo(tablePathFromEnv());
  });

  for (const combination of COMBINATIONS) {
    describe(combination.name, () => {
      for (const testCase of CASES) {
        test(`${testCase.name} via ${combination.name}`, { timeout: CASE_TIMEOUT_MS }, async () => {
          const started = performance.now();
          try {
            if (fixture === undefined) throw new Error('the gateway fixture did not start');
            await testCase.run(fixture.contextFor(combination));
            results.record(testCase.name, combination.name, { outcome: 'pass', ms: performance.now() - started });
          } catch (err) {
            const error = err instanceof Error ? err.message : String(err);
            results.record(testCase.name, combination.name, { outcome: 'fail', ms: performance.now() - started, error });
            throw err;
          }
        });
      }
    });
  }
});
