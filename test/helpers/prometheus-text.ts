/**
 * Reads a Prometheus text exposition (what a scrape of the data plane's status port returns) into samples, so
 * tests can assert exact counts per label set. Only what the gateway's exposition uses: `name{l="v",…} value`,
 * `# HELP`/`# TYPE` lines skipped, label values with \" \\ \n escapes.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    const space = line.lastIndexOf(' ');
    const name = brace === -1 ? line.slice(0, space) : line.slice(0, brace);
    const labels: Record<string, string> = {};
    if (brace !== -1) {
      const body = line.slice(brace + 1, line.lastIndexOf('}'));
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      for (let m = re.exec(body); m !== null; m = re.exec(body)) {
        labels[m[1] as string] = (m[2] as string).replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
      }
    }
    out.push({ name, labels, value: Number(line.slice(space + 1)) });
  }
  return out;
}

/** The samples of `name` whose labels include every pair of `match`. */
export function samplesOf(samples: readonly Sample[], name: string, match: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

/** The sum of the values of samplesOf(…). */
export function sumOf(samples: readonly Sample[], name: string, match: Record<string, string> = {}): number {
  return samplesOf(samples, name, match).reduce((sum, s) => sum + s.value, 0);
}

export async function scrape(statusAddress: string, path = '/apisix/prometheus/metrics'): Promise<Sample[]> {
  const res = await fetch(`http://${statusAddress}${path}`);
  if (res.status !== 200) throw new Error(`scrape ${path}: HTTP ${res.status}: ${await res.text()}`);
  return parseMetrics(await res.text());
}
