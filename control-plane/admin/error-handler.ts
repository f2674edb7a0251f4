/**
 * The one mapping from errors to admin API responses, and the only code that writes `{"error_msg": …}`. Shapes are
 * APISIX's: 401 `{"error_msg":"failed to check token","description":…}`, 404
 * `{"message":"Key not found"}` for an absent key, `{"error_msg":…}` for everything else. Gateway errors carry their
 * own HTTP status; Fastify's client errors keep theirs; anything else is a 500 whose detail stays in the log.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AdminRouteNotFound, GatewayError, KeyNotFound, Unauthorized, describe } from '../../shared/errors.ts';
import { MAX_BODY_BYTES } from './request-body.ts';

export interface ErrorResponse {
  status: number;
  body: Record<string, string>;
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const response = toErrorResponse(error);
    if (response.status >= 500) {
      request.log.warn({ status: response.status, err: describe(error) }, 'admin request failed');
    } else {
      request.log.debug({ status: response.status, err: describe(error) }, 'admin request rejected');
    }
    return reply.code(response.status).send(response.body);
  });
  app.setNotFoundHandler((_request, reply) => {
    const response = toErrorResponse(new AdminRouteNotFound());
    return reply.code(response.status).send(response.body);
  });
}

export function toErrorResponse(error: unknown): ErrorResponse {
  if (error instanceof KeyNotFound) return { status: 404, body: { message: 'Key not found' } };
  if (error instanceof Unauthorized) {
    return { status: error.httpStatus, body: { error_msg: error.message, description: error.description } };
  }
  if (error instanceof GatewayError) return { status: error.httpStatus, body: { error_msg: error.message } };
  const fastify = fastifyClientError(error);
  if (fastify !== undefined) return fastify;
  return { status: 500, body: { error_msg: 'internal error' } };
}

/** Errors Fastify raises while reading a request (body too large, bad content-length): 4xx with their message. */
function fastifyClientError(error: unknown): ErrorResponse | undefined {
  if (!(error instanceof Error)) return undefined;
  const { code, statusCode } = error as Error & { code?: unknown; statusCode?: unknown };
  if (typeof code !== 'string' || !code.startsWith('FST_')) return undefined;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    // APISIX answers an oversized body with 400 and this wording rather than 413.
    return {
      status: 400,
      body: { error_msg: `invalid request body: request size is greater than the maximum size ${MAX_BODY_BYTES} allowed` },
    };
  }
  if (typeof statusCode !== 'number' || statusCode < 400 || statusCode >= 500) return undefined;
  return { status: statusCode, body: { error_msg: error.message } };
}
