// The runtime contract for Bun: serve the user's `export default { fetch(request) }` on PORT,
// answer GET /_/health when ready, turn an uncaught exception into a 500 (the process stays up),
// and stop gracefully on SIGTERM: finish in-flight requests, then exit.
// A request names the instance it was routed to (x-plat-instance); one meant for another instance
// (a route that outlived its container, whose address this container now has) is refused with 421
// and never reaches the function. A request that names none (a check from the host) is served.

type Handler = { fetch(request: Request): Response | Promise<Response> };

const HEALTH_PATH = '/_/health';
const GRACE_MS = Number(process.env.PLAT_GRACE_MS ?? 10_000);
const entry = process.env.PLAT_ENTRY ?? '/app/index.ts';
const INSTANCE_ID = process.env.PLAT_INSTANCE_ID;

function misdirected(request: Request): Response | undefined {
  const named = request.headers.get('x-plat-instance');
  if (named === null || !INSTANCE_ID || named === INSTANCE_ID) return undefined;
  return Response.json(
    { error: { code: 'MISDIRECTED_REQUEST', message: 'this request was routed to another instance' } },
    { status: 421, headers: { 'x-plat-refused': 'instance' } },
  );
}

const userModule = await import(entry);
const handler: Handler | undefined = userModule.default;
if (!handler || typeof handler.fetch !== 'function') {
  console.error(`${entry} must default-export an object with a fetch(request) method`);
  process.exit(1);
}

const server = Bun.serve({
  port: Number(process.env.PORT ?? 8080),
  hostname: '0.0.0.0',
  idleTimeout: 255,
  async fetch(request) {
    const refusal = misdirected(request);
    if (refusal) return refusal;
    if (new URL(request.url).pathname === HEALTH_PATH) return new Response('ok');
    try {
      const response = await handler.fetch(request);
      if (!(response instanceof Response)) throw new TypeError('fetch() must return a Response');
      return response;
    } catch (error) {
      console.error(error);
      return Response.json(
        { error: { code: 'FUNCTION_ERROR', message: error instanceof Error ? error.message : String(error) } },
        { status: 500 },
      );
    }
  },
});

console.log(`listening on :${server.port}`);

process.on('SIGTERM', async () => {
  const timer = setTimeout(() => process.exit(0), GRACE_MS);
  await server.stop();
  clearTimeout(timer);
  process.exit(0);
});

export {};
