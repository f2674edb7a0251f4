/**
 * `GET /apisix/admin/schema/<name>`: the JSON schema of one resource type, with APISIX's singular names (`route`,
 * `upstream`, `service`, `ssl`; apisix/admin/schema.lua). It is the object both planes
 * validate with, so a client can check a document before sending it; the cross-field rules that JSON Schema
 * cannot say are listed in docs/admin-api.md. An unknown name is APISIX's 400 `not found schema: <name>`.
 */
import type { FastifyInstance } from 'fastify';
import { AdminBadRequest } from '../../shared/errors.ts';
import { schemas } from '../../shared/validate.ts';
import { kindBySingular } from './resources.ts';

interface SchemaParams {
  name: string;
}

export function registerSchemaRoutes(admin: FastifyInstance): void {
  admin.get<{ Params: SchemaParams }>(
    '/apisix/admin/schema/:name',
    { schema: { tags: ['Schemas'], summary: 'The JSON schema of route, upstream, service or ssl' } },
    async (request) => {
      const kind = kindBySingular(request.params.name);
      if (kind === undefined) throw new AdminBadRequest(`not found schema: ${request.params.name}`);
      return schemas[kind.type];
    },
  );
}
