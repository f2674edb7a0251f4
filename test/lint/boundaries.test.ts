/**
 * The dependency directions eslint.config.js enforces, proved on small snippets placed at paths of the tree (they
 * exist only in memory): each forbidden import is reported, and its allowed counterpart is not. The real config is
 * used, with type information off and only the boundary rules on, so that a snippet needs no file on disk.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { ESLint } from 'eslint';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BOUNDARY_RULES: ReadonlySet<string> = new Set(['no-restricted-imports', 'no-restricted-syntax', 'no-restricted-properties']);

const eslint = new ESLint({
  cwd: ROOT,
  overrideConfig: { languageOptions: { parserOptions: { projectService: false } } },
  ruleFilter: ({ ruleId }) => BOUNDARY_RULES.has(ruleId),
});

/** What the boundary rules report for `code` placed at `path` (relative to the repository). */
async function violations(path: string, code: string): Promise<{ ruleId: string | null; message: string }[]> {
  const [result] = await eslint.lintText(code, { filePath: `${ROOT}${path}` });
  assert.ok(result !== undefined);
  // A parse error or an ignored file would make a forbidden import look allowed.
  assert.deepEqual(result.messages.filter((m) => m.fatal === true), [], `${path} did not lint`);
  assert.equal(result.warningCount + result.errorCount, result.messages.length);
  return result.messages.map(({ ruleId, message }) => ({ ruleId, message }));
}

async function assertForbidden(path: string, code: string, reason: RegExp): Promise<void> {
  const found = await violations(path, code);
  assert.equal(found.length, 1, `${path}: ${code}\n${JSON.stringify(found)}`);
  assert.match(found[0]?.message ?? '', reason, `${path}: ${code}`);
}

async function assertAllowed(path: string, code: string): Promise<void> {
  assert.deepEqual(await violations(path, code), [], `${path}: ${code}`);
}

describe('shared/ imports neither plane', () => {
  test('a value or a type from the data plane or the control plane is reported', async () => {
    await assertForbidden('shared/x.ts', "import { startDataPlane } from '../data-plane/data-plane.ts';\n", /shared\/ is used by both planes/);
    await assertForbidden('shared/schema/x.ts', "import type { ResourceStore } from '../../control-plane/store/resource-store.ts';\n", /imports neither/);
    await assertForbidden('shared/x.ts', "export { createApp } from '../control-plane/app.ts';\n", /imports neither/);
  });

  test('shared/ importing shared/ is fine', async () => {
    await assertAllowed('shared/x.ts', "import { GrpcStatus } from './grpc-status.ts';\n");
  });
});

describe('the planes never import each other', () => {
  test('data plane → control plane and control plane → data plane are reported, types included', async () => {
    await assertForbidden('data-plane/proxy/x.ts', "import { createApp } from '../../control-plane/app.ts';\n", /data plane never imports the control plane/);
    await assertForbidden('data-plane/x.ts', "import type { ResourceStore } from '../control-plane/store/resource-store.ts';\n", /never imports the control plane/);
    await assertForbidden('control-plane/admin/x.ts', "import { startDataPlane } from '../../data-plane/data-plane.ts';\n", /control plane never imports the data plane/);
    await assertForbidden('control-plane/store/x.ts', "import type { Snapshot } from '../../data-plane/config/snapshots.ts';\n", /never imports the data plane/);
  });

  test('through import() too', async () => {
    await assertForbidden('data-plane/x.ts', "export const load = () => import('../control-plane/app.ts');\n", /never imports the control plane/);
    await assertForbidden('data-plane/x.ts', 'export const load = (name: string) => import(name);\n', /string literal/);
  });

  test('a plane importing itself and shared/ is fine', async () => {
    await assertAllowed('data-plane/proxy/x.ts', "import { describe } from '../../shared/errors.ts';\nimport { rstName } from './rst-codes.ts';\n");
    await assertAllowed('data-plane/x.ts', "export const load = () => import('./config/create-source.ts');\n");
    await assertAllowed('control-plane/admin/x.ts', "import { createApp } from '../app.ts';\n");
  });
});

describe('etcd3 only where the etcd connection is owned', () => {
  const code = "import { Etcd3 } from 'etcd3';\n";

  test('elsewhere in the planes and in shared/ it is reported, import() included', async () => {
    await assertForbidden('data-plane/proxy/x.ts', code, /etcd3 is loaded only by/);
    await assertForbidden('data-plane/config/yaml-source.ts', code, /etcd3 is loaded only by/);
    await assertForbidden('control-plane/app.ts', code, /etcd3 is loaded only by/);
    await assertForbidden('shared/x.ts', "import type { IOptions } from 'etcd3';\n", /etcd3 is loaded only by/);
    await assertForbidden('data-plane/workers.ts', "export const load = () => import('etcd3');\n", /etcd3 is loaded only by/);
  });

  test('in control-plane/store/, data-plane/config/etcd-source.ts and the tests it is fine', async () => {
    await assertAllowed('control-plane/store/etcd-member.ts', code);
    await assertAllowed('data-plane/config/etcd-source.ts', code);
    await assertAllowed('test/x.test.ts', code);
    await assertAllowed('bench/x.ts', code);
  });
});

describe('fastify only in the control plane', () => {
  test('in the data plane and shared/ it is reported, @fastify/* too', async () => {
    await assertForbidden('data-plane/status-server.ts', "import Fastify from 'fastify';\n", /fastify serves the Admin API/);
    await assertForbidden('data-plane/x.ts', "import swagger from '@fastify/swagger';\n", /only control-plane\/ imports it/);
    await assertForbidden('shared/x.ts', "import type { FastifyInstance } from 'fastify';\n", /only control-plane\/ imports it/);
  });

  test('in the control plane it is fine', async () => {
    await assertAllowed('control-plane/app.ts', "import Fastify from 'fastify';\nimport swagger from '@fastify/swagger';\n");
  });
});

describe('node:http2 values only in its engine adapter', () => {
  test('a value import elsewhere in the data plane is reported, with or without the node: prefix', async () => {
    await assertForbidden('data-plane/proxy/x.ts', "import { constants } from 'node:http2';\n", /node:http2 values are used only by its engine adapter/);
    await assertForbidden('data-plane/limits/x.ts', "import http2, { type Http2Session } from 'node:http2';\n", /engine adapter/);
    await assertForbidden('data-plane/x.ts', "import { connect } from 'http2';\n", /engine adapter/);
  });

  test('type-only imports in the data plane are fine, and values in listeners.ts and upstream/pool.ts', async () => {
    await assertAllowed('data-plane/proxy/x.ts', "import type { ServerHttp2Stream } from 'node:http2';\n");
    await assertAllowed('data-plane/proxy/y.ts', "import { type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';\n");
    await assertAllowed('data-plane/listeners.ts', "import http2, { type Http2Server } from 'node:http2';\n");
    await assertAllowed('data-plane/upstream/pool.ts', "import http2, { constants } from 'node:http2';\n");
  });

  test('outside the data plane even its types are reported', async () => {
    await assertForbidden('shared/x.ts', "import type { Settings } from 'node:http2';\n", /belongs to the data plane's engine adapter/);
    await assertForbidden('control-plane/x.ts', "import http2 from 'node:http2';\n", /belongs to the data plane's engine adapter/);
  });
});

describe('process.env only in shared/config.ts', () => {
  test('reading it in the planes or elsewhere in shared/ is reported, however it is reached', async () => {
    await assertForbidden('data-plane/x.ts', 'export const port = process.env.PORT;\n', /read only in shared\/config\.ts/);
    await assertForbidden('data-plane/proxy/x.ts', "export const level = process.env['LOG_LEVEL'];\n", /read only in shared\/config\.ts/);
    await assertForbidden('control-plane/x.ts', 'const { env } = process;\nexport const home = env.HOME;\n', /read only in shared\/config\.ts/);
    await assertForbidden('shared/logger.ts', "import { env } from 'node:process';\nexport const level = env.LEVEL;\n", /read only in shared\/config\.ts/);
    await assertForbidden('data-plane/x.ts', 'export const home = globalThis.process.env.HOME;\n', /use `process` directly/);
  });

  test('shared/config.ts, the tests, scripts, bench and examples may read it', async () => {
    const code = "export const port = process.env['PORT'];\n";
    await assertAllowed('shared/config.ts', code);
    await assertAllowed('test/x.test.ts', code);
    await assertAllowed('scripts/x.ts', code);
    await assertAllowed('bench/x.ts', code);
    await assertAllowed('examples/x.ts', code);
  });

  test('other properties of process are fine', async () => {
    await assertAllowed('data-plane/x.ts', 'export const pid = process.pid;\nexport const argv = process.argv;\n');
  });
});
