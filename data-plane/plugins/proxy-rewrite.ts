/**
 * `proxy-rewrite` (APISIX priority 1008): what the upstream is sent instead of what the client sent. `uri` replaces
 * the `:path` (a gRPC service or method renamed between client and upstream), `host` the `:authority` (with the
 * upstream's `pass_host: pass`, the default; `node` and `rewrite` still decide it), and `headers` sets, adds or
 * removes metadata; the older flat map form sets. Names are sent in lower case, as HTTP/2 requires. The client's
 * request is untouched for routing, logging and the plugins before this one.
 */
import { headerEdits } from '../../shared/proxy-rewrite-headers.ts';
import type { ProxyRewriteConf } from '../../shared/schema/plugin-policies.ts';
import type { CompiledPlugin } from './pipeline.ts';

const PRIORITY = 1008;

export function compileProxyRewrite(conf: ProxyRewriteConf): CompiledPlugin {
  const edits = headerEdits(conf.headers);
  const set = edits.set.map(([name, value]) => [name.toLowerCase(), value] as const);
  const add = edits.add.map(([name, value]) => [name.toLowerCase(), value] as const);
  const remove = edits.remove.map((name) => name.toLowerCase());
  const { uri, host } = conf;
  return {
    name: 'proxy-rewrite',
    priority: PRIORITY,
    access(request) {
      if (uri !== undefined) request.setUpstreamHeader(':path', uri);
      if (host !== undefined) {
        request.setUpstreamHeader(':authority', host);
        request.removeUpstreamHeader('host');
      }
      for (const [name, value] of set) request.setUpstreamHeader(name, value);
      for (const [name, value] of add) request.addUpstreamHeader(name, value);
      for (const name of remove) request.removeUpstreamHeader(name);
      return undefined;
    },
  };
}
