// The runtime contract for Deno: serve the user's `export default { fetch(request, env, ctx) }` on
// PORT, turn an uncaught exception into a 500 (the process stays up), and stop gracefully on
// SIGTERM: finish in-flight requests and ctx.waitUntil work, then exit. The instance check, the
// platform's routes and env/ctx are the JS runtimes' shared contract (contract.mjs). Deno does not
// serve the platform's socket: its unix transport gives requests an `http+unix:` URL, which the
// function would see (frameworks route on it: Hono answers 404), so Deno instances take TCP alone.
import { createContract, type ExecutionContext } from './contract.mjs';

// Only what this file uses of the Deno namespace, so the project's tsc checks it too.
declare const Deno: {
  env: { get(name: string): string | undefined };
  serve(
    options: { port: number; hostname: string; onListen?: (addr: { port: number }) => void },
    handler: (request: Request) => Response | Promise<Response>,
  ): { shutdown(): Promise<void> };
  addSignalListener(signal: 'SIGTERM', handler: () => void): void;
  exit(code: number): never;
};

type Handler = { fetch(request: Request, env: Record<string, string>, ctx: ExecutionContext): Response | Promise<Response> };

const GRACE_MS = Number(Deno.env.get('PLAT_GRACE_MS') ?? 10_000);
const entry = Deno.env.get('PLAT_ENTRY') ?? '/app/index.ts';
const contract = createContract((name) => Deno.env.get(name));

const userModule = await import(new URL(`file://${entry}`).href);
const handler: Handler | undefined = userModule.default;
if (!handler || typeof handler.fetch !== 'function') {
  console.error(`${entry} must default-export an object with a fetch(request) method`);
  Deno.exit(1);
}

const server = Deno.serve(
  {
    port: Number(Deno.env.get('PORT') ?? 8080),
    hostname: '0.0.0.0',
    onListen: ({ port }) => console.log(`listening on :${port}`),
  },
  async (request) => {
    const platform = contract.platformAnswer(
      new URL(request.url).pathname,
      request.headers.get('x-plat-instance'),
      request.headers.get('x-plat-probe'),
    );
    if (platform) return platform;
    return contract.run(request, () => handler.fetch(request, contract.env, contract.context()));
  },
);

Deno.addSignalListener('SIGTERM', () => {
  setTimeout(() => Deno.exit(0), GRACE_MS);
  void server
    .shutdown()
    .then(() => contract.idle(GRACE_MS))
    .then(() => Deno.exit(0));
});
