/**
 * The Grafana dashboard in docs/grafana/grpc-gateway-dashboard.json, checked without Grafana: it has the shape of
 * an "Export for sharing externally" file (so Dashboards → Import takes it as is, asking only for the Prometheus
 * data source), its panels tile the 24-column grid, and every query names only metrics the gateway exports and
 * only variables the dashboard defines. A metric renamed in the data plane, or a panel pasted in with a
 * hard-coded data source, fails here instead of showing "No data" on someone's screen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DASHBOARD_PATH = fileURLToPath(new URL('../../docs/grafana/grpc-gateway-dashboard.json', import.meta.url));
const DS_UID = '${DS_PROMETHEUS}';

/**
 * Every series the gateway exports with the default `apisix_` prefix. The names are defined in
 * data-plane/observability/metrics.ts (`registry()`); histograms appear as their `_bucket`, `_sum` and `_count`
 * series. Keep this list in step with that file: a dashboard query for a name not listed here fails the test.
 */
const EXPORTED_METRICS: readonly string[] = [
  'apisix_http_status',
  ...histogram('apisix_http_latency'),
  'apisix_bandwidth',
  'apisix_grpc_status',
  'apisix_grpc_method_status',
  ...histogram('apisix_grpc_method_latency'),
  'apisix_http_requests_total',
  'apisix_etcd_reachable',
  'apisix_etcd_modify_indexes',
  'apisix_nginx_http_current_connections',
  'apisix_node_info',
  'apisix_upstream_status',
  'apisix_access_log_lines',
  'apisix_opentelemetry_spans',
  'apisix_metric_overflow_calls',
];

function histogram(name: string): string[] {
  return [`${name}_bucket`, `${name}_sum`, `${name}_count`];
}

/** The variables a dashboard query may use, beyond Grafana's own `$__…` ones. */
const FILTER_VARIABLES = ['route', 'service', 'node'] as const;

/** Words allowed to start a title in lower case, or to be capitalised mid-title. */
const PROPER_TERMS = new Set(['gRPC', 'etcd', 'HTTP', 'IP', 'UNAVAILABLE', 'DEADLINE_EXCEEDED', 'OK', 'APISIX', 'OpenTelemetry']);

interface GridPos { x: number; y: number; w: number; h: number }
interface Datasource { type?: string; uid?: string }
interface Target { expr?: unknown; datasource?: Datasource; refId?: string }
interface Panel {
  id?: unknown;
  type?: string;
  title?: string;
  gridPos?: GridPos;
  datasource?: Datasource | string | null;
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name?: string;
  type?: string;
  query?: unknown;
  definition?: string;
  datasource?: Datasource;
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string;
}
interface Dashboard {
  __inputs?: { name?: string; type?: string; pluginId?: string }[];
  __requires?: { type?: string; id?: string }[];
  uid?: string;
  title?: string;
  schemaVersion?: number;
  refresh?: string;
  time?: { from?: string; to?: string };
  panels?: Panel[];
  templating?: { list?: Variable[] };
}

const raw = readFileSync(DASHBOARD_PATH, 'utf8');

function load(): Dashboard {
  return JSON.parse(raw) as Dashboard;
}

/** Top-level panels plus those nested in collapsed rows. */
function allPanels(d: Dashboard): Panel[] {
  const out: Panel[] = [];
  for (const p of d.panels ?? []) {
    out.push(p);
    for (const child of p.panels ?? []) out.push(child);
  }
  return out;
}

function variables(d: Dashboard): Variable[] {
  return d.templating?.list ?? [];
}

/** A query variable's PromQL, whether stored as a string (older exports) or as `{ query }` (Grafana 10+). */
function variableQuery(v: Variable): string {
  if (typeof v.query === 'string') return v.query;
  if (typeof v.query === 'object' && v.query !== null && typeof (v.query as { query?: unknown }).query === 'string') {
    return (v.query as { query: string }).query;
  }
  return '';
}

/** Every PromQL string in the dashboard, labelled by where it is. */
function queries(d: Dashboard): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of allPanels(d)) {
    for (const t of p.targets ?? []) out.push({ where: `panel ${String(p.id)} "${String(p.title)}" target ${String(t.refId)}`, expr: typeof t.expr === 'string' ? t.expr : '' });
  }
  for (const v of variables(d)) {
    if (v.type === 'query') out.push({ where: `variable $${String(v.name)}`, expr: variableQuery(v) });
  }
  return out;
}

/** Null when every (, [ and { outside string literals is closed in order; otherwise what is wrong. */
function bracketError(expr: string): string | null {
  const closing: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  const stack: string[] = [];
  let quote: string | null = null;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i] as string;
    if (quote !== null) {
      if (c === '\\') i++;
      else if (c === quote) quote = null;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') quote = c;
    else if (c === '(' || c === '[' || c === '{') stack.push(c);
    else if (c in closing) {
      if (stack.pop() !== closing[c]) return `unexpected "${c}" at ${i}`;
    }
  }
  if (quote !== null) return `unterminated ${quote} string`;
  return stack.length === 0 ? null : `unclosed "${stack.join('')}"`;
}

/** Names of the variables an expression uses: $name, ${name}, ${name:format}, [[name]]; Grafana's `__` ones excluded. */
function usedVariables(expr: string): string[] {
  const names = new Set<string>();
  for (const m of expr.matchAll(/\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]/g)) {
    const name = (m[1] ?? m[2] ?? m[3]) as string;
    if (!name.startsWith('__')) names.add(name);
  }
  return [...names];
}

function overlaps(a: GridPos, b: GridPos): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

test('the dashboard file parses as JSON', () => {
  assert.doesNotThrow(() => JSON.parse(raw));
  const d: unknown = JSON.parse(raw);
  assert.equal(typeof d, 'object');
  assert.ok(d !== null && !Array.isArray(d));
});

test('it has the shape Grafana imports: __inputs with DS_PROMETHEUS, uid, title, schemaVersion, panels', () => {
  const d = load();
  const input = (d.__inputs ?? []).find((i) => i.name === 'DS_PROMETHEUS');
  assert.ok(input, '__inputs declares DS_PROMETHEUS');
  assert.equal(input.type, 'datasource');
  assert.equal(input.pluginId, 'prometheus');
  assert.equal(d.uid, 'grpc-gateway');
  assert.equal(d.title, 'gRPC gateway (APISIX-compatible)');
  assert.equal(typeof d.schemaVersion, 'number');
  assert.ok((d.schemaVersion as number) >= 36, `schemaVersion ${String(d.schemaVersion)} is at least 36`);
  assert.ok(Array.isArray(d.panels) && d.panels.length > 0, 'panels is a non-empty array');
  assert.deepEqual(d.time, { from: 'now-1h', to: 'now' });
  assert.equal(d.refresh, '10s');
});

test('__requires lists Grafana, the Prometheus data source and every panel type used', () => {
  const d = load();
  const requires = d.__requires ?? [];
  const has = (type: string, id: string): boolean => requires.some((r) => r.type === type && r.id === id);
  assert.ok(has('grafana', 'grafana'), 'requires grafana');
  assert.ok(has('datasource', 'prometheus'), 'requires the prometheus data source');
  for (const type of new Set(allPanels(d).map((p) => p.type))) {
    if (type === 'row' || type === undefined) continue;
    assert.ok(has('panel', type), `__requires lists panel type ${type}`);
  }
});

test('panel ids are unique', () => {
  const ids = allPanels(load()).map((p) => p.id);
  for (const id of ids) assert.ok(Number.isInteger(id) && (id as number) > 0, `panel id ${String(id)} is a positive integer`);
  const seen = new Set<unknown>();
  for (const id of ids) {
    assert.ok(!seen.has(id), `panel id ${String(id)} is used once`);
    seen.add(id);
  }
});

test('panels fit the 24-column grid and do not overlap', () => {
  const panels = load().panels ?? [];
  for (const p of panels) {
    const g = p.gridPos;
    assert.ok(g, `panel ${String(p.id)} has a gridPos`);
    for (const k of ['x', 'y', 'w', 'h'] as const) assert.ok(Number.isInteger(g[k]) && g[k] >= 0, `panel ${String(p.id)} gridPos.${k} is a whole number`);
    assert.ok(g.w > 0 && g.h > 0, `panel ${String(p.id)} has a size`);
    assert.ok(g.x + g.w <= 24, `panel ${String(p.id)} "${String(p.title)}" ends at column ${g.x + g.w} of 24`);
  }
  for (let i = 0; i < panels.length; i++) {
    for (let j = i + 1; j < panels.length; j++) {
      const a = panels[i] as Panel;
      const b = panels[j] as Panel;
      assert.ok(!overlaps(a.gridPos as GridPos, b.gridPos as GridPos), `panels "${String(a.title)}" and "${String(b.title)}" overlap`);
    }
  }
});

test('every panel and target uses the ${DS_PROMETHEUS} data source', () => {
  const d = load();
  for (const p of allPanels(d)) {
    // Rows hold no queries; Grafana exports them without a data source, or with the dashboard's.
    if (p.type === 'row' && p.datasource === undefined) continue;
    assert.deepEqual(p.datasource, { type: 'prometheus', uid: DS_UID }, `panel ${String(p.id)} "${String(p.title)}" datasource`);
    for (const t of p.targets ?? []) {
      if (t.datasource !== undefined) assert.deepEqual(t.datasource, { type: 'prometheus', uid: DS_UID }, `panel ${String(p.id)} target ${String(t.refId)} datasource`);
    }
  }
  for (const v of variables(d)) {
    if (v.type === 'query') assert.deepEqual(v.datasource, { type: 'prometheus', uid: DS_UID }, `variable $${String(v.name)} datasource`);
  }
  // No data source uid from the exporting Grafana may be left behind anywhere in the file.
  for (const m of raw.matchAll(/"uid":\s*"([^"]*)"/g)) {
    assert.ok(m[1] === DS_UID || m[1] === 'grpc-gateway' || m[1] === '-- Grafana --', `stray uid "${String(m[1])}"`);
  }
});

test('every panel that is not a row has targets, and every target a non-empty expr with balanced brackets', () => {
  const d = load();
  for (const p of allPanels(d)) {
    if (p.type === 'row') continue;
    assert.ok(Array.isArray(p.targets) && p.targets.length > 0, `panel ${String(p.id)} "${String(p.title)}" has targets`);
    const refIds = new Set<string | undefined>();
    for (const t of p.targets) {
      assert.ok(typeof t.expr === 'string' && t.expr.trim() !== '', `panel ${String(p.id)} "${String(p.title)}" target ${String(t.refId)} has an expr`);
      assert.equal(bracketError(t.expr), null, `panel ${String(p.id)} "${String(p.title)}" target ${String(t.refId)}: ${t.expr}`);
      assert.ok(!refIds.has(t.refId), `panel ${String(p.id)} refId ${String(t.refId)} is used once`);
      refIds.add(t.refId);
    }
  }
  for (const v of variables(d)) {
    if (v.type !== 'query') continue;
    const q = variableQuery(v);
    assert.ok(q.trim() !== '', `variable $${String(v.name)} has a query`);
    assert.equal(bracketError(q), null, `variable $${String(v.name)}: ${q}`);
  }
});

test('every metric a query names is one the gateway exports', () => {
  const exported = new Set(EXPORTED_METRICS);
  const used = new Set<string>();
  for (const { where, expr } of queries(load())) {
    for (const [name] of expr.matchAll(/\bapisix_[a-z_]+\b/g)) {
      assert.ok(exported.has(name), `${where} names ${name}, which the gateway does not export`);
      used.add(name);
    }
  }
  // The dashboard covers each exported metric family at least once (histograms through any of their series).
  for (const name of EXPORTED_METRICS) {
    const family = name.replace(/_(bucket|sum|count)$/, '');
    const covered = [...used].some((u) => u === name || u.replace(/_(bucket|sum|count)$/, '') === family);
    assert.ok(covered, `no panel shows ${family}`);
  }
});

test('the templating list has the data source variable and the route, service and node filters', () => {
  const list = variables(load());
  const names = list.map((v) => v.name);
  assert.equal(new Set(names).size, names.length, 'variable names are unique');
  const ds = list.find((v) => v.type === 'datasource');
  assert.ok(ds, 'a data source variable');
  assert.equal(ds.query, 'prometheus');
  // Named like the input, so that ${DS_PROMETHEUS} also resolves when the file is provisioned rather than imported.
  assert.equal(ds.name, 'DS_PROMETHEUS');
  for (const name of FILTER_VARIABLES) {
    const v = list.find((x) => x.name === name);
    assert.ok(v, `variable $${name}`);
    assert.equal(v.type, 'query');
    assert.equal(v.multi, true, `$${name} is multi-value`);
    assert.equal(v.includeAll, true, `$${name} has All`);
    assert.equal(v.allValue, '.*', `$${name} All matches every value, the empty one included`);
    assert.match(variableQuery(v), new RegExp(`^label_values\\(apisix_http_status(\\{[^}]*\\})?, ${name}\\)$`));
  }
  assert.equal(variableQuery(list.find((x) => x.name === 'route') as Variable), 'label_values(apisix_http_status, route)');
});

test('every variable a query uses is defined in templating.list', () => {
  const d = load();
  const defined = new Set(variables(d).map((v) => v.name));
  for (const { where, expr } of queries(d)) {
    for (const name of usedVariables(expr)) assert.ok(defined.has(name), `${where} uses $${name}, which templating.list does not define`);
  }
});

test('queries filter by $route, $service and $node where the metric has those labels', () => {
  // Metrics with route, service and node labels; the per-method ones have route only.
  const all3 = ['apisix_http_status', 'apisix_http_latency_bucket', 'apisix_bandwidth', 'apisix_grpc_status'];
  const routeOnly = ['apisix_grpc_method_status', 'apisix_grpc_method_latency_bucket'];
  for (const { where, expr } of queries(load())) {
    if (where.startsWith('variable')) continue;
    for (const m of expr.matchAll(/\b(apisix_[a-z_]+)\{([^}]*)\}/g)) {
      const [, metric, matchers] = m as unknown as [string, string, string];
      const wanted = all3.includes(metric) ? FILTER_VARIABLES : routeOnly.includes(metric) ? (['route'] as const) : [];
      for (const label of wanted) {
        // node="" (calls the gateway ended itself) is a deliberate fixed matcher, not a missing filter.
        if (label === 'node' && /\bnode=""/.test(matchers)) continue;
        assert.ok(matchers.includes(`${label}=~"$${label}"`), `${where}: ${metric} is not filtered by ${label}=~"$${label}"`);
      }
    }
    for (const metric of [...all3, ...routeOnly]) {
      assert.ok(!new RegExp(`\\b${metric}\\b(?!\\{)`).test(expr), `${where}: ${metric} is queried without label matchers`);
    }
  }
});

test('the etcd reachable stat turns red at 0', () => {
  const p = allPanels(load()).find((x) => (x.targets ?? []).some((t) => /\bapisix_etcd_reachable\b/.test(String(t.expr))));
  assert.ok(p, 'a panel shows apisix_etcd_reachable');
  assert.equal(p.type, 'stat');
  const steps = (p as { fieldConfig?: { defaults?: { thresholds?: { steps?: { color: string; value: number | null }[] } } } }).fieldConfig?.defaults?.thresholds?.steps ?? [];
  const colourAt = (value: number): string | undefined => steps.filter((s) => s.value === null || s.value <= value).at(-1)?.color;
  assert.equal(colourAt(0), 'red');
  assert.equal(colourAt(1), 'green');
});

test('titles read as sentences', () => {
  const d = load();
  for (const p of allPanels(d)) {
    const title = p.title ?? '';
    assert.ok(title.trim() !== '', `panel ${String(p.id)} has a title`);
    assert.doesNotMatch(title, /[.:]$/, `"${title}" does not end with a full stop or colon`);
    const [first = '', ...rest] = title.split(/\s+/);
    assert.ok(/^[A-Z0-9]/.test(first) || PROPER_TERMS.has(first), `"${title}" starts with a capital letter`);
    for (const word of rest) {
      // Sentence case: no Title Case words mid-title unless they are names or acronyms.
      const bare = word.replace(/^[("]+|[),;"]+$/g, '');
      assert.ok(!/^[A-Z][a-z]/.test(bare) || PROPER_TERMS.has(bare) || PROPER_TERMS.has(word), `"${title}": "${word}" is capitalised mid-sentence`);
    }
  }
});
