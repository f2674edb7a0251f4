/**
 * Field syntax of RFC 9113 §8.2.1. The HPACK decoder checks every literal it decodes (hpack.ts: a block with an
 * invalid field is reported `malformed`), so a request whose fields come from the tables is not scanned again.
 */

/** §8.2.1: lowercase, no separators or controls (token characters), non-empty. */
export function validFieldName(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || (c >= 0x41 && c <= 0x5a)) return false;
    if (c === 0x3a /* ':' */ && i > 0) return false;
  }
  return true;
}

/** §8.2.1: no NUL, CR or LF; no leading or trailing whitespace. */
export function validFieldValue(value: string): boolean {
  const n = value.length;
  if (n === 0) return true;
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(n - 1);
  if (first === 0x20 || first === 0x09 || last === 0x20 || last === 0x09) return false;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d) return false;
  }
  return true;
}

/** The value of the first field called `name` in a flat name, value list (the engine's header lists). */
export function fieldValue(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}
