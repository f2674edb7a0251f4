/**
 * `proxy-rewrite`'s `regex_uri`: `[regex, replacement, regex, replacement, …]`, tried in order on the client's
 * `:path`; the first regex that matches has its first match replaced (ngx.re.sub, as APISIX does), and the others
 * are not tried. No match: the path goes upstream as the client sent it. Parsed once, at admin-write time (a regex
 * that does not compile, or is refused by shared/safe-regex.ts, or a replacement naming a group the regex does not
 * have, is a 400) and when a snapshot is built.
 *
 * A replacement is ngx.re.sub's template: `$0` the whole match, `$1`… or `${1}`… a group (empty when the group did
 * not take part), `$$` a `$`; any other `$` is an error, as in nginx (APISIX's variables are not read here).
 */
import { compileSafeRegex, safeExec, type SafeRegex } from './safe-regex.ts';

/** Text, or the number of the group whose text goes there. */
export type ReplacementPart = string | number;

export interface RegexUriRule {
  readonly pattern: SafeRegex;
  readonly replacement: readonly ReplacementPart[];
}

/** The rewritten path and the match's captures (for header values' `$1`…); 'too long' when a regex may not run. */
export type RegexUriResult = { readonly path: string; readonly captures: readonly (string | undefined)[] } | 'too long' | undefined;

const TEMPLATE_DOLLAR = /\$(?:(\d+)|\{(\d+)\}|(\$))/y;

/** The rules, or a message in APISIX's words (`invalid regex_uri(…): …`). */
export function parseRegexUri(list: readonly string[]): RegexUriRule[] | string {
  if (list.length % 2 !== 0) return 'The length of regex_uri should be an even number';
  const rules: RegexUriRule[] = [];
  for (let i = 0; i < list.length; i += 2) {
    const source = list[i] as string;
    const template = list[i + 1] as string;
    const pattern = compileSafeRegex(source);
    if (typeof pattern === 'string') return `invalid regex_uri(${source}, ${template}): ${pattern}`;
    const replacement = parseReplacement(template, pattern.groups);
    if (typeof replacement === 'string') return `invalid regex_uri(${source}, ${template}): ${replacement}`;
    rules.push({ pattern, replacement });
  }
  return rules;
}

/** `path` rewritten by the first rule that matches it; undefined when none does. */
export function applyRegexUri(rules: readonly RegexUriRule[], path: string): RegexUriResult {
  for (const rule of rules) {
    if (path.length > rule.pattern.maxSubject) return 'too long';
    const match = safeExec(rule.pattern, path);
    if (match === null) continue;
    let replaced = '';
    for (const part of rule.replacement) replaced += typeof part === 'string' ? part : (match[part] ?? '');
    return { path: path.slice(0, match.index) + replaced + path.slice(match.index + match[0].length), captures: match };
  }
  return undefined;
}

function parseReplacement(template: string, groups: number): ReplacementPart[] | string {
  const parts: ReplacementPart[] = [];
  let text = '';
  let i = 0;
  while (i < template.length) {
    const dollar = template.indexOf('$', i);
    if (dollar < 0) {
      text += template.slice(i);
      break;
    }
    text += template.slice(i, dollar);
    TEMPLATE_DOLLAR.lastIndex = dollar;
    const m = TEMPLATE_DOLLAR.exec(template);
    if (m === null) return `"$" at ${dollar} must be followed by a group number, {number} or "$"`;
    if (m[3] !== undefined) text += '$';
    else {
      const group = Number(m[1] ?? m[2]);
      if (group > groups) return `the replacement names group $${group}, the regex has ${groups}`;
      if (text !== '') parts.push(text);
      text = '';
      parts.push(group);
    }
    i = dollar + m[0].length;
  }
  if (text !== '') parts.push(text);
  return parts;
}
