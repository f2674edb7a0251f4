/**
 * HTTP/2 conformance of the native engine (data-plane/http2/) against an independent peer: Debian's python3-h2
 * stack (hyperframe, hpack) driven by test/http2/h2-peer.py, frame by frame, over a real h2c connection to a data
 * plane started in-process on the native engine (whatever $GATEWAY_HTTP2_ENGINE says), with a real grpc-js
 * upstream behind it. One case per requirement of RFC 9113 §3–§8 and RFC 7541 (conformance-cases.ts); all cases
 * run once, in parallel, in one Python process before the tests, and each test asserts its case's report.
 *
 * Requires /usr/bin/python3 with python3-h2 (.ci/run installs it).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CONFORMANCE_CASES, SECTIONS, type Section } from './conformance-cases.ts';
import { listPeerCases, runPeer, startConformanceGateway, type ConformanceGateway, type PeerReport } from './conformance-gateway.ts';

describe('HTTP/2 conformance of the native engine (RFC 9113, RFC 7541) against python-h2', { timeout: 60_000 }, () => {
  let gateway: ConformanceGateway | undefined;
  let reports: Record<string, PeerReport> = {};
  let peerCases: string[] = [];
  let runMs = 0;
  const outcome = new Map<Section, { passed: number; failed: string[] }>(SECTIONS.map((s) => [s, { passed: 0, failed: [] }]));

  before(async () => {
    gateway = await startConformanceGateway();
    peerCases = await listPeerCases();
    const started = Date.now();
    reports = await runPeer(gateway, CONFORMANCE_CASES.map((c) => c.name));
    runMs = Date.now() - started;
  });

  after(async () => {
    await gateway?.close();
    const rows = SECTIONS.map((section) => {
      const { passed, failed } = outcome.get(section) ?? { passed: 0, failed: [] };
      return `  ${section.padEnd(9)} ${String(passed + failed.length).padStart(3)} cases, ${String(passed).padStart(3)} pass${failed.length > 0 ? `, failing: ${failed.join(', ')}` : ''}`;
    });
    const total = CONFORMANCE_CASES.length;
    console.log(`HTTP/2 conformance (native engine vs python-h2), ${total} cases in ${runMs} ms:\n${rows.join('\n')}`);
  });

  test('every peer case has an expectation, and every expectation a peer case', () => {
    const ours = CONFORMANCE_CASES.map((c) => c.name).sort();
    assert.equal(new Set(ours).size, ours.length, 'duplicate case names');
    assert.deepEqual(ours, [...peerCases].sort());
  });

  for (const section of SECTIONS) {
    describe(section === 'RFC 7541' ? 'RFC 7541 (HPACK)' : `RFC 9113 ${section}`, () => {
      for (const c of CONFORMANCE_CASES.filter((x) => x.section === section)) {
        test(`${c.requirement} [${c.name}]`, () => {
          const report = reports[c.name];
          const tally = outcome.get(section);
          try {
            assert.ok(report !== undefined, `no report for ${c.name}`);
            c.check(report);
            if (tally !== undefined) tally.passed++;
          } catch (err) {
            tally?.failed.push(c.name);
            throw err;
          }
        });
      }
    });
  }
});
