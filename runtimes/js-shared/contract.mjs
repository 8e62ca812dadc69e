// The part of the runtime contract the JS runtimes (bun, deno, node) share, shipped next to each
// bootstrap as /plat/contract.mjs (plain JavaScript, so every runtime loads it as it is):
// - the instance check: a request names the instance it was routed to (x-plat-instance); one meant
//   for another instance (a route that outlived its container, whose address this one now has) is
//   refused with 421 and never reaches the function; one that names none (a check from the host) is
//   served;
// - the platform's routes, for requests with x-plat-probe only: GET /_/health when ready, GET
//   /_/state with the work still pending;
// - the platform's socket: with PLAT_SOCKET set (a host folder mounted for this instance alone), the
//   runtime serves the function on that Unix socket too, where the gateways on the host send its
//   requests: cheaper than TCP across the bridge for both sides, and the path names the instance, so
//   requests there need no instance check and get no platform routes (`run` alone). Bun and Node do;
//   Deno does not (see its bootstrap);
// - the Workers handler signature: fetch(request, env, ctx), env holding the function.json `env`
//   values, ctx.waitUntil(promise) keeping the instance from being paused until the promise settles
//   (bounded by the function's timeout), ctx.passThroughOnException() accepted.

import { AsyncLocalStorage } from 'node:async_hooks';
import { format } from 'node:util';

export const HEALTH_PATH = '/_/health';
/** Before every line a request's handler logs: the platform's log collector takes the id from it. */
const REQUEST_MARK = '\u001fplat-rid=';
const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/** The request being handled, across awaits: `{ request, id }`, its id read when it first logs. */
const requests = new AsyncLocalStorage();

/**
 * The id of the request in `handling` (x-request-id, set by the gateway), read on the first line it
 * logs: a request's headers cost the runtime a copy when first touched, which most never need.
 */
function requestIdOf(handling) {
  if (handling.id === undefined) {
    const given = handling.request.headers.get('x-request-id');
    handling.id = given !== null && REQUEST_ID.test(given) ? given : null;
  }
  return handling.id;
}

// What the function logs with console while it handles a request is tied to that request's id
// (x-request-id, set by the gateway): each line is marked, so `plat logs --request ID` finds it
// however many requests run at once.
for (const method of ['log', 'info', 'warn', 'error', 'debug']) {
  const original = console[method].bind(console);
  console[method] = (...args) => {
    const handling = requests.getStore();
    const id = handling === undefined ? null : requestIdOf(handling);
    if (id === null) return original(...args);
    const text = format(...args);
    return original(
      text
        .split('\n')
        .map((line) => `${REQUEST_MARK}${id}\u001f${line}`)
        .join('\n'),
    );
  };
}
export const STATE_PATH = '/_/state';

/**
 * @param {(name: string) => string | undefined} readEnv the process environment
 */
export function createContract(readEnv) {
  const instanceId = readEnv('PLAT_INSTANCE_ID');
  const timeoutMs = Number(readEnv('PLAT_TIMEOUT_MS') ?? 30_000);
  const keys = (readEnv('PLAT_ENV_KEYS') ?? '').split(',').filter(Boolean);
  const env = Object.freeze(Object.fromEntries(keys.map((key) => [key, readEnv(key) ?? ''])));
  let pending = 0;
  /** @type {Array<() => void>} */
  const idleWaiters = [];

  function settle() {
    pending--;
    if (pending === 0) for (const wake of idleWaiters.splice(0)) wake();
  }

  return {
    env,

    /** A fresh ctx for one request. */
    context() {
      return {
        /** @param {unknown} promise */
        waitUntil(promise) {
          pending++;
          let done = false;
          const finish = () => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            settle();
          };
          // Past the function's timeout the instance may be paused again; the work goes on when it resumes.
          const timer = setTimeout(finish, timeoutMs);
          Promise.resolve(promise)
            .catch((error) => console.error('ctx.waitUntil:', error))
            .finally(finish);
        },
        passThroughOnException() {},
      };
    },

    /**
     * The answer to a platform route or a misdirected request, or undefined for the function's own.
     * The platform's routes answer only the platform's probes (x-plat-probe, which the gateway never
     * forwards): through the gateway, /_/health is the function's own path.
     * @param {string} pathname
     * @param {string | null | undefined} named the request's x-plat-instance
     * @param {string | null | undefined} [probe] the request's x-plat-probe
     * @returns {Response | undefined}
     */
    platformAnswer(pathname, named, probe) {
      if (named != null && instanceId && named !== instanceId) {
        return Response.json(
          { error: { code: 'MISDIRECTED_REQUEST', message: 'this request was routed to another instance' } },
          { status: 421, headers: { 'x-plat-refused': 'instance' } },
        );
      }
      if (probe == null) return undefined;
      if (pathname === HEALTH_PATH) return new Response('ok');
      if (pathname === STATE_PATH) return Response.json({ pending });
      return undefined;
    },

    /**
     * Runs the function for one request with its id in context (what it logs is marked with it); an
     * uncaught exception becomes the contract's 500.
     * @param {Request} request
     * @param {() => Response | Promise<Response>} handle
     * @returns {Promise<Response>}
     */
    run(request, handle) {
      const call = async () => {
        try {
          const response = await handle();
          if (!(response instanceof Response)) throw new TypeError('fetch() must return a Response');
          return response;
        } catch (error) {
          return this.failure(error);
        }
      };
      return requests.run({ request, id: undefined }, call);
    },

    /** Resolves when no ctx.waitUntil work is pending, or after `ms`: a stop lets that work finish first. */
    idle(ms) {
      if (pending === 0) return Promise.resolve();
      return new Promise((resolve) => {
        idleWaiters.push(resolve);
        setTimeout(resolve, ms);
      });
    },

    /** The 500 an uncaught exception of the function's becomes (the process stays up). */
    failure(error) {
      console.error(error);
      return Response.json(
        { error: { code: 'FUNCTION_ERROR', message: error instanceof Error ? error.message : String(error) } },
        { status: 500 },
      );
    },
  };
}
