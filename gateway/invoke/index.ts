import type { BunRequest, Server } from 'bun';
import { errorResponse } from '../errors';
import { clientAddress } from './front';
import type { InvokeService } from './service';

// Documented in the OpenAPI document by hand (./model.ts): `/function/{name}` and `/function/{name}/{path}`.

/**
 * `/function/:name[/*]` and `/function/:name@:version[/*]` (a preview URL), any method: the invoke
 * proxy, as routes of Bun's own router, which serves them before Elysia: the hot path pays for no
 * framework hooks, schema or context. The body is never parsed, only streamed. Errors get the same
 * JSON answers as every other route (errors.ts), and the same size limits (limits.ts).
 */
export function invokeRoutes(service: InvokeService) {
  const handler = (request: BunRequest, server: Server<unknown>): Response | Promise<Response> => {
    try {
      // Bun's router has decoded the segment (`%40` is `@`); who may call is checked by the service
      // (the admin token, a public function, or one of its keys).
      return service
        .invoke(request.params.name ?? '', request, clientAddress(server.requestIP(request)))
        .catch((error) => errorResponse(error, request));
    } catch (error) {
      return errorResponse(error, request);
    }
  };
  return { '/function/:name': handler, '/function/:name/*': handler };
}
