import type { Client } from '@temporalio/client';
import { openapi } from '@elysiajs/openapi';
import { Elysia } from 'elysia';
import type { PlatformEvent } from '../lib/events';
import { LogWriter } from '../lib/logs';
import { SecretStore } from '../lib/secrets';
import type { RegistryApi } from '../lib/registry-api';
import { ROUTE_REVALIDATE_MS, type Settings } from '../lib/settings';
import { AccessPolicy } from './access/policy';
import { createJwtVerifier } from './access/jwt';
import { KeysService, keysRoutes } from './access/keys';
import { createAdminCheck, createTokenCheck } from './auth';
import { errorHandling } from './errors';
import { checkSizes } from './limits';
import { functionsRoutes } from './functions';
import { FunctionsService } from './functions/service';
import { invokeRoutes } from './invoke';
import { InvokeService, parseTarget } from './invoke/service';
import { logsRoutes } from './logs';
import { secretsRoutes } from './secrets';
import { GatewayMetrics, metricsRoutes } from './metrics';
import { errors, Health } from './model';
import { INVOKE_METHODS, invokePath, invokeRoot } from './invoke/model';
import { asyncRoutes, callsRoutes } from './calls';
import { asyncPath, asyncRoot } from './calls/model';
import { CallsService } from './calls/service';

/** How long a scrape waits for one function's entity (they are read at once). */
const METRICS_READ_MS = 3000;

export interface GatewayDeps {
  temporal: Client;
  registry: RegistryApi;
  settings: Settings & { authToken: string };
}

export function createApp({ temporal, registry, settings }: GatewayDeps) {
  const secrets = new SecretStore(settings.dataDir);
  const functions = new FunctionsService(temporal, registry, settings, (name) => secrets.exists(name));
  const metrics = settings.metrics ? new GatewayMetrics(() => instancesByState(functions)) : undefined;
  // Only the worker rotates the logs; the gateway appends the events only it sees (a request that timed out).
  const logs = new LogWriter(settings.dataDir, settings.logs, 50, false);
  const invoke = new InvokeService(temporal, functions, settings, metrics, logs);
  functions.requestsOn = (containerId) => invoke.requestsOn(containerId);
  functions.onChange = (name) => {
    invoke.invalidate(name);
    void policy.invalidate(name);
  };
  if (metrics) functions.onDeployEnd = (result, seconds) => metrics.deploy(result, seconds);
  const verifyJwt = settings.jwt ? createJwtVerifier(settings.jwt) : undefined;
  const checkToken = createTokenCheck(settings.authToken, verifyJwt && (async (token) => (await verifyJwt(token))?.admin === true));
  const isAdmin = createAdminCheck(settings.authToken);
  const policy = new AccessPolicy((name) => functions.get(name));
  /** A JWT that grants the function (or admin) may invoke it; anything else is up to the function's access and keys. */
  const authorizeInvoke = async (name: string, token: string | undefined, verify: NonNullable<typeof verifyJwt>) => {
    const grant = token !== undefined ? await verify(token) : undefined;
    if (grant && (grant.admin || grant.functions.has(name))) return;
    await policy.check(name, token);
  };
  invoke.authorize = (target, token) => {
    if (token !== undefined && isAdmin(token)) return undefined;
    const { name } = parseTarget(target);
    // Without JWTs, a warm request's key is decided at once from the cache (no promise to wait on).
    return verifyJwt ? authorizeInvoke(name, token, verifyJwt) : policy.check(name, token);
  };
  invoke.trusted = isAdmin;
  const calls = new CallsService(temporal, registry, functions, settings);
  calls.authorize = (name, token) => invoke.authorize?.(name, token);
  const keys = new KeysService(temporal, functions);
  keys.onChange = (name) => policy.invalidate(name);
  const refreshing = setInterval(() => void policy.refreshAll(), ROUTE_REVALIDATE_MS);
  refreshing.unref();

  // The invoke paths are served by Bun's router itself, before Elysia (see invoke/index.ts).
  const app = new Elysia({ serve: { routes: { ...invokeRoutes(invoke), ...asyncRoutes(calls) } } })
    .use(errorHandling)
    .onRequest(({ request }) => checkSizes(request))
    .use(apiDocument())
    .get('/healthz', () => ({ status: 'ok' as const }), {
      response: { 200: Health, ...errors() },
      detail: { summary: 'The gateway answers', security: [] },
    })
    .use(metricsRoutes(metrics, checkToken))
    .use(logsRoutes(functions, settings, checkToken))
    .use(keysRoutes(keys, checkToken))
    .use(secretsRoutes(secrets, checkToken))
    .use(functionsRoutes(functions, checkToken))
    .use(callsRoutes(calls, checkToken));
  /** What the worker on this host pushes (lib/events.ts), to the services that act on it. */
  const onEvent = (event: PlatformEvent) => {
    invoke.onEvent(event);
    if (event.type === 'function-changed') void policy.invalidate(event.name);
    if (event.type === 'call-attempt') metrics?.callAttempt(event.name, event.outcome);
    functions.registryGate.onEvent(event);
  };
  return { app, invoke, functions, onEvent, metrics, policy };
}

/**
 * `GET /openapi.json`: the API as OpenAPI 3.1, made from each route's schemas (the features'
 * model.ts), public like /healthz. No UI is served: the document is what tools read.
 */
function apiDocument() {
  const invoke = (operation: object) => Object.fromEntries(INVOKE_METHODS.map((method) => [method, operation]));
  return openapi({
    provider: null,
    specPath: '/openapi.json',
    documentation: {
      info: {
        title: 'plat',
        version: '1',
        description:
          'The plat gateway: deploy and manage functions (admin token), invoke them (admin token, an invoke key, a JWT, or nothing for a public function).',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
      paths: {
        '/function/{name}': invoke(invokeRoot),
        '/function/{name}/{path}': invoke(invokePath),
        // Any method is accepted; POST is the one documented (a HEAD's 202 would have no body to check).
        '/async-function/{name}': Object.fromEntries([['post', asyncRoot]]),
        '/async-function/{name}/{path}': Object.fromEntries([['post', asyncPath]]),
      },
    },
  });
}

/**
 * Every function's instances counted by state, for the plat_function_instances gauge. The entities
 * are read at once, each within METRICS_READ_MS, so that a scrape stays within Prometheus' default
 * timeout (10 s) however many functions there are; one that does not answer in time counts none.
 */
async function instancesByState(functions: FunctionsService): Promise<Array<{ function: string; state: string; count: number }>> {
  const rows: Array<{ function: string; state: string; count: number }> = [];
  const summaries = await functions.list();
  const states = await Promise.all(summaries.map((summary) => functions.get(summary.name, METRICS_READ_MS).catch(() => undefined)));
  for (const [index, summary] of summaries.entries()) {
    const state = states[index];
    const counts = new Map<string, number>([
      ['running', 0],
      ['paused', 0],
    ]);
    for (const instance of state?.instances ?? []) counts.set(instance.state, (counts.get(instance.state) ?? 0) + 1);
    for (const [instanceState, count] of counts) rows.push({ function: summary.name, state: instanceState, count });
  }
  return rows;
}
