/**
 * ajv's errors as one sentence in the style of APISIX's validator (api7/jsonschema): one
 * `property "a" validation failed: ` clause per level, then the rule that failed, with APISIX's wording where it
 * has one (`expected -1 to be at least 0`, `string too long, expected at most 256, got 257`, `additional properties
 * forbidden, found color`). Enums name the allowed values, which APISIX's `matches none of the enum values` does not.
 *
 * Needs ajv's `verbose` option for the failing value (`data`).
 */
import type { ErrorObject } from 'ajv';

/**
 * Among several errors (anyOf branches report one each) the deepest one is the most specific, so it is the one
 * reported. At equal depth a rule beats a type mismatch: for 1,001 nodes in the array form the `maxItems` of the
 * array branch says more than the hash-map branch's `expected object, got array`.
 */
export function formatAjvErrors(errors: readonly ErrorObject[]): string {
  let best: ErrorObject | undefined;
  for (const error of errors) {
    if (best === undefined || depth(error) > depth(best)) best = error;
    else if (depth(error) === depth(best) && best.keyword === 'type' && error.keyword !== 'type') best = error;
  }
  if (best === undefined) return 'validation failed';
  // A `propertyNames` failure names the object; the rule is about one of its keys, not a value.
  const rule = best.propertyName === undefined ? describeRule(best) : `invalid property name: ${describeRule(best)}`;
  return fieldPath(best).reduceRight((message, field) => `property "${field}" validation failed: ${message}`, rule);
}

function depth(error: ErrorObject): number {
  const base = error.instancePath === '' ? 0 : error.instancePath.split('/').length - 1;
  // A missing or unknown property names a field one level below the object that reported it.
  return error.keyword === 'required' || error.keyword === 'additionalProperties' ? base + 1 : base;
}

function fieldPath(error: ErrorObject): string[] {
  return error.instancePath
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function describeRule(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  const data: unknown = error.data;
  const limit = String(params['limit']);
  switch (error.keyword) {
    case 'additionalProperties':
      // APISIX's wording for a plugin it does not know.
      if (error.instancePath === '/plugins') return `unknown plugin [${String(params['additionalProperty'])}]`;
      return `additional properties forbidden, found ${String(params['additionalProperty'])}`;
    case 'required':
      return `property "${String(params['missingProperty'])}" is required`;
    case 'dependencies':
      return `failed to validate dependent schema for "${String(params['property'])}": property "${String(params['missingProperty'])}" is required`;
    case 'const':
      return `must be ${JSON.stringify(params['allowedValue'])}`;
    case 'enum':
      return `must be one of ${JSON.stringify(params['allowedValues'])}`;
    case 'type':
      return `wrong type: expected ${String(params['type'])}, got ${jsonType(data)}`;
    case 'minimum':
      return `expected ${String(data)} to be at least ${limit}`;
    case 'maximum':
      return `expected ${String(data)} to be at most ${limit}`;
    case 'exclusiveMinimum':
      return `expected ${String(data)} to be greater than ${limit}`;
    case 'exclusiveMaximum':
      return `expected ${String(data)} to be smaller than ${limit}`;
    case 'minLength':
      return `string too short, expected at least ${limit}, got ${typeof data === 'string' ? data.length : '?'}`;
    case 'maxLength':
      return `string too long, expected at most ${limit}, got ${typeof data === 'string' ? data.length : '?'}`;
    case 'minItems':
      return `expect array to have at least ${limit} items`;
    case 'maxItems':
      return `expect array to have at most ${limit} items`;
    case 'maxProperties':
      return `expect object to have at most ${limit} properties`;
    case 'uniqueItems':
      // ajv counts from 0 and names the later item first; APISIX counts from 1, the earlier item first.
      return `expected unique items but items ${Number(params['j']) + 1} and ${Number(params['i']) + 1} are equal`;
    case 'pattern':
      return `failed to match pattern ${JSON.stringify(params['pattern'])} with ${JSON.stringify(data)}`;
    default:
      return error.message ?? error.keyword;
  }
}

/** JSON's names for a value's type, as APISIX's messages use them (`got number`, `got array`). */
function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}
