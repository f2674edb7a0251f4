/**
 * One version of a standalone file (APISIX's conf/apisix.yaml) parsed into items: `${{VAR}}` substitution, the
 * `#END` end flag, lists per resource type, `arr_<n>` ids, and indented PEM private keys trimmed. yaml-source.ts
 * polls the file and applies what this returns.
 */
import { parse as parseYaml } from 'yaml';
import { substituteEnv, type Env } from '../../shared/config.ts';
import { SECRET_FIELDS } from '../../shared/crypto.ts';
import { describe } from '../../shared/errors.ts';
import { isResourceType, type ResourceType } from '../../shared/etcd-keys.ts';

/** The last line of a complete file (APISIX's end flag). */
export const END_FLAG = '#END';
/** Items are handed to the ConfigStore under etcd's default key layout. */
export const KEY_PREFIX = '/apisix';
/** APISIX resources this gateway does not serve yet: ignored with an info line, not a warning. */
const IGNORED_APISIX_KEYS: ReadonlySet<string> = new Set([
  'plugins',
  'secrets',
  'stream_plugins',
  'stream_routes',
]);

interface StandaloneItem {
  type: ResourceType;
  id: string;
  json: string;
}

export type StandaloneParse =
  | { ok: true; items: StandaloneItem[]; ignored: string[]; unknown: string[]; problems: string[] }
  | { ok: false; reason: string };

/** Parses one version of the file; `ok: false` means the version must not be applied at all. */
export function parseStandalone(text: string, env: Env, file: string): StandaloneParse {
  if (!endsWithEndFlag(text)) return { ok: false, reason: `missing valid end flag in file ${file}` };
  let doc: unknown;
  try {
    doc = parseYaml(substituteEnv(text, env)) ?? {};
  } catch (err) {
    return { ok: false, reason: `invalid YAML in file ${file}: ${describe(err)}` };
  }
  if (!isRecord(doc)) return { ok: false, reason: `the top level of ${file} is not a mapping` };
  const items: StandaloneItem[] = [];
  const ignored: string[] = [];
  const unknown: string[] = [];
  const problems: string[] = [];
  for (const [name, value] of Object.entries(doc)) {
    if (isResourceType(name)) {
      if (value === null || value === undefined) continue;
      if (!Array.isArray(value)) return { ok: false, reason: `${name} in ${file} is not a list` };
      collectItems(name, value, items, problems);
    } else if (name.endsWith('_conf_version')) {
      continue; // APISIX's optional version stamps: nothing to do with them here
    } else if (IGNORED_APISIX_KEYS.has(name)) {
      ignored.push(name);
    } else {
      unknown.push(name);
    }
  }
  return { ok: true, items, ignored, unknown, problems };
}

function collectItems(type: ResourceType, list: readonly unknown[], items: StandaloneItem[], problems: string[]): void {
  const ids = new Set<string>();
  for (const [index, entry] of list.entries()) {
    const where = `${type}[${index}]`;
    // A consumer is named by its username, as in etcd (/apisix/consumers/<username>).
    const rawId = isRecord(entry) ? (type === 'consumers' ? entry['username'] : entry['id']) : undefined;
    let id: string;
    if (rawId === undefined || rawId === null) {
      id = `arr_${index + 1}`;
    } else if (typeof rawId === 'string' || typeof rawId === 'number') {
      id = String(rawId);
    } else {
      problems.push(`${where}: id must be a string or a number; item skipped`);
      continue;
    }
    if (id === '' || id.includes('/')) {
      problems.push(`${where}: id ${JSON.stringify(id)} cannot name an object; item skipped`);
    } else if (ids.has(id)) {
      problems.push(`${where}: duplicate id ${id}; the first item with it is kept`);
    } else {
      ids.add(id);
      items.push({ type, id, json: JSON.stringify(trimSecretIndent(type, entry)) });
    }
  }
}

/** True when the last non-blank line is `#END`: a file cut anywhere before its end lacks it. */
function endsWithEndFlag(text: string): boolean {
  const trimmed = text.trimEnd();
  return trimmed.slice(trimmed.lastIndexOf('\n') + 1).trim() === END_FLAG;
}

/**
 * A plain PEM in YAML is sometimes a quoted string that starts with a newline or spaces; decryptSecret takes a
 * value for plain only when it starts with `---`, so leading whitespace is dropped from private-key fields here.
 */
function trimSecretIndent(type: ResourceType, value: unknown): unknown {
  let result = value;
  for (const path of SECRET_FIELDS[type]) result = trimAt(result, path);
  return result;
}

function trimAt(node: unknown, path: readonly string[]): unknown {
  const [field, ...rest] = path;
  if (field === undefined || !isRecord(node) || !Object.hasOwn(node, field)) return node;
  const child = node[field];
  const next = rest.length > 0 ? trimAt(child, rest) : Array.isArray(child) ? child.map(trimPem) : trimPem(child);
  return next === child ? node : { ...node, [field]: next };
}

function trimPem(value: unknown): unknown {
  return typeof value === 'string' && value.trimStart().startsWith('---') ? value.trimStart() : value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
