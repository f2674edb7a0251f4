/**
 * The one ajv instance and the one validation entry point of both planes. The admin API validates what it is
 * about to write and the data plane validates what it reads from etcd with the same schemas, the same ajv options
 * (no coercion, no defaults written, no unknown fields stripped) and the same cross-field checks, so the two planes
 * cannot disagree on what is valid.
 *
 * Values are validated in clear: private keys stored encrypted (shared/crypto.ts) are decrypted before they get
 * here. That referenced objects (`upstream_id`, `service_id`, `tls.client_cert_id`) exist is a question for etcd,
 * answered by the admin API when it writes, not by this module.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import type { ResourceType } from './etcd-keys.ts';
import { jsonShapeError } from './json-bounds.ts';
import { RouteSchema, type RouteConf } from './schema/route.ts';
import { ServiceSchema, type ServiceConf } from './schema/service.ts';
import { SslSchema, type SslConf } from './schema/ssl.ts';
import { ConsumerGroupSchema, ConsumerSchema, consumerPolicyPlugins, type ConsumerConf, type ConsumerGroupConf } from './schema/consumer.ts';
import { GlobalRuleSchema, PLUGINS_WITH_METADATA, PluginConfigSchema, PluginMetadataSchema, type GlobalRuleConf, type PluginConfigConf, type PluginMetadataConf } from './schema/plugin-holders.ts';
import { SamplerSchema, type SamplerConf } from './schema/observability-plugins.ts';
import { ProtoSchema, type ProtoConf } from './schema/proto.ts';
import { checkProtoText } from './proto-check.ts';
import { MAX_METADATA_JSON_BYTES, UpstreamSchema, type UpstreamConf } from './schema/upstream.ts';
import { checkServablePairs, type CertKeyPair } from './tls-check.ts';
import { formatAjvErrors } from './validate-errors.ts';
import { parseHostPort } from './host-port.ts';
import { parseIpBlock } from './ip-match.ts';
import { checkLimitKey, checkRedisPolicy } from './limit-key.ts';
import type { PluginsConf } from './schema/plugins.ts';
import type { CorsConf } from './schema/plugin-web.ts';
import type { FaultInjectionConf, ProxyRewriteConf, TrafficSplitConf } from './schema/plugin-policies.ts';
import { headerEdits } from './proxy-rewrite-headers.ts';
import { parseRegexUri } from './regex-uri.ts';
import { parseTemplate } from './variable-template.ts';
import { compileVars } from './vars-expr.ts';
import { compileSafeRegex } from './safe-regex.ts';
import { compilePathTemplate } from './path-template.ts';
import { jwtKeyOf } from './jwt-keys.ts';

export { formatAjvErrors } from './validate-errors.ts';

export interface ResourceConfs {
  routes: RouteConf;
  upstreams: UpstreamConf;
  services: ServiceConf;
  ssls: SslConf;
  consumers: ConsumerConf;
  consumer_groups: ConsumerGroupConf;
  global_rules: GlobalRuleConf;
  plugin_configs: PluginConfigConf;
  plugin_metadata: PluginMetadataConf;
  protos: ProtoConf;
}

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; error: string };

const ajv = new Ajv({
  strict: true,
  allErrors: true,
  // The failing value, for messages in APISIX's words (`expected -1 to be at least 0`).
  verbose: true,
  coerceTypes: false,
  useDefaults: false,
  removeAdditional: false,
  allowUnionTypes: true,
});

/** The schema of each resource type: what both planes validate with, and what the admin API publishes. */
export const schemas = { routes: RouteSchema, upstreams: UpstreamSchema, services: ServiceSchema, ssls: SslSchema, consumers: ConsumerSchema, consumer_groups: ConsumerGroupSchema, global_rules: GlobalRuleSchema, plugin_configs: PluginConfigSchema, plugin_metadata: PluginMetadataSchema, protos: ProtoSchema } as const;

/**
 * Each validator is compiled on its first use, not when this module loads: compiling the four resource schemas
 * costs ~6 MiB of memory that a data-plane worker never needs (its primary validates what it relays to it).
 */
const compiled: { -readonly [K in ResourceType]?: ValidateFunction<ResourceConfs[K]> } = {};

function validatorOf<K extends ResourceType>(type: K): ValidateFunction<ResourceConfs[K]> {
  const existing = compiled[type];
  if (existing !== undefined) return existing;
  const made = ajv.compile<ResourceConfs[K]>(schemas[type]);
  compiled[type] = made as (typeof compiled)[K];
  return made;
}

let samplerCheck: ValidateFunction<SamplerConf> | undefined;

/**
 * Another schema on the same instance and options: conf/config.yaml's (shared/config-validate.ts). YAML types its
 * scalars as JSON does, so there too nothing is coerced, no default is written and no unknown key is stripped.
 */
export function compileSchema<T>(schema: object): ValidateFunction<T> {
  return ajv.compile<T>(schema);
}

/** A sampler alone, with the schema of routes' `opentelemetry.sampler` (conf/config.yaml's is checked in its file schema). */
export function validateSampler(value: unknown): ValidationResult<SamplerConf> {
  samplerCheck ??= ajv.compile<SamplerConf>(SamplerSchema);
  if (samplerCheck(value)) return { ok: true, value };
  return { ok: false, error: formatAjvErrors(samplerCheck.errors ?? []) };
}

export interface ValidateOptions {
  /**
   * Checks that only make sense when a value is written (the admin API): a certificate must not be expired yet.
   * The data plane reads with this off, so a certificate that expires while in service is not dropped by a freshly
   * started replica while the others keep serving it.
   */
  atWrite?: boolean;
}

/**
 * Validates one resource value. The message names the field and the rule, without the `invalid configuration: `
 * prefix (the admin API adds it, the data plane logs it as is).
 *
 * The shape check (depth, prototype keys; shared/json-bounds.ts) runs first and iteratively: nothing recursive,
 * ajv included, sees a value nested deeper than MAX_JSON_DEPTH.
 */
export function validateResource<K extends ResourceType>(
  type: K,
  value: unknown,
  options: ValidateOptions = {},
): ValidationResult<ResourceConfs[K]> {
  const shapeError = jsonShapeError(value);
  if (shapeError !== undefined) return { ok: false, error: shapeError };
  const validate = validatorOf(type);
  if (!validate(value)) return { ok: false, error: formatAjvErrors(validate.errors ?? []) };
  const semantic = checkers[type](value, options.atWrite === true);
  if (semantic !== undefined) return { ok: false, error: semantic };
  return { ok: true, value };
}

const checkers: { [K in ResourceType]: (value: ResourceConfs[K], atWrite: boolean) => string | undefined } = {
  routes: checkRoute,
  upstreams: (upstream, atWrite) => checkUpstream(upstream, atWrite),
  services: checkService,
  ssls: checkSsl,
  consumers: (consumer) => checkConsumer(consumer),
  consumer_groups: (group) => checkPlugins(group.plugins),
  // A global rule runs on every route: it has no upstream of its own for traffic-split to stand in for.
  global_rules: (rule) => checkGlobalPlugins(rule.plugins),
  plugin_configs: (config) => checkPlugins(config.plugins),
  // APISIX: the id names the plugin, which must have a metadata schema.
  plugin_metadata: (meta) => (PLUGINS_WITH_METADATA.includes(meta.id) ? undefined : `invalid plugin name: ${meta.id} takes no metadata (plugins that do: ${PLUGINS_WITH_METADATA.join(', ')})`),
  protos: (proto) => {
    const parsed = checkProtoText(proto.content);
    return typeof parsed === 'string' ? `invalid proto content: ${parsed}` : undefined;
  },
};

function checkRoute(route: RouteConf, atWrite: boolean): string | undefined {
  if (route.host !== undefined && route.hosts !== undefined) return 'only one of host or hosts is allowed';
  const pluginError = checkPlugins(route.plugins);
  if (pluginError !== undefined) return pluginError;
  if ((route.uri === undefined) === (route.uris === undefined)) return 'exactly one of "uri" or "uris" is required';
  // APISIX also accepts a route with plugins only; a gRPC gateway has nowhere to send its calls, so it is refused.
  if (route.upstream === undefined && route.upstream_id === undefined && route.service_id === undefined) {
    return 'one of "upstream", "upstream_id" or "service_id" is required';
  }
  return checkUpstreamChoice(route, atWrite);
}

function checkService(service: ServiceConf, atWrite: boolean): string | undefined {
  return checkPlugins(service.plugins) ?? checkUpstreamChoice(service, atWrite);
}

/** A header name a plugin may set: an HTTP token (sent in lower case, as HTTP/2 requires); not a pseudo-header. */
const HEADER_TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
/** Connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2), and `host`, which `host` of the plugin sets. */
const UNSETTABLE_HEADERS: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host']);

/** The text of a `:path` (RFC 9113 §8.3.1: no spaces, no control characters); the rewritten path is checked per call too. */
const PATH_TEXT = /^[\x21-\x7e]*$/;

function checkProxyRewrite(conf: ProxyRewriteConf): string | undefined {
  if (conf.uri === undefined && conf.regex_uri === undefined && conf.host === undefined && conf.headers === undefined) {
    return 'one of "uri", "regex_uri", "host" or "headers" is required';
  }
  if (conf.uri !== undefined) {
    const parts = parseTemplate(conf.uri, false, '"uri"');
    if (typeof parts === 'string') return parts;
    const texts = parts.map((part) => ('text' in part ? part.text : 'fallback' in part ? (part.fallback ?? '') : ''));
    if (texts.some((text) => !PATH_TEXT.test(text))) return '"uri" must be a path of visible ASCII characters';
  }
  if (conf.regex_uri !== undefined) {
    const rules = parseRegexUri(conf.regex_uri);
    if (typeof rules === 'string') return rules;
  }
  const edits = headerEdits(conf.headers);
  const written = [...edits.set, ...edits.add];
  for (const name of [...written.map(([field]) => field), ...edits.remove]) {
    if (!HEADER_TOKEN.test(name) || UNSETTABLE_HEADERS.has(name.toLowerCase())) return `header "${name}" cannot be rewritten: field names only, no pseudo-headers, no connection-specific fields`;
  }
  for (const [name, value] of written) {
    const parts = parseTemplate(value, true, `header "${name}"`);
    if (typeof parts === 'string') return parts;
  }
  return undefined;
}

/** An abort answers with a status; `vars` must be expressions the gateway can evaluate (shared/vars-expr.ts). */
function checkFaultInjection(conf: FaultInjectionConf): string | undefined {
  const { abort, delay } = conf;
  if (abort === undefined && delay === undefined) return 'at least one of "abort" or "delay" is required';
  if (abort !== undefined && abort.http_status === undefined && abort.grpc_status === undefined) return 'abort needs "http_status" or "grpc_status"';
  for (const [where, vars] of [['abort.vars', abort?.vars], ['delay.vars', delay?.vars]] as const) {
    const compiled = vars === undefined ? undefined : compileVars(vars, where);
    if (typeof compiled === 'string') return compiled;
  }
  return undefined;
}

/** A consumer's credentials must be usable: a jwt-auth secret or public key that can verify its algorithm. */
function checkConsumer(consumer: ConsumerConf): string | undefined {
  const jwt = consumer.plugins?.['jwt-auth'];
  if (jwt !== undefined) {
    const key = jwtKeyOf(jwt);
    if (typeof key === 'string') return `failed to check the configuration of plugin jwt-auth err: ${key}`;
  }
  return checkPlugins(consumerPolicyPlugins(consumer.plugins));
}

/** What the plugins' schemas cannot say, in APISIX's words (`failed to check the configuration of plugin …`). */
function checkPlugins(plugins: PluginsConf | undefined): string | undefined {
  if (plugins === undefined) return undefined;
  const failed = (name: string, detail: string): string => `failed to check the configuration of plugin ${name} err: ${detail}`;
  const ip = plugins['ip-restriction'];
  if (ip !== undefined) {
    if ((ip.whitelist === undefined) === (ip.blacklist === undefined)) return failed('ip-restriction', 'exactly one of "whitelist" or "blacklist" is required');
    for (const entry of ip.whitelist ?? ip.blacklist ?? []) {
      if (parseIpBlock(entry) === undefined) return failed('ip-restriction', `"${entry}" is not an IP address or CIDR block`);
    }
  }
  const restriction = plugins['consumer-restriction'];
  if (restriction !== undefined && (restriction.whitelist === undefined) === (restriction.blacklist === undefined)) {
    return failed('consumer-restriction', 'exactly one of "whitelist" or "blacklist" is required');
  }
  const rewrite = plugins['proxy-rewrite'];
  if (rewrite !== undefined) {
    const rewriteError = checkProxyRewrite(rewrite);
    if (rewriteError !== undefined) return failed('proxy-rewrite', rewriteError);
  }
  const fault = plugins['fault-injection'];
  const faultError = fault === undefined ? undefined : checkFaultInjection(fault);
  if (faultError !== undefined) return failed('fault-injection', faultError);
  const limit = plugins['limit-count'];
  if (limit !== undefined && (limit.key_type ?? 'var') !== 'constant') {
    const keyError = checkLimitKey(limit.key ?? 'remote_addr', limit.key_type === 'var_combination');
    if (keyError !== undefined) return failed('limit-count', keyError);
  }
  const storeError = limit === undefined ? undefined : checkRedisPolicy(limit);
  if (storeError !== undefined) return failed('limit-count', storeError);
  for (const name of ['limit-req', 'limit-conn'] as const) {
    const keyed = plugins[name];
    const keyError = keyed === undefined ? undefined : checkLimitKey(keyed.key, keyed.key_type === 'var_combination');
    if (keyError !== undefined) return failed(name, keyError);
  }
  const split = plugins['traffic-split'];
  const splitError = split === undefined ? undefined : checkTrafficSplit(split);
  if (splitError !== undefined) return failed('traffic-split', splitError);
  const template = plugins['grpc-transcode']?.path_template;
  const templateError = template === undefined ? undefined : compilePathTemplate(template);
  if (typeof templateError === 'string') return failed('grpc-transcode', templateError);
  const cors = plugins.cors;
  const corsError = cors === undefined ? undefined : checkCors(cors);
  if (corsError !== undefined) return failed('cors', corsError);
  return undefined;
}

/** APISIX's cors check: `*` means nothing to a browser once credentials are allowed; regexes must be safe to run. */
function checkCors(conf: CorsConf): string | undefined {
  if (conf.allow_credential === true) {
    for (const field of ['allow_origins', 'allow_methods', 'allow_headers', 'expose_headers'] as const) {
      if ((conf[field] ?? (field === 'expose_headers' ? '' : '*')) === '*') return `you can not set '*' for other option when 'allow_credential' is true`;
    }
  }
  for (const source of conf.allow_origins_by_regex ?? []) {
    const compiled = compileSafeRegex(source);
    if (typeof compiled === 'string') return `allow_origins_by_regex: ${compiled}`;
  }
  return undefined;
}

/**
 * A global rule runs on every route: it has no upstream of its own for traffic-split to stand in for, and the
 * protocols a route serves (grpc-web, grpc-transcode) are the route's.
 */
function checkGlobalPlugins(plugins: PluginsConf): string | undefined {
  for (const name of ['traffic-split', 'grpc-web', 'grpc-transcode', 'cors'] as const) {
    if (plugins[name] !== undefined) return `${name} runs on routes, services and plugin configs, not in global rules`;
  }
  return checkPlugins(plugins);
}

/** traffic-split's rules: their `vars` compile, and each weighted upstream is an id, a valid inline upstream, or neither. */
function checkTrafficSplit(conf: TrafficSplitConf): string | undefined {
  for (const [r, rule] of conf.rules.entries()) {
    for (const [m, match] of (rule.match ?? []).entries()) {
      const compiled = compileVars([match.vars ?? []], `rules[${String(r)}].match[${String(m)}].vars`);
      if (typeof compiled === 'string') return compiled;
    }
    for (const [w, weighted] of rule.weighted_upstreams.entries()) {
      const where = `rules[${String(r)}].weighted_upstreams[${String(w)}]`;
      if (weighted.upstream !== undefined && weighted.upstream_id !== undefined) return `${where}: only one of "upstream" or "upstream_id" is allowed`;
      const upstreamError = weighted.upstream === undefined ? undefined : checkUpstream(weighted.upstream, true);
      if (upstreamError !== undefined) return `${where}.upstream: ${upstreamError}`;
    }
  }
  return undefined;
}

/**
 * An inline upstream and an `upstream_id` together leave it to precedence rules which one is used (APISIX takes
 * the id); here that ambiguity is a 400.
 */
function checkUpstreamChoice(holder: { upstream?: UpstreamConf; upstream_id?: string | number }, atWrite: boolean): string | undefined {
  if (holder.upstream === undefined) return undefined;
  if (holder.upstream_id !== undefined) return 'only one of "upstream" or "upstream_id" is allowed';
  const upstreamError = checkUpstream(holder.upstream, atWrite);
  return upstreamError === undefined ? undefined : `property "upstream" validation failed: ${upstreamError}`;
}

export function checkUpstream(upstream: UpstreamConf, atWrite = false): string | undefined {
  if (upstream.pass_host === 'rewrite' && upstream.upstream_host === undefined) {
    return "`upstream_host` can't be empty when `pass_host` is `rewrite`";
  }
  const nodesError = checkNodes(upstream.nodes);
  if (nodesError !== undefined) return nodesError;
  const hashError = checkHashKey(upstream);
  if (hashError !== undefined) return hashError;
  const tls = upstream.tls;
  if (tls === undefined) return undefined;
  // `tls` only configures TLS towards the nodes; on an h2c upstream it would be silently unused.
  if ((upstream.scheme ?? 'grpc') !== 'grpcs') return 'property "tls" validation failed: tls is only used with "scheme": "grpcs"';
  if (tls.client_cert_id !== undefined && tls.client_cert !== undefined) {
    return 'property "tls" validation failed: only one of "client_cert_id" or "client_cert" and "client_key" is allowed';
  }
  if (tls.client_cert === undefined || tls.client_key === undefined) return undefined;
  const pairError = checkServablePairs([{ cert: tls.client_cert, key: tls.client_key }], { atWrite });
  return pairError === undefined ? undefined : `property "tls" validation failed: ${pairError}`;
}

/**
 * APISIX's chash rules (apisix/upstream.lua check_upstream_conf): a `key` unless hashing on the consumer, and a key
 * of the shape its `hash_on` reads: a variable name (the ones a gRPC call has, see
 * data-plane/upstream/hash-key.ts), a header or cookie name, or free text for `vars_combinations`.
 */
export const HASH_VARS_PATTERN = /^((uri|server_name|server_addr|request_uri|remote_port|remote_addr|query_string|host|hostname)|arg_[0-9a-zA-Z_-]+)$/;
const HASH_NAME_PATTERN = /^[a-zA-Z0-9-_]+$/;

function checkHashKey(upstream: UpstreamConf): string | undefined {
  if (upstream.type !== 'chash') return undefined;
  const hashOn = upstream.hash_on ?? 'vars';
  const key = upstream.key;
  if (hashOn === 'consumer') return undefined;
  if (key === undefined) return 'missing key';
  if (hashOn === 'vars' && !HASH_VARS_PATTERN.test(key)) {
    return `failed to match pattern "${HASH_VARS_PATTERN.source}" with "${key}"`;
  }
  if ((hashOn === 'header' || hashOn === 'cookie') && !HASH_NAME_PATTERN.test(key)) {
    return `failed to match pattern "${HASH_NAME_PATTERN.source}" with "${key}"`;
  }
  return undefined;
}

function checkNodes(nodes: UpstreamConf['nodes']): string | undefined {
  if (Array.isArray(nodes)) {
    for (const [index, node] of nodes.entries()) {
      if (node.host.includes(':') && !node.host.startsWith('[')) return "IPv6 address must be enclosed with '[' and ']'";
      const metadataError = checkMetadataSize(node.metadata);
      if (metadataError !== undefined) {
        return `property "nodes" validation failed: property "${index}" validation failed: property "metadata" validation failed: ${metadataError}`;
      }
    }
    return undefined;
  }
  for (const address of Object.keys(nodes)) {
    if (parseHostPort(address) === undefined) return `invalid node address "${address}": expected host or host:port`;
  }
  return undefined;
}

/**
 * The schema bounds metadata's keys and top-level count; its total size, which nested values make up, is bounded
 * here. Safe to serialise: the shape check has already bounded its depth.
 */
function checkMetadataSize(metadata: Record<string, unknown> | undefined): string | undefined {
  if (metadata === undefined) return undefined;
  const bytes = Buffer.byteLength(JSON.stringify(metadata));
  return bytes > MAX_METADATA_JSON_BYTES ? `too large, expected at most ${MAX_METADATA_JSON_BYTES} bytes of JSON, got ${bytes}` : undefined;
}

function checkSsl(ssl: SslConf, atWrite: boolean): string | undefined {
  const type = ssl.type ?? 'server';
  if (type === 'server' && (ssl.sni === undefined) === (ssl.snis === undefined)) {
    return 'exactly one of "sni" or "snis" is required for a server certificate';
  }
  const certs = ssl.certs ?? [];
  const keys = ssl.keys ?? [];
  if (certs.length !== keys.length) return 'mismatched number of certs and keys';
  const pairs: CertKeyPair[] = [{ cert: ssl.cert, key: ssl.key }];
  for (let i = 0; i < certs.length; i++) pairs.push({ cert: certs[i] ?? '', key: keys[i] ?? '' });
  return checkServablePairs(pairs, { atWrite });
}
