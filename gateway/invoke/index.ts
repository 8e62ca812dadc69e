import { Elysia } from 'elysia';
import type { InvokeService } from './service';

/** `/function/:name[/*]`, any method: the invoke proxy. The body is never parsed, only streamed. */
export function invokeRoutes(service: InvokeService, checkToken: (ctx: { request: Request }) => void) {
  const prefixLength = (name: string) => `/function/${name}`.length;
  const handler = ({
    request,
    params,
    server,
  }: {
    request: Request;
    params: { name: string };
    server: { requestIP(r: Request): { address: string } | null } | null;
  }) => {
    const path = new URL(request.url).pathname.slice(prefixLength(params.name)) || '/';
    return service.invoke(params.name, request, path, server?.requestIP(request)?.address);
  };
  return new Elysia({ name: 'invoke' })
    .onBeforeHandle(checkToken)
    .all('/function/:name', handler, { parse: 'none' })
    .all('/function/:name/*', handler, { parse: 'none' });
}
