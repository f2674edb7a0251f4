/**
 * How the admin API reads request bodies: as JSON text, whatever Content-Type says. APISIX decodes every admin body
 * with cjson and never looks at the header (apisix/admin/init.lua), and the seed document's `curl -X PUT -d '{...}'`
 * sends `application/x-www-form-urlencoded`, so honouring the header would break the documented commands.
 *
 * Fastify's own parsers (and its schema coercion) are removed: the body reaches the handler as raw bytes and is
 * validated only by shared/validate.ts, the same check the data plane applies.
 */
import type { FastifyInstance } from 'fastify';
import { AdminBadRequest, describe } from '../../shared/errors.ts';

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

/** The JSON value of a body; a missing or empty body is APISIX's `missing configurations`. */
export function parseJsonBody(raw: unknown): unknown {
  const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : typeof raw === 'string' ? raw : '';
  if (text.trim() === '') throw new AdminBadRequest('missing configurations');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new AdminBadRequest(`invalid request body: ${describe(err)}`);
  }
}
