/**
 * `proxy-rewrite` (APISIX priority 1008): what the upstream is sent instead of what the client sent. `uri` replaces
 * the `:path` (a gRPC service or method renamed between client and upstream), `host` the `:authority` (with the
 * upstream's `pass_host: pass`, the default; `node` and `rewrite` still decide it), and `headers` sets, adds or
 * removes metadata; the older flat map form sets. Names are sent in lower case, as HTTP/2 requires. The client's
 * request is untouched for routing, logging and the plugins before this one.
 *
 * `regex_uri` (shared/regex-uri.ts) rewrites the client's `:path` with the first of its regexes that matches it,
 * unless `uri` is set, which wins (APISIX). `uri` and header values may name `$variables`, substituted per call
 * (shared/variable-template.ts, variables.ts); header values also `$1`… of `regex_uri`'s match. In a variable's
 * value put into `uri`, `?` is written `%3F` (APISIX's escape_separator). All of it is parsed once per snapshot; a
 * value without variables costs nothing more per call than before.
 *
 * A path made per call (variables, regex_uri) must still be a gRPC path: `/` then visible ASCII (RFC 9113 §8.3.1,
 * gRPC's `/Service/Method`). When it is not, or the client's path is too long for a regex to run on
 * (shared/safe-regex.ts), the call is refused with INTERNAL (RewriteFailed), as APISIX answers 500 when its
 * substitution fails, rather than sent upstream with a path the gateway did not mean to send.
 */
import { RewriteFailed } from '../../shared/errors.ts';
import { headerEdits } from '../../shared/proxy-rewrite-headers.ts';
import { applyRegexUri, parseRegexUri, type RegexUriRule } from '../../shared/regex-uri.ts';
import type { ProxyRewriteConf } from '../../shared/schema/plugin-policies.ts';
import { literalOf, parseTemplate, type TemplatePart } from '../../shared/variable-template.ts';
import type { CompiledPlugin } from './pipeline.ts';
import type { PluginRequest } from './request.ts';
import { renderTemplate } from './variables.ts';

const PRIORITY = 1008;
/** A gRPC `:path` as the upstream must get it. */
const GRPC_PATH = /^\/[\x21-\x7e]*$/;
/** How much of a refused path the log line shows. */
const LOGGED_PATH_CHARS = 256;

/** A value as written (no variables), or its parts to join per call. */
type Value = string | readonly TemplatePart[];

export function compileProxyRewrite(conf: ProxyRewriteConf): CompiledPlugin {
  const edits = headerEdits(conf.headers);
  const set = edits.set.map(([name, value]) => [name.toLowerCase(), compileValue(value, true, `header "${name}"`)] as const);
  const add = edits.add.map(([name, value]) => [name.toLowerCase(), compileValue(value, true, `header "${name}"`)] as const);
  const remove = edits.remove.map((name) => name.toLowerCase());
  const uri = conf.uri === undefined ? undefined : compileValue(conf.uri, false, '"uri"');
  const regexUri = conf.uri === undefined && conf.regex_uri !== undefined ? compileRegexUri(conf.regex_uri) : undefined;
  const { host } = conf;
  return {
    name: 'proxy-rewrite',
    priority: PRIORITY,
    access(request) {
      let captures: readonly (string | undefined)[] | undefined;
      if (uri !== undefined) {
        if (typeof uri === 'string') request.setUpstreamHeader(':path', uri); // checked when written
        else {
          const path = renderTemplate(uri, request, undefined, escapeSeparator);
          if (!GRPC_PATH.test(path)) return refuse(request, 'the rewritten path is not a gRPC path', path);
          request.setUpstreamHeader(':path', path);
        }
      } else if (regexUri !== undefined) {
        const result = applyRegexUri(regexUri, request.path);
        if (result === 'too long') return refuse(request, "the client's path is too long for regex_uri", request.path);
        if (result !== undefined) {
          if (!GRPC_PATH.test(result.path)) return refuse(request, 'the rewritten path is not a gRPC path', result.path);
          request.setUpstreamHeader(':path', result.path);
          captures = result.captures;
        }
      }
      if (host !== undefined) {
        request.setUpstreamHeader(':authority', host);
        request.removeUpstreamHeader('host');
      }
      for (const [name, value] of set) request.setUpstreamHeader(name, typeof value === 'string' ? value : renderTemplate(value, request, captures));
      for (const [name, value] of add) request.addUpstreamHeader(name, typeof value === 'string' ? value : renderTemplate(value, request, captures));
      for (const name of remove) request.removeUpstreamHeader(name);
      return undefined;
    },
  };
}

/** `text` parsed once; the admin API refused an unknown variable, so a failure here is a bug. */
function compileValue(text: string, captures: boolean, where: string): Value {
  const parts = parseTemplate(text, captures, where);
  if (typeof parts === 'string') throw new Error(`proxy-rewrite: ${parts}`);
  return literalOf(parts) ?? parts;
}

function compileRegexUri(list: readonly string[]): RegexUriRule[] {
  const rules = parseRegexUri(list);
  if (typeof rules === 'string') throw new Error(`proxy-rewrite: ${rules}`); // the admin API refuses such rules
  return rules;
}

/** APISIX's escape_separator: a `?` in a variable's value does not start a query in the rewritten path. */
function escapeSeparator(value: string): string {
  return value.includes('?') ? value.replaceAll('?', '%3F') : value;
}

function refuse(request: PluginRequest, why: string, path: string): { error: RewriteFailed } {
  return { error: new RewriteFailed(`route ${request.routeId}: ${why}: ${JSON.stringify(path.slice(0, LOGGED_PATH_CHARS))}`) };
}
