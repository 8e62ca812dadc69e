import type { Client } from '@temporalio/client';
import { Elysia } from 'elysia';
import type { PlatformEvent } from '../lib/events';
import { LogWriter } from '../lib/logs';
import type { RegistryApi } from '../lib/registry-api';
import type { Settings } from '../lib/settings';
import { createTokenCheck } from './auth';
import { errorHandling } from './errors';
import { functionsRoutes } from './functions';
import { FunctionsService } from './functions/service';
import { invokeRoutes } from './invoke';
import { InvokeService } from './invoke/service';
import { logsRoutes } from './logs';
import { GatewayMetrics, metricsRoutes } from './metrics';

export interface GatewayDeps {
  temporal: Client;
  registry: RegistryApi;
  settings: Settings & { authToken: string };
}

export function createApp({ temporal, registry, settings }: GatewayDeps) {
  const functions = new FunctionsService(temporal, registry, settings);
  const metrics = settings.metrics ? new GatewayMetrics(() => instancesByState(functions)) : undefined;
  // Only the worker rotates the logs; the gateway appends the events only it sees (a request that timed out).
  const logs = new LogWriter(settings.dataDir, settings.logs, 50, false);
  const invoke = new InvokeService(temporal, functions, settings, metrics, logs);
  functions.onChange = (name) => invoke.invalidate(name);
  if (metrics) functions.onDeployEnd = (result, seconds) => metrics.deploy(result, seconds);
  const checkToken = createTokenCheck(settings.authToken);

  const app = new Elysia()
    .use(errorHandling)
    .get('/healthz', () => ({ status: 'ok' }))
    .use(metricsRoutes(metrics, checkToken))
    .use(logsRoutes(functions, settings, checkToken))
    .use(functionsRoutes(functions, checkToken))
    .use(invokeRoutes(invoke, checkToken));
  /** What the worker on this host pushes (lib/events.ts), to the services that act on it. */
  const onEvent = (event: PlatformEvent) => {
    invoke.onEvent(event);
    functions.registryGate.onEvent(event);
  };
  return { app, invoke, functions, onEvent, metrics };
}

/** Every function's instances counted by state, for the plat_function_instances gauge. */
async function instancesByState(functions: FunctionsService): Promise<Array<{ function: string; state: string; count: number }>> {
  const rows: Array<{ function: string; state: string; count: number }> = [];
  for (const summary of await functions.list()) {
    const state = await functions.get(summary.name).catch(() => undefined);
    const counts = new Map<string, number>([
      ['running', 0],
      ['paused', 0],
    ]);
    for (const instance of state?.instances ?? []) counts.set(instance.state, (counts.get(instance.state) ?? 0) + 1);
    for (const [instanceState, count] of counts) rows.push({ function: summary.name, state: instanceState, count });
  }
  return rows;
}
