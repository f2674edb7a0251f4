/**
 * The conformance suite's result as a markdown table, case × combination (docs/conformance.md). The test file records
 * every test's outcome here; when `CONFORMANCE_TABLE=<path>` is set, its after() hook writes the table there:
 *
 *   CONFORMANCE_TABLE=conformance.md node --test test/conformance/interop.test.ts
 *
 * Not a test itself (no `.test.ts`), and nothing is written without the variable.
 */
import { writeFile } from 'node:fs/promises';

export type Result = { outcome: 'pass'; ms: number } | { outcome: 'fail'; ms: number; error: string };

const MARK = { pass: '✅', fail: '❌', missing: '–' } as const;

export class ResultsTable {
  readonly #cases: readonly string[];
  readonly #combinations: readonly string[];
  readonly #results = new Map<string, Result>();

  constructor(cases: readonly string[], combinations: readonly string[]) {
    this.#cases = cases;
    this.#combinations = combinations;
  }

  record(testCase: string, combination: string, result: Result): void {
    this.#results.set(key(testCase, combination), result);
  }

  /** One row per case, one column per combination; failures listed under the table with their first line. */
  toMarkdown(): string {
    const header = `| case | ${this.#combinations.join(' | ')} |`;
    const rule = `|---|${this.#combinations.map(() => ':-:').join('|')}|`;
    const rows = this.#cases.map((testCase) => {
      const cells = this.#combinations.map((combination) => {
        const result = this.#results.get(key(testCase, combination));
        return result === undefined ? MARK.missing : MARK[result.outcome];
      });
      return `| ${testCase} | ${cells.join(' | ')} |`;
    });
    const failures: string[] = [];
    for (const testCase of this.#cases) {
      for (const combination of this.#combinations) {
        const result = this.#results.get(key(testCase, combination));
        if (result?.outcome === 'fail') {
          failures.push(`- ${testCase} via ${combination}: ${firstLine(result.error)}`);
        }
      }
    }
    const passed = [...this.#results.values()].filter((r) => r.outcome === 'pass').length;
    const total = this.#cases.length * this.#combinations.length;
    return [
      header,
      rule,
      ...rows,
      '',
      `${passed} of ${total} passed.`,
      ...(failures.length === 0 ? [] : ['', 'Failures:', '', ...failures]),
      '',
    ].join('\n');
  }

  /** Writes the table to `path`; does nothing when `path` is undefined or empty. */
  async writeTo(path: string | undefined): Promise<void> {
    if (path === undefined || path === '') return;
    await writeFile(path, this.toMarkdown());
  }
}

/** Where the table goes: the CONFORMANCE_TABLE variable, read here and only here. */
export function tablePathFromEnv(): string | undefined {
  return process.env.CONFORMANCE_TABLE;
}

function key(testCase: string, combination: string): string {
  return `${testCase}\u0000${combination}`;
}

function firstLine(text: string): string {
  const line = text.split('\n').find((l) => l.trim() !== '') ?? text;
  return line.replace(/\|/g, '\\|').slice(0, 300);
}
