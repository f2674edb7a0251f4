/**
 * The service schema (APISIX `_M.service`, docs/admin-api.md): settings shared by the routes that name it with
 * `service_id`. A route inherits the service's upstream (inline or by `upstream_id`) and plugins; the route's own
 * upstream and plugins win (APISIX `plugin.merge_service_route`). A service's `hosts` apply to its routes that set
 * none. Lua-only fields (`script`) and `enable_websocket` have no meaning for a gRPC gateway and are refused.
 *
 * `upstream` xor `upstream_id` is checked in shared/validate.ts.
 */
import { Type, type Static } from '@sinclair/typebox';
import {
  HostSchema,
  IdSchema,
  NamedObjectFields,
} from './common.ts';
import { PluginsSchema } from './plugins.ts';
import { UpstreamSchema } from './upstream.ts';

export const ServiceSchema = Type.Object(
  {
    ...NamedObjectFields,
    upstream: Type.Optional(UpstreamSchema),
    upstream_id: Type.Optional(IdSchema),
    plugins: Type.Optional(PluginsSchema),
    hosts: Type.Optional(Type.Array(HostSchema, { minItems: 1, uniqueItems: true })),
  },
  { additionalProperties: false },
);

export type ServiceConf = Static<typeof ServiceSchema>;
