import { RegistryApi } from '../lib/registry-api';
import { LIMITS, loadSettings } from '../lib/settings';
import { createApp } from './app';
import { followEvents } from './invoke/worker-link';
import { connectTemporal } from './temporal';

let settings: ReturnType<typeof loadSettings>;
try {
  settings = loadSettings();
} catch (error) {
  console.error(`the gateway's settings are wrong: ${(error as Error).message}`);
  process.exit(1);
}
if (!settings.authToken) {
  console.error('AUTH_TOKEN is not set: the gateway refuses to run without a token (npm start sets a development one)');
  process.exit(1);
}

// Lazy: the gateway starts, and warm functions answer, while Temporal is away.
const { connection, client: temporal } = connectTemporal(settings);
const { app, invoke, onEvent } = createApp({
  temporal,
  registry: new RegistryApi(settings.registry),
  settings: { ...settings, authToken: settings.authToken },
});
invoke.startRevalidation();
const events = new AbortController();
void followEvents(settings.eventsSocket, onEvent, events.signal);

const tls = settings.tls ? { cert: Bun.file(settings.tls.certFile), key: Bun.file(settings.tls.keyFile) } : undefined;
// Bun's own cap is twice the gateway's: up to it, a body too large by its Content-Length gets the JSON error shape (app.ts).
app.listen({ port: settings.port, hostname: settings.host, idleTimeout: 255, maxRequestBodySize: 2 * LIMITS.requestBodyBytes, tls });
const scheme = tls ? 'https' : 'http';
console.log(`gateway listening on ${scheme}://${app.server?.hostname}:${app.server?.port} (task queue "${settings.taskQueue}")`);

const shutdown = async () => {
  events.abort();
  invoke.stop();
  await app.stop();
  await connection.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
