import { Client, Connection } from '@temporalio/client';
import { RegistryApi } from '../activities/registry-api';
import { loadSettings } from '../lib/settings';
import { createApp } from './app';

const settings = loadSettings();
if (!settings.authToken) {
  console.error('AUTH_TOKEN is not set: the gateway refuses to run without a token (npm start sets a development one)');
  process.exit(1);
}

const connection = await Connection.connect({ address: settings.temporalAddress });
const temporal = new Client({ connection, namespace: settings.temporalNamespace });
const { app, invoke } = createApp({
  temporal,
  registry: new RegistryApi(settings.registry),
  settings: { ...settings, authToken: settings.authToken },
});
invoke.startRevalidation();

app.listen({ port: settings.port, hostname: process.env.HOST || '127.0.0.1', idleTimeout: 255, maxRequestBodySize: 80 * 1024 * 1024 });
console.log(`gateway listening on http://${app.server?.hostname}:${app.server?.port} (task queue "${settings.taskQueue}")`);

const shutdown = async () => {
  invoke.stop();
  await app.stop();
  await connection.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
