/**
 * The variables of a call, as the plugins read them (shared/limit-key.ts names them; shared/variable-template.ts
 * and shared/vars-expr.ts use them): the client's connection, the route, the `:path` and `:authority` the client
 * sent, the consumer an authentication plugin found, and request headers. A header or consumer that is absent has
 * no value (undefined), as an nginx variable is nil.
 */
import type { TemplatePart, VariableRef } from '../../shared/variable-template.ts';
import type { PluginRequest } from './request.ts';

export function variableValue(ref: VariableRef, request: PluginRequest): string | undefined {
  if ('header' in ref) return request.header(ref.header);
  switch (ref.variable) {
    case 'remote_addr':
      return request.remoteAddress;
    case 'remote_port':
      return String(request.remotePort);
    case 'server_addr':
      return request.localAddress;
    case 'server_port':
      return String(request.localPort);
    case 'route_id':
      return request.routeId;
    case 'host':
      return request.host;
    case 'uri':
    case 'request_uri':
      return request.path;
    case 'consumer_name':
      return request.consumer?.username;
  }
}

/**
 * `parts` with the call's values: an absent variable is its `${name ?? default}` or empty, a capture `regex_uri`
 * did not make is empty (APISIX). `escape` is applied to each substituted value (not to the template's own text).
 */
export function renderTemplate(
  parts: readonly TemplatePart[],
  request: PluginRequest,
  captures: readonly (string | undefined)[] | undefined,
  escape?: (value: string) => string,
): string {
  let out = '';
  for (const part of parts) {
    if ('text' in part) {
      out += part.text;
      continue;
    }
    const value = 'capture' in part ? (captures?.[part.capture] ?? '') : (variableValue(part.ref, request) ?? part.fallback ?? '');
    out += escape === undefined ? value : escape(value);
  }
  return out;
}
