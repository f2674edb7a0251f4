/**
 * ajv's errors for conf/config.yaml (and GATEWAY_* values checked with the same schemas) as one line an operator
 * can act on: the key's path as written in YAML and what the key takes, from the schema at that key, e.g.
 * `apisix.node_listen[0].port: expected a whole number from 0 to 65535, got 70000`.
 *
 * Of several errors the one at the deepest key is reported (union branches each report theirs; the deepest says
 * the most), and at that key the outermost schema is described, so that a key taking several forms lists them all
 * (`expected seconds or a duration such as 10s, 500ms or 2m`). A schema's `title` names its kind where one is set.
 * Values of `writeOnly` keys (passwords, keys) are never repeated, only their type.
 *
 * Needs ajv's `verbose` option (`data` and `parentSchema` of each error).
 */
import type { ErrorObject } from 'ajv';

type Schema = Record<string, unknown>;

/** `where` names the value when it is not a key of the file (an environment variable). */
export function formatConfigErrors(errors: readonly ErrorObject[], where?: string): string {
  let best: { error: ErrorObject; path: string[] } | undefined;
  for (const error of errors) {
    const path = location(error);
    if (best === undefined || path.length > best.path.length || (path.length === best.path.length && error.schemaPath.length < best.error.schemaPath.length)) {
      best = { error, path };
    }
  }
  if (best === undefined) return `${where ?? '(root)'}: invalid`;
  const { error, path } = best;
  const name = keyPath(path, where);
  const schema = (error.parentSchema ?? {}) as Schema;
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required': {
      const missing = String(params['missingProperty']);
      const property = (schema['properties'] as Record<string, Schema> | undefined)?.[missing] ?? {};
      return `${name}: expected ${expected(property)}, got nothing`;
    }
    case 'additionalProperties':
      return `${name}: unknown key (not allowed here)`;
    default:
      return `${name}: expected ${expected(schema)}, got ${got(error.data, schema)}`;
  }
}

/** The key path of the error's value: a missing or unknown property names the property itself. */
function location(error: ErrorObject): string[] {
  const path = error.instancePath === '' ? [] : error.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const params = error.params as Record<string, unknown>;
  if (error.keyword === 'required') path.push(String(params['missingProperty']));
  if (error.keyword === 'additionalProperties') path.push(String(params['additionalProperty']));
  return path;
}

/** `apisix.node_listen[0].port`; keys that are not plain names are quoted (`resource["service.name"]`). */
export function keyPath(path: readonly string[], root = ''): string {
  const text = path
    .map((part) => (/^\d+$/.test(part) ? `[${part}]` : /^[A-Za-z0-9_-]+$/.test(part) ? `.${part}` : `[${JSON.stringify(part)}]`))
    .join('');
  if (root !== '') return `${root}${text}`;
  return text === '' ? '(root)' : text.replace(/^\./, '');
}

/** What a schema accepts, in words. `~` is accepted by most keys and never worth saying. */
export function expected(schema: Schema): string {
  if (typeof schema['title'] === 'string') return schema['title'];
  const anyOf = schema['anyOf'] as Schema[] | undefined;
  if (anyOf !== undefined) {
    const parts = anyOf.filter((branch) => branch['type'] !== 'null').map(expected);
    return [...new Set(parts)].join(' or ');
  }
  if ('const' in schema) return String(schema['const']);
  if (Array.isArray(schema['enum'])) return `one of ${schema['enum'].join(', ')}`;
  switch (schema['type']) {
    case 'integer':
      return `a whole number${range(schema)}`;
    case 'number':
      return `a number${range(schema)}`;
    case 'string':
      if (Array.isArray(schema['examples'])) return `a string such as ${schema['examples'].join(', ')}`;
      return typeof schema['minLength'] === 'number' && schema['minLength'] > 0 ? 'a non-empty string' : 'a string';
    case 'boolean':
      return 'true or false';
    case 'array': {
      const items = noun(schema['items'] as Schema | undefined);
      const count = typeof schema['minItems'] === 'number' && typeof schema['maxItems'] === 'number' ? ` of ${schema['minItems']} to ${schema['maxItems']}` : '';
      return `a list${count}${items === '' ? '' : ` ${count === '' ? 'of ' : ''}${items}`}`;
    }
    case 'object':
      return 'a mapping';
    default:
      return 'a valid value';
  }
}

function range(schema: Schema): string {
  const min = schema['minimum'];
  const max = schema['maximum'];
  const above = schema['exclusiveMinimum'];
  const lower = typeof min === 'number' ? `from ${min}` : typeof above === 'number' ? `above ${above}` : '';
  const upper = typeof max === 'number' ? (lower.startsWith('from') ? `to ${max}` : `up to ${max}`) : '';
  return [lower, upper].filter((part) => part !== '').map((part) => ` ${part}`).join('');
}

/** The plural noun of a list's items (`strings`), or '' when there is none short enough. */
function noun(items: Schema | undefined): string {
  if (items === undefined) return '';
  const anyOf = items['anyOf'] as Schema[] | undefined;
  if (anyOf !== undefined) return anyOf.map(noun).filter((n) => n !== '').join(' or ');
  const nouns: Record<string, string> = { string: 'strings', integer: 'whole numbers', number: 'numbers', boolean: 'booleans', object: 'mappings', array: 'lists' };
  const base = nouns[String(items['type'])] ?? '';
  return base === '' || items['type'] !== 'number' || range(items) === '' ? base : `${base}${range(items)}`;
}

/** The value found, or only its type for a secret (and for lists and mappings, which are too long to repeat). */
function got(value: unknown, schema: Schema): string {
  if (value === null) return '~';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : `a list of ${value.length}`;
  if (typeof value === 'object') return 'a mapping';
  if (secret(schema)) return `a ${typeof value}`;
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  return typeof value === 'number' || typeof value === 'boolean' ? String(value) : typeof value;
}

function secret(schema: Schema): boolean {
  if (schema['writeOnly'] === true) return true;
  const anyOf = schema['anyOf'] as Schema[] | undefined;
  return anyOf?.some(secret) ?? false;
}
