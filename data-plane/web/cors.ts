/**
 * The CORS answers of a route that serves browsers (grpc-web, grpc-transcode): a page on another origin may call it
 * and read the answer.
 *
 * Without the `cors` plugin, grpc-web's own (apisix/plugins/grpc-web.lua's header_filter; PROTOCOL-WEB.md "CORS
 * preflight"): a preflight (OPTIONS) is answered 204 with `access-control-allow-methods: POST` and the plugin's
 * `cors_allow_headers`; every answer has `access-control-allow-origin: *` and `access-control-expose-headers` with
 * `grpc-status` and `grpc-message` (APISIX's list) plus the answer's own metadata names, so that a script reading
 * response metadata (the official runtime's 'metadata' event) sees it.
 *
 * With the `cors` plugin (apisix/plugins/cors.lua; it runs before grpc-web there, and its headers win): the origin
 * is allowed when `allow_origins` is `*` (answered `*`), `**` (the origin echoed), lists it, or one of
 * `allow_origins_by_regex` matches it (echoed, with `vary: Origin`); an origin not allowed gets no CORS fields, so
 * the browser refuses the answer to the page. A preflight is answered 200 with the plugin's methods, headers
 * (`**`: the ones asked for) and max-age. grpc-web's exposed gRPC headers are added to the plugin's own.
 */
import type { CorsConf } from '../../shared/schema/plugin-web.ts';
import { compileSafeRegex, safeTest, type SafeRegex } from '../../shared/safe-regex.ts';

const ANY_ORIGIN = '*';
const GRPC_WEB_METHODS = 'POST';
const GRPC_EXPOSED = 'grpc-status,grpc-message';
/** grpc-web's preflight max-age (seconds): Chromium caps any larger value at 2 hours. */
const GRPC_WEB_MAX_AGE = '7200';
/** What `*` in allow_methods stands for (APISIX's list). */
const ALL_METHODS = 'GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE';
/** Response headers every browser reads without being told (CORS-safelisted), and the gRPC ones always exposed. */
const SAFELISTED = new Set(['cache-control', 'content-language', 'content-length', 'content-type', 'expires', 'last-modified', 'pragma', 'grpc-status', 'grpc-message']);

export class WebCors {
  /** grpc-web's `cors_allow_headers`; undefined on a route without grpc-web. */
  private readonly webAllowHeaders: string | undefined;
  private readonly plugin: CorsConf | undefined;
  private readonly origins: ReadonlySet<string>;
  private readonly originRegexes: readonly SafeRegex[];

  constructor(webAllowHeaders: string | undefined, plugin: CorsConf | undefined) {
    this.webAllowHeaders = webAllowHeaders;
    this.plugin = plugin;
    this.origins = new Set((plugin?.allow_origins ?? ANY_ORIGIN).split(',').map((origin) => origin.trim()));
    const regexes: SafeRegex[] = [];
    for (const source of plugin?.allow_origins_by_regex ?? []) {
      const compiled = compileSafeRegex(source);
      if (typeof compiled !== 'string') regexes.push(compiled); // the admin API refused the others
    }
    this.originRegexes = regexes;
  }

  /** The route serves grpc-web (its preflights and answers follow grpc-web's rules unless the cors plugin is set). */
  get grpcWeb(): boolean {
    return this.webAllowHeaders !== undefined;
  }

  /** The answer to a preflight (OPTIONS with an Origin). */
  preflightFields(origin: string | undefined, requestedHeaders: string | undefined): string[] {
    const plugin = this.plugin;
    if (plugin === undefined) {
      return [
        ':status', '204',
        'access-control-allow-origin', ANY_ORIGIN,
        'access-control-allow-methods', GRPC_WEB_METHODS,
        'access-control-allow-headers', this.webAllowHeaders ?? '',
        'access-control-max-age', GRPC_WEB_MAX_AGE,
        'content-length', '0',
      ];
    }
    const out = [':status', '200', 'content-length', '0'];
    if (!this.originFields(out, origin)) return out;
    const methods = plugin.allow_methods ?? '*';
    const headers = plugin.allow_headers ?? '*';
    out.push('access-control-allow-methods', methods === '*' || methods === '**' ? ALL_METHODS : methods);
    out.push('access-control-allow-headers', headers === '**' ? (requestedHeaders ?? '') : headers);
    out.push('access-control-max-age', String(plugin.max_age ?? 5));
    return out;
  }

  /** Adds the CORS fields to an answer's header list `out`; `names`: the answer's own header names. */
  answerFields(out: string[], origin: string | undefined, names: readonly string[]): void {
    const plugin = this.plugin;
    if (plugin !== undefined && !this.originFields(out, origin)) return;
    if (plugin === undefined) out.push('access-control-allow-origin', ANY_ORIGIN);
    let expose = this.webAllowHeaders === undefined ? '' : GRPC_EXPOSED;
    if (plugin?.expose_headers !== undefined) expose = expose === '' ? plugin.expose_headers : `${plugin.expose_headers},${expose}`;
    if (this.webAllowHeaders !== undefined || plugin?.expose_headers === '*') {
      for (const name of names) {
        if (!SAFELISTED.has(name) && !name.startsWith('access-control-')) expose += expose === '' ? name : `,${name}`;
      }
    }
    if (expose !== '') out.push('access-control-expose-headers', expose);
  }

  /** The cors plugin's origin fields for `origin`; false when the origin is not allowed (no CORS fields at all). */
  private originFields(out: string[], origin: string | undefined): boolean {
    const plugin = this.plugin;
    if (plugin === undefined) return true;
    const origins = this.origins;
    let allowed: string | undefined;
    if (origins.has('*') && plugin.allow_credential !== true) allowed = ANY_ORIGIN;
    else if (origin !== undefined && (origins.has('**') || origins.has(origin) || this.originRegexes.some((re) => safeTest(re, origin)))) allowed = origin;
    if (allowed === undefined) return false;
    out.push('access-control-allow-origin', allowed);
    if (allowed !== ANY_ORIGIN) out.push('vary', 'Origin');
    if (plugin.allow_credential === true) out.push('access-control-allow-credentials', 'true');
    return true;
  }
}
