/**
 * Objects that hold only plugins (APISIX `_M.global_rule` and `_M.plugin_config`):
 *
 * - a global rule's plugins run on every routed call, before the route's own (each rule in the order of its id);
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
