/** Standalone mode: being written (issue #5). */
import type { Keyring } from '../../shared/crypto.ts';
import type { Logger } from '../../shared/logger.ts';
import type { ConfigState } from './config-state.ts';
import type { ConfigSource } from './source.ts';

export interface YamlConfigSourceOptions {
  file: string;
  keyring?: Keyring;
  log: Logger;
  onChange: (state: ConfigState) => void;
  /** How often the file's mtime is checked; APISIX: every second. */
  pollMs?: number;
}

export function createYamlConfigSource(options: YamlConfigSourceOptions): ConfigSource {
  throw new Error(`standalone mode (${options.file}) is not implemented yet`);
}
