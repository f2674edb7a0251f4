/**
 * The control plane process: config → logger → etcd store → admin app → listen, and a graceful close on SIGTERM or
 * SIGINT. It refuses to start when the documented admin key of APISIX's docs would be reachable from other hosts:
 * that key is public, so on a non-loopback address it would hand etcd's content to anyone.
 *
 * etcd may be down at start: the admin API still listens (and answers 503 until etcd is back), and the `init_dir`
 * placeholders are written as soon as etcd answers.
 */
import type { AddressInfo } from 'node:net';
import { DOCUMENTED_ADMIN_KEY, DOCUMENTED_KEYRING, isLoopback, loadConfig, type GatewayConfig } from '../shared/config.ts';
import { describe } from '../shared/errors.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { buildApp } from './app.ts';
import type { ResourceStore } from './store/resource-store.ts';
import { createEtcdStore } from './store/etcd-store.ts';

/** How often to retry writing the etcd directory placeholders while etcd is unreachable. */
const ENSURE_DIRS_RETRY_MS = 5_000;

async function main(): Promise<void> {
  let config: GatewayConfig;
  try {
    config = loadConfig();
  } catch (err) {
    return fail(describe(err));
  }
  const refusal = unsafeAdminKey(config);
  if (refusal !== undefined) return fail(refusal);

  const log = createLogger({ level: config.log.level, name: 'control-plane' });
  if (config.ignoredKeys.length > 0) log.warn({ keys: config.ignoredKeys }, 'config keys this gateway does not read are ignored');
  if (config.dataEncryption.keyring.some((entry) => DOCUMENTED_KEYRING.includes(entry))) {
    // APISIX's default keyring is public: keys stored with it are obfuscated, not protected.
    log.warn('private keys are encrypted with the documented default keyring; set apisix.data_encryption.keyring');
  }
  let store: ResourceStore;
  try {
    store = createEtcdStore({ ...config.etcd, log });
  } catch (err) {
    return fail(describe(err));
  }
  const app = buildApp({ store, log, config });
  const dirs = ensureDirsInBackground(store, log);

  try {
    await app.listen({ host: config.admin.ip, port: config.admin.port });
  } catch (err) {
    dirs.stop();
    await store.close();
    return fail(`cannot listen on ${config.admin.ip}:${config.admin.port}: ${describe(err)}`);
  }
  const url = listenUrl(config.admin.ip, app.server.address());
  log.info({ url }, `admin API listening on ${url}`);

  let closing = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'shutting down');
    dirs.stop();
    app
      .close()
      .catch((err: unknown) => log.error({ err: describe(err) }, 'admin API did not close cleanly'))
      .then(() => store.close())
      .then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

/** The reason to refuse to start, if the documented (public) admin key would be reachable beyond this host. */
function unsafeAdminKey(config: Pick<GatewayConfig, 'admin'>): string | undefined {
  const { ip, port, keys } = config.admin;
  if (isLoopback(ip) || !keys.some((entry) => entry.key === DOCUMENTED_ADMIN_KEY)) return undefined;
  return (
    `refusing to start: the admin API would listen on ${ip}:${port} with the documented admin key ` +
    `${DOCUMENTED_ADMIN_KEY}, which anyone can read in APISIX's docs. Set GATEWAY_ADMIN_KEY ` +
    `(or deployment.admin.admin_key in conf/config.yaml) to a secret of your own, or listen on 127.0.0.1.`
  );
}

/** Writes the placeholders now, or keeps retrying in the background until etcd answers or the process stops. */
function ensureDirsInBackground(store: ResourceStore, log: Logger): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const attempt = (): void => {
    store.ensureDirs().then(
      () => log.debug('etcd directories ready'),
      (err: unknown) => {
        if (stopped) return;
        log.warn({ err: describe(err), retryInMs: ENSURE_DIRS_RETRY_MS }, 'cannot prepare etcd directories yet');
        timer = setTimeout(attempt, ENSURE_DIRS_RETRY_MS);
        timer.unref();
      },
    );
  };
  attempt();
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

function listenUrl(configuredIp: string, address: AddressInfo | string | null): string {
  const port = address !== null && typeof address === 'object' ? address.port : undefined;
  const host = configuredIp.includes(':') && !configuredIp.startsWith('[') ? `[${configuredIp}]` : configuredIp;
  return `http://${host}${port === undefined ? '' : `:${port}`}`;
}

function fail(message: string): never {
  process.stderr.write(`control-plane: ${message}\n`);
  process.exit(1);
}

main().catch((err: unknown) => fail(describe(err)));
