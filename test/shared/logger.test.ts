/**
 * Log lines are JSON for machines and readable for a person at a terminal: a process whose standard output is a pipe
 * writes one JSON object per line; one whose standard output is a terminal (here a pseudo-terminal from util-linux's
 * `script`, in Debian's essential bsdutils, as `npm start` in a shell has) writes pino-pretty's lines instead.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';

const LOGGER_URL = pathToFileURL(join(import.meta.dirname, '..', '..', 'shared', 'logger.ts')).href;
const dir = mkdtempSync(join(tmpdir(), 'logger-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const script = join(dir, 'log-lines.ts');
writeFileSync(
  script,
  `import { createLogger } from ${JSON.stringify(LOGGER_URL)};\n` +
    `createLogger({ level: 'info', name: 'data-plane' }).info({ port: 9081 }, 'gRPC listener ready');\n`,
);

describe('createLogger', () => {
  it('writes a JSON object per line when standard output is a pipe', () => {
    const out = execFileSync(process.execPath, [script], { encoding: 'utf8' });
    const line: unknown = JSON.parse(out.trim());
    assert.ok(typeof line === 'object' && line !== null);
    assert.equal((line as Record<string, unknown>)['msg'], 'gRPC listener ready');
    assert.equal((line as Record<string, unknown>)['port'], 9081);
  });

  it('writes readable lines when standard output is a terminal', () => {
    const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(script)}`;
    const out = execFileSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8' });
    assert.match(out, /INFO.*\(data-plane\/\d+\).*gRPC listener ready/);
    assert.match(out, /port.*9081/);
    assert.throws(() => JSON.parse(out.trim().split('\n')[0] ?? ''), SyntaxError);
  });
});
