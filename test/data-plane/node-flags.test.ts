import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { dataPlaneNodeFlags, missingDataPlaneNodeFlags, withDataPlaneNodeFlags } from '../../data-plane/node-flags.ts';

test('no flags before Node 24, whose V8 rejects them', () => {
  assert.deepEqual(dataPlaneNodeFlags('20.20.2'), []);
  assert.deepEqual(dataPlaneNodeFlags('22.23.3'), []);
  assert.deepEqual(withDataPlaneNodeFlags(['--import', 'tsx'], '22.1.0'), ['--import', 'tsx']);
});

test('from Node 24: external memory in the global limit, a 128 MiB initial old generation, 8 MiB semi-spaces', () => {
  assert.deepEqual(dataPlaneNodeFlags('24.21.0'), ['--external-memory-accounted-in-global-limit', '--initial-old-space-size=128', '--max-semi-space-size=8']);
  assert.deepEqual(dataPlaneNodeFlags('26.0.0'), dataPlaneNodeFlags('24.0.0'));
});

test('only missing flags are added, compared by name, before the rest', () => {
  assert.deepEqual(withDataPlaneNodeFlags(['--import', 'tsx'], '24.1.0'), [
    '--external-memory-accounted-in-global-limit',
    '--initial-old-space-size=128',
    '--max-semi-space-size=8',
    '--import',
    'tsx',
  ]);
  assert.deepEqual(withDataPlaneNodeFlags(['--initial_old_space_size=512', '--external-memory-accounted-in-global-limit'], '24.1.0'), [
    '--max-semi-space-size=8',
    '--initial_old_space_size=512',
    '--external-memory-accounted-in-global-limit',
  ]);
  assert.deepEqual(missingDataPlaneNodeFlags(['--initial-old-space-size=64', '--max-semi-space-size=32'], '24.1.0'), ['--external-memory-accounted-in-global-limit']);
});

test('this Node accepts the flags it is given', () => {
  const flags = dataPlaneNodeFlags();
  const run = spawnSync(process.execPath, [...flags, '-e', 'process.stdout.write("ok")'], { encoding: 'utf8' });
  assert.equal(run.stderr, '');
  assert.equal(run.stdout, 'ok');
});
