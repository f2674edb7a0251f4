/**
 * Regular expressions that come from configuration (`fault-injection`'s `~~` / `~*` vars, `proxy-rewrite`'s
 * `regex_uri`) and run on what clients send (a header value, the `:path`). V8's engine backtracks, so a pattern can
 * cost exponential or high-polynomial time in the length of the text, and one call would then stall the event loop
 * of the whole process. Compiled once per configuration (admin write and snapshot build), never per call, with
 * these rules:
 *
 * - It must compile with the `u` flag: stricter syntax, so PCRE-only escapes that JavaScript would silently read
 *   differently (`\A`, `\z`, `\h`) are errors instead of literal letters. APISIX uses PCRE; most patterns mean the
 *   same in both.
 * - Exponential backtracking is refused: no backreference (`\1`, `\k<name>`), no repetition (`*`, `+`, `{n,m}`) of
 *   a group that itself contains a variable quantifier or an alternation (`(a+)+`, `(a|aa)*`; star height 1).
 * - Polynomial backtracking is bounded: the worst case of a pattern with k variable quantifiers (`?`, `*`, `+`,
 *   `{n,m}`) is about n^d steps on a text of n characters, with d = k, plus 1 when the pattern is not anchored with
 *   a leading `^` (it is then tried at every position). d may be at most MAX_DEGREE, and the text a pattern is run
 *   on is at most MAX_SUBJECT_BY_DEGREE[d] characters: about 3 million steps in the worst case (measured on Node 24:
 *   6 ms for `\d+\d+x` or `^(.*)(.*)(.*)x$` on 256 characters; the former takes 45 ms on 512, 23 s on 4096). A
 *   longer text does not match.
 *
 * V8's `--enable-experimental-regexp-engine-on-excessive-backtracks` would make every such pattern linear, but it is
 * a process-wide flag, and it does not apply to the `u` patterns used here.
 */

/** Longest pattern accepted. */
export const MAX_PATTERN_LENGTH = 1024;
/** Highest degree (variable quantifiers, plus 1 when unanchored) of an accepted pattern. */
export const MAX_DEGREE = 3;
/** The longest text a pattern of each degree is run on: n^d / d! stays near 3 million steps at most. */
export const MAX_SUBJECT_BY_DEGREE: readonly number[] = [4096, 4096, 1024, 256];

export interface SafeRegex {
  readonly regex: RegExp;
  /** The longest text it is run on (by its degree); a longer one never matches. */
  readonly maxSubject: number;
  /** Its capturing groups. */
  readonly groups: number;
}

/** `source` compiled under the rules above, or a message saying why it is refused. */
export function compileSafeRegex(source: string, caseInsensitive = false): SafeRegex | string {
  if (source.length > MAX_PATTERN_LENGTH) return `regex is longer than ${MAX_PATTERN_LENGTH} characters`;
  let regex: RegExp;
  try {
    regex = new RegExp(source, caseInsensitive ? 'iu' : 'u');
  } catch (err) {
    return `invalid regex "${source}": ${(err as Error).message}`;
  }
  const shape = scan(source);
  if (typeof shape === 'string') return `regex "${source}" ${shape}`;
  const degree = shape.quantifiers + (shape.anchored ? 0 : 1);
  if (degree > MAX_DEGREE) {
    return `regex "${source}" may backtrack too long: ${shape.quantifiers} variable quantifiers (at most ${MAX_DEGREE} with a leading ^, ${MAX_DEGREE - 1} without)`;
  }
  const groups = (new RegExp(`${source}|`, 'u').exec('')?.length ?? 1) - 1;
  return { regex, maxSubject: MAX_SUBJECT_BY_DEGREE[degree] ?? 0, groups };
}

/** `re` tested on `text`: false for a text longer than the pattern may be run on. */
export function safeTest(re: SafeRegex, text: string): boolean {
  return text.length <= re.maxSubject && re.regex.test(text);
}

/** `re` run on `text`: null when it does not match or the text is too long. */
export function safeExec(re: SafeRegex, text: string): RegExpExecArray | null {
  return text.length <= re.maxSubject ? re.regex.exec(text) : null;
}

interface Shape {
  quantifiers: number;
  anchored: boolean;
}

interface Group {
  /** It contains a variable quantifier or an alternation: repeating it could backtrack exponentially. */
  risky: boolean;
}

/**
 * One pass over a pattern that already compiled with the `u` flag (so its syntax is valid): counts its variable
 * quantifiers and finds backreferences and repeated risky groups. Character classes and escapes are skipped whole.
 */
function scan(source: string): Shape | string {
  const stack: Group[] = [{ risky: false }];
  let quantifiers = 0;
  let topLevelAlternation = false;
  /** What the next quantifier applies to: a group (with what it contained) or a single atom. */
  let last: Group | undefined;
  let i = 0;
  while (i < source.length) {
    const c = source[i] as string;
    if (c === '\\') {
      const next = source[i + 1] ?? '';
      if (/[1-9]/.test(next) || next === 'k') return 'uses a backreference';
      // \p{…}, \P{…}, \u{…}: skip the braces, which are no quantifier.
      i += (next === 'p' || next === 'P' || next === 'u') && source[i + 2] === '{' ? source.indexOf('}', i) + 1 - i : 2;
      last = undefined;
      continue;
    }
    if (c === '[') {
      i = classEnd(source, i);
      last = undefined;
      continue;
    }
    if (c === '(') {
      stack.push({ risky: false });
      i += groupPrefixLength(source, i);
      last = undefined;
      continue;
    }
    if (c === ')') {
      const closed = stack.pop() ?? { risky: false };
      const parent = stack[stack.length - 1];
      if (parent !== undefined && closed.risky) parent.risky = true;
      last = closed;
      i++;
      continue;
    }
    if (c === '|') {
      const current = stack[stack.length - 1];
      if (current !== undefined) current.risky = true;
      if (stack.length === 1) topLevelAlternation = true;
      last = undefined;
      i++;
      continue;
    }
    const quantifier = quantifierAt(source, i);
    if (quantifier !== undefined) {
      if (quantifier.variable) {
        quantifiers++;
        const current = stack[stack.length - 1];
        if (current !== undefined) current.risky = true;
      }
      if (last?.risky === true && quantifier.repeats) {
        return 'repeats a group that contains a quantifier or an alternation (exponential backtracking)';
      }
      last = undefined;
      i += quantifier.length;
      if (source[i] === '?') i++; // lazy: the same cost
      continue;
    }
    last = undefined;
    i++;
  }
  return { quantifiers, anchored: source.startsWith('^') && !topLevelAlternation };
}

/** The index after the character class opening at `start`. */
function classEnd(source: string, start: number): number {
  let i = start + 1;
  while (i < source.length && source[i] !== ']') i += source[i] === '\\' ? 2 : 1;
  return i + 1;
}

/** `(`, `(?:`, `(?=`, `(?!`, `(?<=`, `(?<!`, `(?<name>`, or a modifier group `(?i:`: how many characters it opens with. */
function groupPrefixLength(source: string, start: number): number {
  if (source[start + 1] !== '?') return 1;
  const after = source.slice(start + 2);
  if (after.startsWith('<=') || after.startsWith('<!')) return 4;
  if (after.startsWith('<')) return source.indexOf('>', start) + 1 - start;
  if (after.startsWith(':') || after.startsWith('=') || after.startsWith('!')) return 3;
  const colon = source.indexOf(':', start);
  return colon < 0 ? 2 : colon + 1 - start;
}

/**
 * The quantifier at `i`, if any: its length, whether it lets the atom match a variable number of times, and whether
 * it may repeat the atom more than once (so not `?` / `{0,1}`).
 */
function quantifierAt(source: string, i: number): { length: number; variable: boolean; repeats: boolean } | undefined {
  const c = source[i];
  if (c === '*' || c === '+') return { length: 1, variable: true, repeats: true };
  if (c === '?') return { length: 1, variable: true, repeats: false };
  if (c !== '{') return undefined;
  const m = /^\{(\d+)(,(\d*))?\}/.exec(source.slice(i));
  if (m === null) return undefined;
  const min = Number(m[1]);
  const max = m[2] === undefined ? min : m[3] === '' ? Number.POSITIVE_INFINITY : Number(m[3]);
  return { length: m[0].length, variable: max !== min, repeats: max > 1 };
}
