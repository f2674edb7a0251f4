/**
 * `GET /apisix/admin/plugins/list` and `GET /apisix/admin/plugins/<name>` (apisix/admin/plugins.lua): the names of
 * the plugins a route, service, global rule or plugin config may carry, and the JSON schema of one, the very object
 * both planes validate with. `?schema_type=consumer` gives the schema of what a consumer carries for that plugin
 * (`key-auth`'s key). An unknown name is APISIX's 400 `plugin not found in subsystem http`.
 */
import type { FastifyInstance } from 'fastify';
import { AdminBadRequest } from '../../shared/errors.ts';
import { ConsumerPluginsSchema } from '../../shared/schema/consumer.ts';
import { PluginsSchema } from '../../shared/schema/plugins.ts';
import { isJsonObject } from './resources.ts';

interface PluginParams {
  name: string;
}

const ROUTE_PLUGINS: Readonly<Record<string, unknown>> = PluginsSchema.properties;
const CONSUMER_PLUGINS: Readonly<Record<string, unknown>> = ConsumerPluginsSchema.properties;

export function registerPluginRoutes(admin: FastifyInstance): void {
  admin.get('/apisix/admin/plugins/list', { schema: { tags: ['Plugins'], summary: 'The names of the plugins this gateway runs' } }, async () =>
    Object.keys(ROUTE_PLUGINS).sort(),
  );
  admin.get<{ Params: PluginParams }>(
    '/apisix/admin/plugins/:name',
    { schema: { tags: ['Plugins'], summary: "A plugin's JSON schema (?schema_type=consumer: what a consumer carries for it)" } },
    async (request) => {
      const consumer = isJsonObject(request.query) && request.query['schema_type'] === 'consumer';
      const table = consumer ? CONSUMER_PLUGINS : ROUTE_PLUGINS;
      const name = request.params.name;
      const schema = Object.hasOwn(table, name) ? table[name] : undefined;
      if (schema === undefined) throw new AdminBadRequest('plugin not found in subsystem http');
      return schema;
    },
  );
}
