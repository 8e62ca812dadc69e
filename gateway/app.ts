import type { Client } from '@temporalio/client';
import { Elysia } from 'elysia';
import type { PlatformEvent } from '../lib/events';
import type { RegistryApi } from '../lib/registry-api';
import type { Settings } from '../lib/settings';
import { createTokenCheck } from './auth';
import { errorHandling } from './errors';
import { functionsRoutes } from './functions';
import { FunctionsService } from './functions/service';
import { invokeRoutes } from './invoke';
import { InvokeService } from './invoke/service';

export interface GatewayDeps {
  temporal: Client;
  registry: RegistryApi;
  settings: Settings & { authToken: string };
}

export function createApp({ temporal, registry, settings }: GatewayDeps) {
  const functions = new FunctionsService(temporal, registry, settings);
  const invoke = new InvokeService(temporal, functions, settings);
  functions.onChange = (name) => invoke.invalidate(name);
  const checkToken = createTokenCheck(settings.authToken);

  const app = new Elysia()
    .use(errorHandling)
    .get('/healthz', () => ({ status: 'ok' }))
    .use(functionsRoutes(functions, checkToken))
    .use(invokeRoutes(invoke, checkToken));
  /** What the worker on this host pushes (lib/events.ts), to the services that act on it. */
  const onEvent = (event: PlatformEvent) => {
    invoke.onEvent(event);
    functions.registryGate.onEvent(event);
  };
  return { app, invoke, functions, onEvent };
}
