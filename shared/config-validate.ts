/**
 * Validation of conf/config.yaml against its TypeBox schema (shared/schema/config-file.ts), and of single GATEWAY_*
 * values against the schema of the key they override, so that both are refused with the same words
 * (shared/config-errors.ts).
 *
 * Keys the schema does not name are not errors: an APISIX config.yaml has many keys this gateway does not implement,
 * and it is meant to work as is. They are listed instead (`ignoredKeys`), for a warning at start that also catches
 * a misspelt key.
 */
import type { ValidateFunction } from 'ajv';
import type { Static, TSchema } from '@sinclair/typebox';
import { formatConfigErrors, keyPath } from './config-errors.ts';
import { ConfigError } from './errors.ts';
import { ConfigFileSchema, type ConfigFile } from './schema/config-file.ts';
import { compileSchema } from './validate.ts';

const compiled = new Map<TSchema, ValidateFunction>();

function validator<T extends TSchema>(schema: T): ValidateFunction<Static<T>> {
  let validate = compiled.get(schema);
  if (validate === undefined) {
    validate = compileSchema(schema);
    compiled.set(schema, validate);
  }
  return validate as ValidateFunction<Static<T>>;
}

/** The parsed document, typed, or a ConfigError naming the first wrong key. */
export function validateConfigFile(document: unknown): ConfigFile {
  const validate = validator(ConfigFileSchema);
  if (!validate(document)) throw new ConfigError(formatConfigErrors(validate.errors ?? []));
  return document;
}

/** A value from the environment, checked with the schema of the key it stands for; `name` is the variable's. */
export function checkValue<T extends TSchema>(schema: T, value: unknown, name: string): Static<T> {
  const validate = validator(schema);
  if (!validate(value)) throw new ConfigError(formatConfigErrors(validate.errors ?? [], name));
  return value;
}

/** The paths of the keys of a valid document that its schema does not name (`apisix.enable_admin`). */
export function ignoredKeys(document: unknown): string[] {
  const out: string[] = [];
  walk(ConfigFileSchema, document, [], out);
  return out;
}

type Schema = Record<string, unknown>;

function walk(schema: Schema, value: unknown, path: string[], out: string[]): void {
  const anyOf = schema['anyOf'] as Schema[] | undefined;
  if (anyOf !== undefined) {
    // The branches of the value's type; where several are mappings, a key is ignored only if every branch ignores it.
    const branches = anyOf.filter((branch) => typeMatches(branch, value));
    const found = branches.map((branch) => {
      const keys: string[] = [];
      walk(branch, value, path, keys);
      return keys;
    });
    const first = found[0] ?? [];
    out.push(...first.filter((key) => found.every((keys) => keys.includes(key))));
    return;
  }
  if (Array.isArray(value)) {
    const items = schema['items'] as Schema | undefined;
    if (items !== undefined) value.forEach((item, i) => walk(items, item, [...path, String(i)], out));
    return;
  }
  if (value === null || typeof value !== 'object' || schema['type'] !== 'object') return;
  const properties = (schema['properties'] ?? {}) as Record<string, Schema>;
  const additional = schema['additionalProperties'];
  for (const [key, item] of Object.entries(value)) {
    const known = Object.hasOwn(properties, key) ? properties[key] : typeof additional === 'object' ? (additional as Schema) : undefined;
    if (known === undefined) out.push(keyPath([...path, key]));
    else walk(known, item, [...path, key], out);
  }
}

function typeMatches(schema: Schema, value: unknown): boolean {
  if (schema['anyOf'] !== undefined) return (schema['anyOf'] as Schema[]).some((branch) => typeMatches(branch, value));
  if (Array.isArray(value)) return schema['type'] === 'array';
  if (value !== null && typeof value === 'object') return schema['type'] === 'object';
  return false; // scalars hold no keys
}
