/**
 * Filters and paging of list endpoints, as APISIX 3's v3_adapter:
 *
 * - `name=<regex>` keeps objects whose `name` matches; `label=<key>` keeps objects that have that label key;
 *   `uri=<regex>` keeps objects whose `uri` or one of whose `uris` matches; `filter=<urlencoded k=v&…>` keeps
 *   objects whose `service_id`/`upstream_id` equal the values (APISIX 3.13+);
 * - `total` counts what the filters kept, before paging;
 * - paging applies when both `page` and `page_size` are given, in `createdIndex` order; `page_size` must be
 *   within [10, 500] (`page_size must be between 10 and 500`).
 *
 * Where APISIX ignores a malformed `page` or answers a bare string, this answers 400 with `error_msg`, like every
 * other admin error. Regexes are JavaScript's, which agree with PCRE on the patterns names and URIs need.
 */
import { AdminBadRequest } from '../../shared/errors.ts';
import type { ListedItem } from '../store/resource-store.ts';
import { isJsonObject } from './resources.ts';

export interface ListQuery {
  name: RegExp | undefined;
  label: string | undefined;
  uri: RegExp | undefined;
  /** `filter=` pairs: field → the value it must equal (as text). */
  equals: ReadonlyMap<string, string>;
  paging: { page: number; pageSize: number } | undefined;
}

/** The only fields `filter=` may test (APISIX's v3_adapter allows these two). */
const FILTERABLE_FIELDS: ReadonlySet<string> = new Set(['service_id', 'upstream_id']);
const MIN_PAGE_SIZE = 10;
const MAX_PAGE_SIZE = 500;

export function parseListQuery(query: unknown): ListQuery {
  const args = isJsonObject(query) ? query : {};
  const page = single(args['page']);
  const pageSize = single(args['page_size']);
  return {
    name: regex(single(args['name']), 'name'),
    label: single(args['label']),
    uri: regex(single(args['uri']), 'uri'),
    equals: parseFilter(single(args['filter'])),
    paging: page === undefined || pageSize === undefined ? undefined : parsePaging(page, pageSize),
  };
}

export function applyListQuery(items: readonly ListedItem[], query: ListQuery): { total: number; list: ListedItem[] } {
  const kept = items.filter((item) => matches(item.value, query));
  if (query.paging === undefined) return { total: kept.length, list: kept };
  const { page, pageSize } = query.paging;
  const sorted = [...kept].sort((a, b) => a.createRevision - b.createRevision);
  return { total: kept.length, list: sorted.slice((page - 1) * pageSize, page * pageSize) };
}

function matches(value: unknown, query: ListQuery): boolean {
  const object = isJsonObject(value) ? value : {};
  if (query.name !== undefined && !testString(query.name, object['name'])) return false;
  if (query.label !== undefined) {
    const labels = object['labels'];
    if (!isJsonObject(labels) || !Object.hasOwn(labels, query.label)) return false;
  }
  if (query.uri !== undefined) {
    const pattern = query.uri;
    const uris = Array.isArray(object['uris']) ? (object['uris'] as unknown[]) : [];
    if (!testString(pattern, object['uri']) && !uris.some((uri) => testString(pattern, uri))) return false;
  }
  for (const [field, expected] of query.equals) {
    const actual = object[field];
    if ((typeof actual !== 'string' && typeof actual !== 'number') || String(actual) !== expected) return false;
  }
  return true;
}

function testString(pattern: RegExp, value: unknown): boolean {
  return typeof value === 'string' && pattern.test(value);
}

/** A repeated argument arrives as an array; nginx's `arg_x` is the first occurrence. */
function single(value: unknown): string | undefined {
  const first: unknown = Array.isArray(value) ? value[0] : value;
  return typeof first === 'string' ? first : undefined;
}

function regex(source: string | undefined, what: string): RegExp | undefined {
  if (source === undefined) return undefined;
  try {
    return new RegExp(source);
  } catch (err) {
    throw new AdminBadRequest(`invalid ${what} regex: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function parseFilter(text: string | undefined): ReadonlyMap<string, string> {
  const equals = new Map<string, string>();
  if (text === undefined) return equals;
  for (const [field, value] of new URLSearchParams(text)) {
    if (!FILTERABLE_FIELDS.has(field)) throw new AdminBadRequest(`invalid filter: ${field} cannot be filtered on`);
    equals.set(field, value);
  }
  return equals;
}

function parsePaging(pageText: string, pageSizeText: string): { page: number; pageSize: number } {
  const pageSize = Number(pageSizeText);
  if (!Number.isInteger(pageSize) || pageSize < MIN_PAGE_SIZE || pageSize > MAX_PAGE_SIZE) {
    throw new AdminBadRequest(`page_size must be between ${MIN_PAGE_SIZE} and ${MAX_PAGE_SIZE}`);
  }
  const page = Number(pageText);
  if (!Number.isInteger(page) || page < 1) throw new AdminBadRequest('page must be a positive integer');
  return { page, pageSize };
}
