/**
 * Objects that hold only plugins (APISIX `_M.global_rule` and `_M.plugin_config`):
 *
 * - a global rule's plugins run on every routed call, before the route's own (each rule in the order of its id);
 * - a plugin's metadata (`/apisix/admin/plugin_metadata/<plugin name>`, APISIX `metadata_schema`) holds settings
 *   every use of that plugin shares: limit-count's names for its quota headers;
 * - a plugin config is a named set of plugins that routes share by `plugin_config_id`; a route's own configuration
 *   of a plugin wins over its plugin config's, which wins over its service's (APISIX's merge order).
 */
import { Type, type Static } from '@sinclair/typebox';
import { ObjectMetaFields } from './common.ts';
import { PluginsSchema } from './plugins.ts';

export const GlobalRuleSchema = Type.Object(
  {
    ...ObjectMetaFields,
    plugins: PluginsSchema,
  },
  { additionalProperties: false },
);

export const PluginConfigSchema = Type.Object(
  {
    ...ObjectMetaFields,
    plugins: PluginsSchema,
  },
  { additionalProperties: false },
);

export type GlobalRuleConf = Static<typeof GlobalRuleSchema>;
export type PluginConfigConf = Static<typeof PluginConfigSchema>;

/** An HTTP/2 field name (lower case is what is sent; APISIX's `X-RateLimit-Limit` is accepted and lower-cased). */
const HeaderName = Type.String({ minLength: 1, maxLength: 256, pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$" });

/**
 * `/apisix/plugin_metadata/<plugin name>`: the id is the plugin's name, and only plugins with a metadata schema take
 * one (validate.ts). limit-count (APISIX's metadata_schema): the names of its quota headers.
 */
export const PluginMetadataSchema = Type.Object(
  {
    ...ObjectMetaFields,
    id: Type.String({ minLength: 1, maxLength: 64 }),
    limit_header: Type.Optional(HeaderName),
    remaining_header: Type.Optional(HeaderName),
    reset_header: Type.Optional(HeaderName),
  },
  { additionalProperties: false },
);

export type PluginMetadataConf = Static<typeof PluginMetadataSchema>;

/** The plugins that take metadata. */
export const PLUGINS_WITH_METADATA: readonly string[] = ['limit-count'];
