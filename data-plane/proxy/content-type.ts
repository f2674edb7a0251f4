/**
 * What a gRPC request's content type is (PROTOCOL-HTTP2.md: `application/grpc` [("+proto" / "+json" / {custom})]),
 * told apart from grpc-web's (`application/grpc-web…`, PROTOCOL-WEB.md), which shares its first 16 characters and is
 * served only on routes with the grpc-web plugin (web/serve-web.ts). Both engines ask this of every request.
 */

/** `application/grpc`: its length, and what may follow it (`+proto`, `;charset=…`). */
const GRPC_TYPE_LENGTH = 16;
const PLUS = 43;
const SEMICOLON = 59;

export function isGrpcContentType(contentType: string | undefined): boolean {
  if (contentType === undefined || !contentType.startsWith('application/grpc')) return false;
  if (contentType.length === GRPC_TYPE_LENGTH) return true;
  const next = contentType.charCodeAt(GRPC_TYPE_LENGTH);
  return next === PLUS || next === SEMICOLON;
}
