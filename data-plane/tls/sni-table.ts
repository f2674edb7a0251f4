/**
 * Certificate selection by SNI for the TLS listener, built from the `ssls` objects of one snapshot (APISIX's
 * radixtree_sni semantics): names are matched case-insensitively without a trailing dot, an
 * exact name first, then `*.example.com` (exactly one more label), then `*`. Objects of `type: client` or with
 * `status: 0` are not served. Secure contexts are expensive to build, so unchanged objects (same id and etcd
 * mod revision) reuse the context of the previous table. Every context carries the listeners' TLS policy
 * (tls-policy.ts explains why the server's options are the ones OpenSSL applies).
 */
import type { SecureContext } from 'node:tls';
import { describe } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import type { SslConf } from '../../shared/schema/ssl.ts';
import { createCertificateContext } from '../../shared/tls-check.ts';
import type { ListenerTlsOptions } from './tls-policy.ts';

/** An `ssls` object as the configuration holds it (config/config-state.ts's ConfigItem, structurally). */
type SslItem = { readonly id: string; readonly value: SslConf; readonly modRevision: string };

export interface CachedContext {
  id: string;
  modRevision: string;
  context: SecureContext;
  /** The PEMs, for the listener's default context (clients without SNI never reach SNICallback). */
  cert: string[];
  key: string[];
}

export class SniTable {
  private readonly exact = new Map<string, CachedContext>();
  private readonly wildcard = new Map<string, CachedContext>();
  private star: CachedContext | undefined;
  /** id → context, handed to the next table so unchanged certificates are not parsed again. */
  readonly contexts: ReadonlyMap<string, CachedContext>;

  constructor(items: Iterable<SslItem>, previous: SniTable | undefined, log: Logger, policy?: ListenerTlsOptions) {
    const contexts = new Map<string, CachedContext>();
    for (const item of items) {
      const ssl = item.value;
      if ((ssl.type ?? 'server') !== 'server' || ssl.status === 0) continue;
      let cached = previous?.contexts.get(item.id);
      if (cached === undefined || cached.modRevision !== item.modRevision) {
        try {
          cached = buildContext(item, policy);
        } catch (err) {
          log.warn({ ssl: item.id, err: describe(err) }, 'skipping ssl object whose certificate cannot be loaded');
          continue;
        }
      }
      contexts.set(item.id, cached);
      for (const raw of ssl.snis ?? (ssl.sni === undefined ? [] : [ssl.sni])) {
        const name = normaliseName(raw);
        if (name === '*') this.star ??= cached;
        else if (name.startsWith('*.')) setFirst(this.wildcard, name.slice(2), cached);
        else setFirst(this.exact, name, cached);
      }
    }
    this.contexts = contexts;
  }

  /** The certificate for a client's SNI, or undefined when none matches. */
  lookup(servername: string): CachedContext | undefined {
    const name = normaliseName(servername);
    const exact = this.exact.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    if (dot > 0) {
      const wildcard = this.wildcard.get(name.slice(dot + 1));
      if (wildcard !== undefined) return wildcard;
    }
    return this.star;
  }
}

function buildContext(item: SslItem, policy: ListenerTlsOptions | undefined): CachedContext {
  const cert = [item.value.cert, ...(item.value.certs ?? [])];
  const key = [item.value.key, ...(item.value.keys ?? [])];
  // The same loader the admin API tried at write time (shared/tls-check.ts), so what it accepted loads here.
  const context = createCertificateContext(cert, key, policy);
  return { id: item.id, modRevision: item.modRevision, context, cert, key };
}

function normaliseName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** Several objects may claim a name; the first one (lowest id order of the config) keeps it, as a stable rule. */
function setFirst(map: Map<string, CachedContext>, key: string, context: CachedContext): void {
  if (!map.has(key)) map.set(key, context);
}
