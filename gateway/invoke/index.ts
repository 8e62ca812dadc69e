import { Elysia } from 'elysia';
import type { InvokeService } from './service';

// Documented in the OpenAPI document by hand (./model.ts): `/function/{name}` and `/function/{name}/{path}`.

/** `/function/:name[/*]` and `/function/:name@:version[/*]` (a preview URL), any method: the invoke proxy. The body is never parsed, only streamed. */
export function invokeRoutes(service: InvokeService) {
  const handler = ({
    request,
    params,
    server,
  }: {
    request: Request;
    params: { name: string };
    server: { requestIP(r: Request): { address: string } | null } | null;
  }) => service.invoke(decodeTarget(params.name), request, server?.requestIP(request)?.address);
  // Who may call is checked by the service (the admin token, a public function, or one of its keys).
  return new Elysia({ name: 'invoke' })
    .all('/function/:name', handler, { parse: 'none', detail: { hide: true } })
    .all('/function/:name/*', handler, { parse: 'none', detail: { hide: true } });
}

/** The path segment as sent, `%40` for `@` included. */
function decodeTarget(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment; // malformed escapes: parseTarget refuses the name
  }
}
