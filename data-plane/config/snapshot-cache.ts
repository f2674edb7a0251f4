/**
 * The etcd config source's local cache (`deployment.etcd.snapshot_cache`): the raw key-values of the last complete
 * state read from etcd, written atomically (temp file + rename, mode 0600), so that a data plane that starts while
 * etcd is unreachable can serve that configuration, marked `config_stale`, until etcd answers.
 *
 * Values are kept exactly as etcd holds them: private keys stay encrypted with the keyring, and the file is decoded
 * and validated like a range read when it is used. A cache written for another etcd prefix is not used.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { RawKeyValue } from './config-state.ts';

const CACHE_VERSION = 1;

export interface CachedConfig {
  revision: string;
  clusterId: string | undefined;
  kvs: RawKeyValue[];
  /** When the cache was written (epoch ms). */
  writtenAt: number;
}

interface CacheFile {
  version: number;
  prefix: string;
  revision: string;
  clusterId: string | null;
  writtenAt: number;
  /** [key, value (utf-8), mod_revision] */
  kvs: [string, string, string][];
}

export async function writeSnapshotCache(
  file: string,
  prefix: string,
  snapshot: { revision: string; clusterId: string | undefined; kvs: Iterable<RawKeyValue> },
): Promise<void> {
  const body: CacheFile = {
    version: CACHE_VERSION,
    prefix,
    revision: snapshot.revision,
    clusterId: snapshot.clusterId ?? null,
    writtenAt: Date.now(),
    kvs: [...snapshot.kvs].map((kv) => [kv.key.toString(), kv.value.toString('utf8'), kv.mod_revision]),
  };
  await mkdir(dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify(body), { mode: 0o600 });
  await rename(temp, file);
}

/** The cache for `prefix`, or the reason there is none usable (missing, unreadable, another prefix). */
export async function readSnapshotCache(file: string, prefix: string): Promise<CachedConfig | string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no cache file' : `cannot read it: ${(err as Error).message}`;
  }
  let body: Partial<CacheFile>;
  try {
    body = JSON.parse(text) as Partial<CacheFile>;
  } catch {
    return 'it is not valid JSON';
  }
  if (body.version !== CACHE_VERSION || !Array.isArray(body.kvs) || typeof body.revision !== 'string') return 'unknown format';
  if (body.prefix !== prefix) return `it was written for etcd prefix ${String(body.prefix)}, not ${prefix}`;
  const kvs: RawKeyValue[] = [];
  // The file's JSON is only checked here: its entries are unknown until then.
  for (const entry of body.kvs as unknown[]) {
    if (!isStringTriple(entry)) return 'unknown format';
    kvs.push({ key: Buffer.from(entry[0]), value: Buffer.from(entry[1], 'utf8'), mod_revision: entry[2] });
  }
  return { revision: body.revision, clusterId: body.clusterId ?? undefined, kvs, writtenAt: body.writtenAt ?? 0 };
}

function isStringTriple(value: unknown): value is [string, string, string] {
  return Array.isArray(value) && value.length === 3 && value.every((part) => typeof part === 'string');
}
