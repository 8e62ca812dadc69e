import { existsSync } from 'node:fs';
import { RegistryApi } from '../lib/registry-api';
import { LIMITS, loadSettings, publicScheme } from '../lib/settings';
import { createApp } from './app';
import { behindNative, InvokeFront } from './invoke/front';
import { NativeFront } from './invoke/native';
import { shareCounts } from './invoke/pool';
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
// The native front is loaded first: the pools place requests on its counts from the start.
let native: NativeFront | undefined;
if (settings.nativeFront === 'required' && settings.tls) {
  console.log('PLAT_INVOKE_FRONT=native serves plain HTTP only: with TLS, the Bun invoke front takes the port');
} else if (settings.nativeFront === 'auto' && !settings.tls && !existsSync(settings.nativeFrontLib)) {
  console.log(`the native invoke front is not built (scripts/native-front.sh, needs cargo): the Bun invoke front takes the port`);
} else if (settings.nativeFront !== 'off' && !settings.tls) {
  try {
    native = NativeFront.load(settings.nativeFrontLib);
  } catch (error) {
    console.error((error as Error).message);
    process.exit(1);
  }
  shareCounts(native.counts);
}
const { app, invoke, onEvent, metrics, policy } = createApp({
  temporal,
  registry: new RegistryApi(settings.registry),
  settings: { ...settings, authToken: settings.authToken },
});
invoke.startRevalidation();
const events = new AbortController();
void followEvents(settings.eventsSocket, onEvent, events.signal);

const tls = settings.tls ? { cert: Bun.file(settings.tls.certFile), key: Bun.file(settings.tls.keyFile) } : undefined;
// The invoke front takes the gateway's port (and ends TLS) and passes what it does not serve to Bun's
// server on loopback (invoke/front.ts); with PLAT_INVOKE_FRONT=off, Bun's server takes the port itself.
const front = settings.invokeFront ? new InvokeFront(invoke) : undefined;
/** The gateway's port could not be taken: one line that says so, not a stack trace. */
function cannotListen(error: unknown): never {
  const code = (error as { code?: string }).code;
  const why = code === 'EADDRINUSE' ? 'the port is in use (another gateway? `npm stop` stops the local one)' : (error as Error).message;
  console.error(`the gateway could not listen on ${settings.host}:${settings.port}: ${why}; set PORT (and HOST) to choose another`);
  process.exit(1);
}

// Bun's own cap is twice the gateway's: up to it, a body too large by its Content-Length gets the JSON error shape (app.ts).
try {
  app.listen({
    port: front ? 0 : settings.port,
    hostname: front ? '127.0.0.1' : settings.host,
    idleTimeout: 255,
    maxRequestBodySize: 2 * LIMITS.requestBodyBytes,
    tls: front ? undefined : tls,
  });
} catch (error) {
  cannotListen(error);
}
const scheme = publicScheme(settings);
const server = { hostname: '127.0.0.1', port: app.server?.port ?? 0 };
let address: { hostname?: string; port?: number };
let fronts = '';
if (front && native) {
  // The native front takes the port; the Bun front serves, on loopback, what it does not decide.
  const behind = front.listen('127.0.0.1', 0, server);
  fronts = `, native invoke front before the Bun front on 127.0.0.1:${behind.port}`;
  behindNative((port) => native.clientOf(port));
  policy.onChange = (name, entry) => native.access(name, entry);
  invoke.attachNative(native);
  try {
    const port = native.start({
      hostname: settings.host,
      port: settings.port,
      frontPort: behind.port,
      serverPort: server.port,
      adminToken: settings.authToken,
      scheme,
      headerLimit: LIMITS.headerBytes,
      metrics: settings.metrics,
    });
    address = { hostname: settings.host, port };
  } catch (error) {
    console.error(`the native invoke front could not start: ${(error as Error).message}`);
    process.exit(1);
  }
} else {
  try {
    address = front ? front.listen(settings.host, settings.port, server, tls) : { hostname: app.server?.hostname, port: app.server?.port };
  } catch (error) {
    cannotListen(error);
  }
}
console.log(`gateway listening on ${scheme}://${address.hostname}:${address.port} (task queue "${settings.taskQueue}"${fronts})`);

const shutdown = async () => {
  events.abort();
  // Requests the native front serves (or passes on) now are answered first, for up to 10 s.
  await native?.stop(10_000);
  front?.stop();
  invoke.stop();
  await app.stop();
  await connection.close();
  // The records of the last moments (they are written every 100 ms), out before the process ends.
  metrics?.flushRecords();
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
