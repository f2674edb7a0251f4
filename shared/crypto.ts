/**
 * Private keys at rest, encrypted exactly as APISIX does it (apisix/ssl.lua `aes_encrypt_pkey`,
 * `init_iv_tbl`), so etcd content written by this gateway and by APISIX can be read by either:
 *
 * - the keyring is `apisix.data_encryption.keyring`; each entry is used as both the AES key and the IV (resty.aes
 *   `{iv = key}`): a 16-byte entry selects AES-128-CBC, a 32-byte entry AES-256-CBC with its first 16 bytes as IV;
 * - encryption uses the first entry, PKCS#7 padding, and stores standard base64;
 * - a value that starts with `---` is a plain PEM and is never encrypted twice nor "decrypted";
 * - decryption tries every entry in order, so a new key can be put first while old values still read.
 *
 * APISIX accepts the first entry whose padding happens to check out (1 in 256 for a wrong key). A PEM private key
 * is accepted only if the decryption yields PEM text. The other secret, a consumer's `key-auth` key (APISIX's
 * `encrypt_fields`), is any text: it is always encrypted when written, and a stored value counts as encrypted when
 * an entry decrypts it to printable text (a wrong key does so about once in 10^7 for a 16-byte value); one that no
 * entry decrypts is taken as written in clear, as APISIX does.
 *
 * Which fields are secret, per resource type, is SECRET_FIELDS: the admin API encrypts them before writing and
 * never returns them; the data plane decrypts them after reading, before validation.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { ResourceType } from './etcd-keys.ts';
import { SecretDecryptFailed } from './errors.ts';

export type Keyring = readonly string[];

/** AES-CBC's block (and IV) size. */
const IV_BYTES = 16;
const CIPHERS: ReadonlyMap<number, string> = new Map([
  [16, 'aes-128-cbc'],
  [32, 'aes-256-cbc'],
]);
/** What APISIX looks for to tell a plain PEM from an encrypted value (`core.string.has_prefix(origin, "---")`). */
const PLAIN_PREFIX = '---';

/** limit-count's Redis password, wherever plugins are configured. */
const REDIS_PASSWORD: readonly string[] = ['plugins', 'limit-count', 'redis_password'];

/**
 * Private-key fields of each resource type, as paths into its value; a path ending at an array covers its
 * strings. APISIX encrypts `ssl.key`, `ssl.keys[]` and `upstream.tls.client_key` (also inline in routes and
 * services), and the plugins' `encrypt_fields` (key-auth's `key`, jwt-auth's `secret`, limit-count's
 * `redis_password`).
 */
export const SECRET_FIELDS: { readonly [K in ResourceType]: readonly (readonly string[])[] } = {
  routes: [['upstream', 'tls', 'client_key'], REDIS_PASSWORD],
  upstreams: [['tls', 'client_key']],
  services: [['upstream', 'tls', 'client_key'], REDIS_PASSWORD],
  ssls: [['key'], ['keys']],
  consumers: [['plugins', 'key-auth', 'key'], ['plugins', 'jwt-auth', 'secret']],
  consumer_groups: [REDIS_PASSWORD],
  global_rules: [REDIS_PASSWORD],
  plugin_configs: [REDIS_PASSWORD],
  plugin_metadata: [],
  protos: [],
};

/** The secret fields that hold any text rather than a PEM private key (see above), as `path.join('.')`. */
const TEXT_SECRETS: ReadonlySet<string> = new Set(['plugins.key-auth.key', 'plugins.jwt-auth.secret', 'plugins.limit-count.redis_password']);
/** Printable text, no control characters: what a decrypted text secret must be. */
const PRINTABLE = /^[^\p{Cc}\p{Cs}\uFFFD]+$/u;

/** Why a keyring entry cannot be used, or undefined when it can. */
export function keyringEntryProblem(entry: string): string | undefined {
  const bytes = Buffer.byteLength(entry, 'utf8');
  return CIPHERS.has(bytes) ? undefined : `must be 16 bytes (AES-128) or 32 bytes (AES-256), got ${bytes}`;
}

/** base64(AES-CBC(text)) with one keyring entry as key and IV: APISIX's `encrypt` of any field. */
export function aesEncrypt(text: string, entry: string): string {
  const cipher = createCipheriv(cipherName(entry), keyBytes(entry), ivBytes(entry));
  return Buffer.concat([cipher.update(text, 'utf8'), cipher.final()]).toString('base64');
}

/** The text of `aesEncrypt`'s output, or undefined when `entry` is not the key it was made with (bad padding). */
export function aesDecrypt(sealed: string, entry: string): string | undefined {
  try {
    const decipher = createDecipheriv(cipherName(entry), keyBytes(entry), ivBytes(entry));
    return Buffer.concat([decipher.update(Buffer.from(sealed, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}

/** A plain PEM encrypted with the first keyring entry; unchanged when the keyring is empty or it is not plain. */
export function encryptSecret(value: string, keyring: Keyring): string {
  const entry = keyring[0];
  if (entry === undefined || !value.startsWith(PLAIN_PREFIX)) return value;
  return aesEncrypt(value, entry);
}

/** The plain PEM of a value stored encrypted (or already plain); throws SecretDecryptFailed if no entry fits. */
export function decryptSecret(value: string, keyring: Keyring, field = 'key'): string {
  if (value.startsWith(PLAIN_PREFIX)) return value;
  for (const entry of keyring) {
    if (keyringEntryProblem(entry) !== undefined) continue;
    const plain = aesDecrypt(value, entry);
    // A wrong key passes the padding check 1 time in 256: only PEM text counts as a decryption.
    if (plain?.startsWith(PLAIN_PREFIX) === true) return plain;
  }
  throw new SecretDecryptFailed(field, keyring.length);
}

/** A text secret encrypted with the first entry (as written: with no keyring, or when it is empty). */
export function encryptText(value: string, keyring: Keyring): string {
  const entry = keyring[0];
  if (entry === undefined || value === '') return value;
  return aesEncrypt(value, entry);
}

/** The text of a stored text secret: decrypted by the first entry that yields printable text, else as stored. */
export function decryptText(value: string, keyring: Keyring): string {
  for (const entry of keyring) {
    if (keyringEntryProblem(entry) !== undefined) continue;
    const plain = aesDecrypt(value, entry);
    if (plain !== undefined && PRINTABLE.test(plain)) return plain;
  }
  return value;
}

/** A copy of `value` with every secret field of `type` encrypted (plain PEMs, and text secrets). */
export function encryptSecrets(type: ResourceType, value: unknown, keyring: Keyring): unknown {
  return mapSecrets(type, value, (text, path) => (TEXT_SECRETS.has(path.join('.')) ? encryptText(text, keyring) : encryptSecret(text, keyring)));
}

/** A copy of `value` with every secret field of `type` in clear; throws SecretDecryptFailed naming the field. */
export function decryptSecrets(type: ResourceType, value: unknown, keyring: Keyring): unknown {
  return mapSecrets(type, value, (text, path) => {
    const field = path.join('.');
    return TEXT_SECRETS.has(field) ? decryptText(text, keyring) : decryptSecret(text, keyring, field);
  });
}

/** A copy of `value` without its secret fields: what the admin API returns (APISIX strips `key` and `keys`). */
export function stripSecrets(type: ResourceType, value: unknown): unknown {
  let result = value;
  for (const path of SECRET_FIELDS[type]) result = updateAt(result, path, 0, () => undefined);
  return result;
}

function mapSecrets(type: ResourceType, value: unknown, fn: (text: string, path: readonly string[]) => string): unknown {
  let result = value;
  for (const path of SECRET_FIELDS[type]) {
    result = updateAt(result, path, 0, (leaf) => {
      if (typeof leaf === 'string') return fn(leaf, path);
      if (Array.isArray(leaf)) return leaf.map((item: unknown) => (typeof item === 'string' ? fn(item, path) : item));
      return leaf;
    });
  }
  return result;
}

/** Copy-on-write update of the leaf at `path`; `undefined` from `update` removes the field. */
function updateAt(node: unknown, path: readonly string[], index: number, update: (leaf: unknown) => unknown): unknown {
  const field = path[index];
  if (field === undefined || !isRecord(node) || !Object.hasOwn(node, field)) return node;
  const child = node[field];
  const next = index === path.length - 1 ? update(child) : updateAt(child, path, index + 1, update);
  if (next === child) return node;
  const copy: Record<string, unknown> = { ...node };
  if (next === undefined) delete copy[field];
  else copy[field] = next;
  return copy;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function cipherName(entry: string): string {
  const name = CIPHERS.get(Buffer.byteLength(entry, 'utf8'));
  if (name === undefined) throw new RangeError(`keyring entry ${keyringEntryProblem(entry) ?? ''}`);
  return name;
}

function keyBytes(entry: string): Buffer {
  return Buffer.from(entry, 'utf8');
}

function ivBytes(entry: string): Buffer {
  return keyBytes(entry).subarray(0, IV_BYTES);
}
