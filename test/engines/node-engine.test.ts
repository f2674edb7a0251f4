/**
 * The fallback engine (`apisix.http2_engine: node`, node:http2) stays tested for the release it is kept: the
 * conformance matrix (4 listener × upstream combinations), the seed path, the fault suites and the plugins run again
 * in a child test runner with GATEWAY_HTTP2_ENGINE=node. Every other suite runs on the default (native) engine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SUITES = [
  'test/conformance/interop.test.ts',
  'test/e2e/grpc-proxy.test.ts',
  'test/faults/upstream-resets.test.ts',
  'test/faults/cancellation-deadline.test.ts',
  'test/faults/trailers-passthrough.test.ts',
  'test/faults/request-headers.test.ts',
  'test/e2e/plugins.test.ts',
  'test/e2e/limit-count-redis.test.ts',
  'test/e2e/consumer-plugins.test.ts',
  'test/e2e/limit-req-conn.test.ts',
  'test/e2e/fault-rewrite.test.ts',
  'test/e2e/traffic-split.test.ts',
  'test/e2e/api-breaker.test.ts',
];

/** This runner's environment minus its test context (a child runner that sees it skips its files), engine = node. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GATEWAY_HTTP2_ENGINE: 'node' };
  delete env['NODE_TEST_CONTEXT'];
  return env;
}

test('the node:http2 engine passes conformance, the seed path, the fault suites and the plugins', { timeout: 600_000 }, async () => {
  const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=tap', ...SUITES], {
    cwd: root,
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { out += b.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const summary = /# pass (\d+)[\s\S]*?# fail (\d+)/.exec(out);
  assert.equal(code, 0, `child test run on the node engine failed:\n${out.slice(-6000)}`);
  assert.ok(summary !== null && Number(summary[1]) > 50 && summary[2] === '0', `unexpected summary:\n${out.slice(-2000)}`);
});
