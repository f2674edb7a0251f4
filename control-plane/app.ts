/**
 * buildApp: the admin API as a Fastify instance, assembled from its parts and never listening (main.ts listens,
 * tests use inject()). Everything it needs is passed in: the store, the process's logger, the admin keys and
 * allow-list, and the keyring private keys are encrypted with.
 *
 * Request order: client address (403) → key (401) → handler; the OpenAPI generator is registered before any
 * route so it documents them all.
 *
 * Every response, errors included, carries `Content-Type: application/json` and `X-API-VERSION: v3`, as APISIX's
 * admin API does. Fastify's per-request logs are off: the admin API logs failures only.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { GatewayConfig } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import { createAllowAdminHook } from './admin/allow-admin.ts';
import { createAuthHook } from './admin/auth.ts';
import { installErrorHandler } from './admin/error-handler.ts';
import { registerOpenApi, registerOpenApiRoute } from './admin/openapi.ts';
import { MAX_BODY_BYTES, acceptAnyContentType } from './admin/request-body.ts';
import { registerResourceRoutes } from './admin/resource-handlers.ts';
import { registerSchemaRoutes } from './admin/schema-routes.ts';
import { registerPluginRoutes } from './admin/plugin-routes.ts';
import type { ResourceStore } from './store/resource-store.ts';

export interface AppDeps {
  store: ResourceStore;
  log: Logger;
  config: Pick<GatewayConfig, 'admin' | 'dataEncryption'>;
}

/** The admin API version header value: the v3 response shapes (APISIX 3.x `admin_api_version: v3`). */
export const ADMIN_API_VERSION = 'v3';

export function buildApp(deps: AppDeps): FastifyInstance {
  // Typed as Fastify's logger interface so the instance is a plain FastifyInstance the admin modules can take.
  const log: FastifyBaseLogger = deps.log.child({ module: 'admin' });
  const app = Fastify({
    loggerInstance: log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: MAX_BODY_BYTES,
    // `/apisix/admin/routes/` lists, as in APISIX, whose router splits the path and ignores empty segments.
    routerOptions: { ignoreTrailingSlash: true },
  });

  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('content-type', 'application/json');
    reply.header('x-api-version', ADMIN_API_VERSION);
    // APISIX ends every body with a newline (core.response.exit), which also keeps a shell prompt after curl.
    return typeof payload === 'string' && !payload.endsWith('\n') ? `${payload}\n` : payload;
  });
  installErrorHandler(app);
  acceptAnyContentType(app);
  app.addHook('onRequest', createAllowAdminHook(deps.config.admin.allowAdmin));
  registerOpenApi(app);

  // The token check covers /apisix/admin/* only; unknown paths elsewhere get a plain 404 without asking for a key.
  app.register(async (admin) => {
    admin.addHook('onRequest', createAuthHook(deps.config.admin.keys));
    registerSchemaRoutes(admin);
    registerPluginRoutes(admin);
    registerOpenApiRoute(admin);
    registerResourceRoutes(admin, { store: deps.store, keyring: deps.config.dataEncryption.keyring });
  });
  return app;
}
