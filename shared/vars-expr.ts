/**
 * APISIX's `vars` conditions (lua-resty-expr v1, as `fault-injection`'s `abort.vars` and `delay.vars` take them),
 * compiled once: at admin-write time to refuse what cannot work, and when a snapshot is built, so a call only reads
 * variables and compares.
 *
 * `vars` is a list of rules, and matches when one of them does (OR); a rule is a list of expressions, and matches
 * when all of them do (AND); an empty rule matches every call, an empty `vars` none (APISIX's behaviour). An
 * expression is `[variable, operator, value]`, `[variable, "!", operator, value]` (negated), or `[variable, value]`
 * (`==`). Variables are the gateway's (shared/limit-key.ts: `remote_addr`, `route_id`, `uri`, `http_<header>`, …);
 * a header that is absent has no value, which only `==`/`~=` with `null` test for, and every other comparison is
 * false for (as in APISIX). lua-resty-expr's nested logical rules (`["OR", …]`, `["!AND", …]`) are not supported.
 *
 * | operator | value | true when the variable … |
 * |---|---|---|
 * | `==`, `~=` | string, number or null | equals (does not equal) it; a number compares the variable as a number, null means absent |
 * | `>`, `>=`, `<`, `<=` | number (or numeric text) | is a number, and compares so |
 * | `~~`, `~*` | regex | matches it (`~*`: ignoring case); shared/safe-regex.ts bounds the cost |
 * | `in` | array of strings or numbers | is one of them (numbers as their decimal text) |
 * | `has` | string or number | read as a comma-separated list (`a, b, c`), has it as an element |
 * | `ipmatch` | IP, CIDR, or an array of them | is an address in one of the blocks |
 */
import { IpMatcher, parseIpBlock } from './ip-match.ts';
import { variablePart } from './limit-key.ts';
import { compileSafeRegex, safeTest } from './safe-regex.ts';
import type { VariableRef } from './variable-template.ts';

/** One expression, compiled: the variable it reads and the test of its value (undefined: absent). */
export interface VarsCondition {
  readonly ref: VariableRef;
  readonly test: (value: string | undefined) => boolean;
}

/** Rules (OR) of conditions (AND). */
export type CompiledVars = readonly (readonly VarsCondition[])[];

/** Values an `in` list or an `ipmatch` list may hold at most. */
const MAX_LIST = 4096;
const NOT = '!';
const LOGICAL = new Set(['and', 'or', '!and', '!or']);
const OPERATORS = new Set(['==', '~=', '>', '>=', '<', '<=', '~~', '~*', 'in', 'has', 'ipmatch']);
/** Lua's tonumber for what a variable holds: decimal (with exponent) or hex; nothing else is a number. */
const NUMERIC = /^\s*[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|0[xX][0-9a-fA-F]+)\s*$/;

/** `vars` compiled, or a message naming the expression that cannot be used (`abort.vars[0][1]: …`). */
export function compileVars(vars: readonly (readonly unknown[])[], where: string): CompiledVars | string {
  const rules: VarsCondition[][] = [];
  for (const [i, rule] of vars.entries()) {
    if (typeof rule[0] === 'string') {
      return LOGICAL.has(rule[0].toLowerCase())
        ? `${where}[${i}]: logical operators (AND, OR, !AND, !OR) are not supported: list the rules to OR them, the expressions of a rule to AND them`
        : `${where}[${i}]: rule should be wrapped inside brackets: [[variable, operator, value], …]`;
    }
    const conditions: VarsCondition[] = [];
    for (const [j, expression] of rule.entries()) {
      const compiled = compileExpression(expression);
      if (typeof compiled === 'string') return `${where}[${i}][${j}]: ${compiled}`;
      conditions.push(compiled);
    }
    rules.push(conditions);
  }
  return rules;
}

/** True when one rule has all its conditions true; `read` gives a variable's value for the call. */
export function matchVars(vars: CompiledVars, read: (ref: VariableRef) => string | undefined): boolean {
  for (const rule of vars) {
    let all = true;
    for (const condition of rule) {
      if (!condition.test(read(condition.ref))) {
        all = false;
        break;
      }
    }
    if (all) return true;
  }
  return false;
}

function compileExpression(expression: unknown): VarsCondition | string {
  if (!Array.isArray(expression)) return 'an expression is an array: [variable, operator, value]';
  const items = expression as unknown[];
  if (items.length < 2 || items.length > 4) return 'an expression is [variable, operator, value] or [variable, "!", operator, value]';
  const [name] = items;
  if (typeof name !== 'string') return 'the variable must be a string';
  const ref = variablePart(name);
  if (ref === undefined) return `unknown variable "${name}"`;
  let negate = false;
  let operator: unknown;
  let value: unknown;
  if (items.length === 4) {
    if (items[1] !== NOT) return `bad 'not' expression: the second item must be "!"`;
    negate = true;
    [, , operator, value] = items;
  } else if (items.length === 3) [, operator, value] = items;
  else {
    // [variable, value] is [variable, "==", value]; [variable, operator] compares with no value (null).
    const second = items[1];
    if (typeof second === 'string' && OPERATORS.has(second.toLowerCase())) [operator, value] = [second, null];
    else [operator, value] = ['==', second];
  }
  if (typeof operator !== 'string' || !OPERATORS.has(operator.toLowerCase())) return `invalid operator ${JSON.stringify(operator)}`;
  const test = compileTest(operator.toLowerCase(), value);
  if (typeof test === 'string') return `${operator}: ${test}`;
  return { ref, test: negate ? (v) => !test(v) : test };
}

type Test = (value: string | undefined) => boolean;

function compileTest(operator: string, value: unknown): Test | string {
  switch (operator) {
    case '==':
    case '~=': {
      const equals = equality(value);
      if (typeof equals === 'string') return equals;
      return operator === '==' ? equals : (v) => !equals(v);
    }
    case '>':
    case '>=':
    case '<':
    case '<=': {
      const bound = typeof value === 'number' ? value : typeof value === 'string' ? toNumber(value) : undefined;
      if (bound === undefined || !Number.isFinite(bound)) return 'the value must be a number';
      return ordering(operator, bound);
    }
    case '~~':
    case '~*': {
      if (typeof value !== 'string') return 'the value must be a regex, as a string';
      const re = compileSafeRegex(value, operator === '~*');
      if (typeof re === 'string') return re;
      return (v) => v !== undefined && safeTest(re, v);
    }
    case 'in': {
      if (!Array.isArray(value)) return 'the value must be an array of strings or numbers';
      const list = value as unknown[];
      if (list.length > MAX_LIST) return `at most ${MAX_LIST} values`;
      if (!list.every((item) => typeof item === 'string' || typeof item === 'number')) return 'the value must be an array of strings or numbers';
      const set = new Set(list.map(String));
      return (v) => v !== undefined && set.has(v);
    }
    case 'has': {
      if (typeof value !== 'string' && typeof value !== 'number') return 'the value must be a string or a number';
      const element = String(value);
      return (v) => v !== undefined && v.split(',').some((item) => item.trim() === element);
    }
    default: {
      // ipmatch
      const blocks = typeof value === 'string' ? [value] : Array.isArray(value) ? (value as unknown[]) : undefined;
      if (blocks === undefined || blocks.length === 0 || blocks.length > MAX_LIST) return 'the value must be an IP, a CIDR block, or a non-empty array of them';
      for (const block of blocks) {
        if (typeof block !== 'string' || parseIpBlock(block) === undefined) return `${JSON.stringify(block)} is not an IP address or CIDR block`;
      }
      const matcher = new IpMatcher(blocks as string[]);
      return (v) => v !== undefined && matcher.has(v);
    }
  }
}

/** `==` for a value of any type it takes: text compares as text, a number as a number, null means absent. */
function equality(value: unknown): Test | string {
  if (value === null) return (v) => v === undefined;
  if (typeof value === 'string') return (v) => v === value;
  if (typeof value === 'number') return (v) => v !== undefined && toNumber(v) === value;
  return 'the value must be a string, a number or null';
}

function ordering(operator: string, bound: number): Test {
  const compare = (n: number): boolean => (operator === '>' ? n > bound : operator === '>=' ? n >= bound : operator === '<' ? n < bound : n <= bound);
  return (v) => {
    if (v === undefined) return false;
    const n = toNumber(v);
    return n !== undefined && compare(n);
  };
}

function toNumber(text: string): number | undefined {
  if (!NUMERIC.test(text)) return undefined;
  const n = Number(text.trim());
  return Number.isNaN(n) ? undefined : n;
}
