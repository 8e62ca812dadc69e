import { Elysia } from 'elysia';
import type { InvokeService } from './service';

/** `/function/:name[/*]` and `/function/:name@:version[/*]` (a preview URL), any method: the invoke proxy. The body is never parsed, only streamed. */
export function invokeRoutes(service: InvokeService, checkToken: (ctx: { request: Request }) => void) {
  const handler = ({
    request,
    params,
    server,
  }: {
    request: Request;
    params: { name: string };
    server: { requestIP(r: Request): { address: string } | null } | null;
  }) => service.invoke(decodeTarget(params.name), request, server?.requestIP(request)?.address);
  return new Elysia({ name: 'invoke' })
    .onBeforeHandle(checkToken)
    .all('/function/:name', handler, { parse: 'none' })
    .all('/function/:name/*', handler, { parse: 'none' });
}

/** The path segment as sent, `%40` for `@` included. */
function decodeTarget(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment; // malformed escapes: parseTarget refuses the name
  }
}
