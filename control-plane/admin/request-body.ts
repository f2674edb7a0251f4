/**
 * How the admin API reads request bodies: as JSON text, whatever Content-Type says. APISIX decodes every admin body
 * with cjson and never looks at the header (apisix/admin/init.lua), and the seed document's `curl -X PUT -d '{...}'`
 * sends `application/x-www-form-urlencoded`, so honouring the header would break the documented commands.
 *
 * Fastify's own parsers (and its schema coercion) are removed: the body reaches the handler as raw bytes and is
 * validated only by shared/validate.ts, the same check the data plane applies. So Fastify's `onProtoPoisoning` and
 * `onConstructorPoisoning` (both 'error' by default) never see an admin body; their job is done here, stricter, by
 * shared/json-bounds.ts: any `__proto__`, `constructor` or `prototype` key and any nesting deeper than 32 levels is
 * a 400 before the body is merged, copied or serialised (issue #11 case 8), whatever the Content-Type said.
 */
import type { FastifyInstance } from 'fastify';
import { AdminBadRequest, describe } from '../../shared/errors.ts';
import { jsonShapeError } from '../../shared/json-bounds.ts';

/** APISIX's MAX_REQ_BODY: 1.5 MiB (apisix/admin/init.lua). */
export const MAX_BODY_BYTES = 1.5 * 1024 * 1024;

/**
 * Makes every body on `app` arrive as a Buffer. The Content-Type header is dropped before parsing because Fastify
 * answers 415 on its own for a header it cannot parse, before any content-type parser is consulted.
 */
export function acceptAnyContentType(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => {
    done(null, body);
  });
  app.addHook('preParsing', async (request, _reply, payload) => {
    delete request.headers['content-type'];
    return payload;
  });
}

/**
 * The JSON value of a body; a missing or empty body is APISIX's `missing configurations`, a body too deep or with a
 * prototype key `invalid request body: …`. V8's JSON.parse is iterative, so parsing itself survives any depth the
 * 1.5 MiB limit allows; the shape check then refuses it before anything recursive runs.
 */
export function parseJsonBody(raw: unknown): unknown {
  const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : typeof raw === 'string' ? raw : '';
  if (text.trim() === '') throw new AdminBadRequest('missing configurations');
  let body: unknown;
  try {
    body = JSON.parse(text) as unknown;
  } catch (err) {
    throw new AdminBadRequest(`invalid request body: ${describe(err)}`);
  }
  const shapeError = jsonShapeError(body);
  if (shapeError !== undefined) throw new AdminBadRequest(`invalid request body: ${shapeError}`);
  return body;
}
