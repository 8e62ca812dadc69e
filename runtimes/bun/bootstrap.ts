// The runtime contract for Bun: serve the user's `export default { fetch(request, env, ctx) }` on
// PORT (and on the platform's socket, PLAT_SOCKET), turn an uncaught exception into a 500 (the
// process stays up), and stop gracefully on SIGTERM: finish in-flight requests and ctx.waitUntil
// work, then exit. The instance check, the platform's routes, the socket and env/ctx are the JS
// runtimes' shared contract (contract.mjs).
import { rmSync } from 'node:fs';
import { createContract, type ExecutionContext } from './contract.mjs';

type Handler = { fetch(request: Request, env: Record<string, string>, ctx: ExecutionContext): Response | Promise<Response> };

const GRACE_MS = Number(process.env.PLAT_GRACE_MS ?? 10_000);
const entry = process.env.PLAT_ENTRY ?? '/app/index.ts';
const contract = createContract((name) => process.env[name]);

const userModule = await import(entry);
const handler: Handler | undefined = userModule.default;
if (!handler || typeof handler.fetch !== 'function') {
  console.error(`${entry} must default-export an object with a fetch(request) method`);
  process.exit(1);
}

const serveFunction = (request: Request) => contract.run(request, () => handler.fetch(request, contract.env, contract.context()));

// The platform's socket first, so it is there once the health route answers (see contract.mjs).
function serveSocket(path: string | undefined) {
  if (!path) return undefined;
  try {
    rmSync(path, { force: true });
    return Bun.serve({ unix: path, fetch: serveFunction });
  } catch (error) {
    console.error(`the platform's socket is not served (${(error as Error).message}); requests come over TCP`);
    return undefined;
  }
}
const direct = serveSocket(process.env.PLAT_SOCKET);

const server = Bun.serve({
  port: Number(process.env.PORT ?? 8080),
  hostname: '0.0.0.0',
  idleTimeout: 255,
  async fetch(request) {
    const platform = contract.platformAnswer(
      new URL(request.url).pathname,
      request.headers.get('x-plat-instance'),
      request.headers.get('x-plat-probe'),
    );
    if (platform) return platform;
    return serveFunction(request);
  },
});

console.log(`listening on :${server.port}`);

process.on('SIGTERM', () => {
  setTimeout(() => process.exit(0), GRACE_MS);
  void Promise.all([server.stop(), direct?.stop()])
    .then(() => contract.idle(GRACE_MS))
    .then(() => process.exit(0));
});
