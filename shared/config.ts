/**
 * conf/config.yaml + environment → one typed, validated GatewayConfig. This module reads the file, replaces
 * `${{VAR}}` from the environment, validates the YAML against its TypeBox schema (shared/schema/config-file.ts,
 * shared/config-validate.ts), maps it (shared/config-map.ts) and applies the GATEWAY_* overrides
 * (shared/config-env.ts). It is the only module that reads process.env (through the `env` argument, so tests pass
 * their own).
 *
 * Defaults are the seed document's: admin on 127.0.0.1:9080, h2c on 9081, TLS on 9443, etcd at
 * http://127.0.0.1:2379 under /apisix; the admin API answers loopback clients only, and private keys are encrypted
 * with APISIX's default keyring. The data plane's status port is on only when configured (conf/config.yaml:
 * 127.0.0.1:7085).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { applyEnvOverrides, engineFromEnv } from './config-env.ts';
import { mapConfigFile } from './config-map.ts';
import { DEFAULT_CONFIG_PATH, type Env, type GatewayConfig } from './config-types.ts';
import { ignoredKeys, validateConfigFile } from './config-validate.ts';
import { ConfigError, describe } from './errors.ts';

export * from './config-types.ts';
export { isLoopback, type ListenAddress } from './config-values.ts';

/** Reads the file at `path` (default conf/config.yaml, or $GATEWAY_CONFIG) and applies the environment. */
export function loadConfig(env: Env = process.env, path?: string): GatewayConfig {
  const file = path ?? env['GATEWAY_CONFIG'] ?? DEFAULT_CONFIG_PATH;
  const absolute = isAbsolute(file) ? file : resolve(process.cwd(), file);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${absolute}: ${describe(err)}`);
  }
  const shown = relative(process.cwd(), absolute);
  return parseConfig(text, env, shown.startsWith('..') || isAbsolute(shown) ? absolute : shown);
}

/**
 * `source` names the file in the errors about its content (`conf/config.yaml: apisix.node_listen[0].port: …`);
 * errors about a GATEWAY_* variable name the variable instead.
 */
export function parseConfig(text: string, env: Env = {}, source = 'config'): GatewayConfig {
  const config = inFile(source, () => {
    let document: unknown;
    try {
      document = parseYaml(substituteEnv(text, env)) ?? {};
    } catch (err) {
      throw err instanceof ConfigError ? err : new ConfigError(`not valid YAML: ${describe(err)}`);
    }
    const file = validateConfigFile(document);
    return { ...mapConfigFile(file, env), ignoredKeys: ignoredKeys(document), engineSet: file.apisix?.http2_engine != null };
  });
  const { engineSet, ...gateway } = config;
  if (!engineSet) {
    // The test runner's engine reaches configs parsed with an empty `env` too.
    gateway.http2Engine = engineFromEnv(env['GATEWAY_HTTP2_ENGINE'] ?? process.env['GATEWAY_HTTP2_ENGINE']) ?? gateway.http2Engine;
  }
  applyEnvOverrides(gateway, env);
  checkStatusPort(gateway);
  return gateway;
}

function inFile<T>(source: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    throw err instanceof ConfigError ? new ConfigError(`${source}: ${err.message}`) : err;
  }
}

/** `${{VAR}}` and `${{VAR:=default}}`, as APISIX's CLI resolves them; comment lines are left alone. */
export function substituteEnv(text: string, env: Env): string {
  return text
    .split('\n')
    .map((line) => (line.trimStart().startsWith('#') ? line : substituteLine(line, env)))
    .join('\n');
}

function substituteLine(line: string, env: Env): string {
  return line.replace(/\$\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::=\s*([^}]*?))?\s*\}\}/g, (_m, name: string, def?: string) => {
    const value = env[name];
    if (value !== undefined && value !== '') return value;
    if (def !== undefined) return def;
    throw new ConfigError(`\${{${name}}} is referenced but not set in the environment`);
  });
}

/** The status server is plain HTTP/1.1 and never shares a port with a gRPC listener: refuse the clash up front. */
function checkStatusPort(config: GatewayConfig): void {
  const status = config.status;
  if (status === undefined || status.port === 0) return;
  const grpc = [...config.nodeListen, ...(config.ssl.enable ? config.ssl.listen : [])];
  if (grpc.some((address) => address.port === status.port)) {
    throw new ConfigError(`apisix.status.port: ${status.port} is also a gRPC listener's port; the status server needs its own`);
  }
}
