/**
 * Text with APISIX's `$variables` in it (`proxy-rewrite`'s `uri` and header values), parsed once: at admin-write
 * time to refuse an unknown variable, and when a snapshot is built, so a call only joins the parts.
 *
 * The syntax is APISIX's (core.utils.resolve_var): `$name` (letters, digits, `_` and `.`), or `${name}`, which ends
 * a name before text that would continue it, with an optional default, `${name ?? text}`, used when the variable
 * is absent. A `$` preceded by `\`, or followed by nothing that can start a name, is text as written. The variables
 * are the ones the gateway knows (shared/limit-key.ts): `remote_addr`, `consumer_name`, `http_<header>`, …; in a
 * header value, `$1`, `${2}` … are `regex_uri`'s captures (empty without one), as in APISIX. Each part is
 * substituted once: a value that itself contains `$` is never read again as a variable.
 */
import { variablePart, type LimitKeyPart } from './limit-key.ts';

/** A variable the gateway knows. */
export type VariableRef = Exclude<LimitKeyPart, { readonly text: string }>;

export type TemplatePart =
  | { readonly text: string }
  | { readonly ref: VariableRef; readonly fallback: string | undefined }
  | { readonly capture: number };

/** APISIX's pattern, with its two forms: `${ name }` (group 1) and `$name` (group 2). */
const VARIABLE = /(?<!\\)\$(?:\{\s*([^}]*?)\s*\}|([\w.]+))/g;
const DEFAULT_SEPARATOR = /\s*\?\?\s*/;
const CAPTURE = /^\d+$/;

/**
 * The parts of `text`, or a message naming the first unknown variable. `captures`: `$1`… are regex_uri captures
 * (header values); otherwise a number is an unknown variable (`uri`). `where` names the field in the message.
 */
export function parseTemplate(text: string, captures: boolean, where: string): TemplatePart[] | string {
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const match of text.matchAll(VARIABLE)) {
    const inner = match[1] ?? match[2] ?? '';
    const [name = '', fallback] = match[1] === undefined ? [inner] : inner.split(DEFAULT_SEPARATOR, 2);
    let part: TemplatePart;
    if (captures && CAPTURE.test(name)) part = { capture: Number(name) };
    else {
      const ref = variablePart(name);
      if (ref === undefined) {
        const hint = name.includes('.') ? ' (write ${name} where text follows a name: `.` may be part of one)' : '';
        return `unknown variable "${match[0]}" in ${where}${hint}`;
      }
      part = { ref, fallback };
    }
    if (match.index > last) parts.push({ text: text.slice(last, match.index) });
    parts.push(part);
    last = match.index + match[0].length;
  }
  if (last < text.length) parts.push({ text: text.slice(last) });
  return parts;
}

/** The text itself when it has no variable (the common case: nothing to do per call). */
export function literalOf(parts: readonly TemplatePart[]): string | undefined {
  if (parts.length === 0) return '';
  if (parts.length === 1) {
    const only = parts[0] as TemplatePart;
    if ('text' in only) return only.text;
  }
  return undefined;
}
