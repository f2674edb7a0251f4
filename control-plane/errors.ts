/**
 * Control-plane errors that shared/errors.ts does not have yet. They extend the one GatewayError hierarchy, so the
 * admin error handler maps them like every other gateway error (code, gRPC status, HTTP status); they live here
 * only until shared/ adopts them (see the report of issue #2).
 */
import { GatewayError } from '../shared/errors.ts';
import { GrpcStatus } from '../shared/grpc-status.ts';

/** `/apisix/admin/<segment>` names no resource this gateway serves (APISIX answers 404, apisix-compat §2.1). */
export class UnsupportedResourceType extends GatewayError {
  constructor(segment: string) {
    super('UNSUPPORTED_RESOURCE_TYPE', `Unsupported resource type: ${segment}`, GrpcStatus.NOT_FOUND, 404);
  }
}

/** No admin route for this method and path (APISIX answers 404 `{"error_msg":"not found"}`). */
export class AdminRouteNotFound extends GatewayError {
  constructor() {
    super('ADMIN_ROUTE_NOT_FOUND', 'not found', GrpcStatus.NOT_FOUND, 404);
  }
}

/**
 * A compare-and-swap write lost the race against other writers more times than the store retries. APISIX answers
 * this with 503 `value changed before overwritten` (apisix-compat §2.3, PATCH).
 */
export class StoreConflict extends GatewayError {
  constructor(key: string) {
    super('STORE_CONFLICT', `value changed before overwritten: ${key}`, GrpcStatus.ABORTED, 503);
  }
}
