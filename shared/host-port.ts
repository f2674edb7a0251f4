/**
 * Upstream node addresses (`nodes` keys): split and checked here, apart from the validators, so that the data plane's
 * workers can read them without loading the schemas and ajv (shared/validate.ts uses it too).
 */

/** `host`, `host:port`, `[v6]` or `[v6]:port`; undefined when the port is not 1..65535 or the host is empty. */
export function parseHostPort(address: string): { host: string; port: number | undefined } | undefined {
  let host: string;
  let portText: string | undefined;
  if (address.startsWith('[')) {
    const end = address.indexOf(']');
    if (end < 0) return undefined;
    host = address.slice(0, end + 1);
    const rest = address.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':')) return undefined;
    portText = rest === '' ? undefined : rest.slice(1);
  } else {
    const colon = address.lastIndexOf(':');
    if (colon >= 0 && address.indexOf(':') !== colon) return undefined; // bare IPv6 must be bracketed
    host = colon < 0 ? address : address.slice(0, colon);
    portText = colon < 0 ? undefined : address.slice(colon + 1);
  }
  if (host === '' || host === '[]') return undefined;
  if (portText === undefined) return { host, port: undefined };
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  return { host, port };
}
