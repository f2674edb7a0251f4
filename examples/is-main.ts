/**
 * Whether a module is the program node was started with, so example files can be both imported (by tests) and run.
 * argv[1] is compared through realpath because Node resolves symlinks of the main module (no --preserve-symlinks-main).
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export function isMainModule(moduleUrl: string): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return moduleUrl === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}
