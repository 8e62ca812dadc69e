import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { GracefulShutdownPeriodExpiredError, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import Docker from 'dockerode';
import { createActivities } from '../activities';
import { LogWriter } from '../lib/logs';
import { SecretStore } from '../lib/secrets';
import { RegistryApi } from '../lib/registry-api';
import { loadSettings } from '../lib/settings';
import { EngineWatch } from './engine-watch';
import { EventsHub } from './events-hub';
import { containerUsage } from './usage';
import { LogCollector } from './log-collector';
import { ensureRegistryGcSchedule } from './registry-gc-schedule';

/**
 * On SIGTERM, how long activities under way get to end before they are told to cancel (a container's
 * stop takes up to 10 s), and how long the worker waits for them in all before it exits anyway: an
 * activity that ignores its cancellation must not keep a stopped worker alive. What it leaves
 * unfinished times out and is retried by the next worker.
 */
const SHUTDOWN_GRACE = '10 seconds';
const SHUTDOWN_FORCE = '30 seconds';

/**
 * The Temporal worker: hosts the workflows, does all Docker and registry work (on Node.js), watches
 * the engine for containers that die, and tells this host's gateways about it.
 */
async function run(): Promise<void> {
  const settings = loadSettings();
  const address = settings.temporalAddress;
  // The SDK's own metrics (task latencies, slots, polls) for Prometheus, on loopback: before any connection.
  let metricsAddress = settings.workerMetrics;
  if (metricsAddress && !(await portFree(metricsAddress))) {
    console.warn(`PLAT_WORKER_METRICS: ${metricsAddress} is taken; the worker serves no metrics (set another host:port)`);
    metricsAddress = undefined;
  }
  if (metricsAddress) {
    // Counters end in _total and durations are in seconds, as Prometheus' conventions (and promtool) want.
    const prometheus = { bindAddress: metricsAddress, countersTotalSuffix: true, unitSuffix: true, useSecondsForDurations: true };
    Runtime.install({ telemetryOptions: { metrics: { prometheus } } });
  }
  const connection = await NativeConnection.connect({ address });
  const client = new Client({ connection: await Connection.connect({ address }), namespace: settings.temporalNamespace });
  const docker = new Docker();
  // A gateway's request for a paused container: resumed here, on the engine, not through Temporal.
  const events = new EventsHub(
    settings.eventsSocket,
    (containerId) =>
      docker
        .getContainer(containerId)
        .unpause()
        .catch((error: Error) => {
          if (!/is not paused/.test(error.message)) throw error;
        }),
    (containerId) => containerUsage(docker, containerId),
  );
  await events.listen();
  const logs = new LogWriter(settings.dataDir, settings.logs);
  const collector = new LogCollector(docker, logs, settings.logs.linesPerSecond);
  const watch = new EngineWatch(docker, client, settings, events, collector, logs);
  const pruning = setInterval(() => void logs.pruneAll().catch(() => undefined), 60_000);
  pruning.unref();

  const worker = await Worker.create({
    connection,
    namespace: settings.temporalNamespace,
    taskQueue: settings.taskQueue,
    workflowsPath: fileURLToPath(new URL('../workflows/index.ts', import.meta.url)),
    activities: createActivities({
      docker,
      registry: new RegistryApi(settings.registry),
      temporal: client,
      settings,
      events,
      logs,
      secrets: new SecretStore(settings.dataDir),
    }),
    // A worker that dies leaves its workflows' next tasks on its own sticky queue; after this long
    // they go to the shared queue, where the next worker takes them.
    stickyQueueScheduleToStartTimeout: '3 seconds',
    shutdownGraceTime: SHUTDOWN_GRACE,
    shutdownForceTime: SHUTDOWN_FORCE,
  });
  watch.start();
  await ensureRegistryGcSchedule(client, settings);
  const metrics = metricsAddress ? `; Temporal SDK metrics on http://${metricsAddress}/metrics` : '';
  console.log(`worker polling task queue "${settings.taskQueue}" on ${address}; events on ${settings.eventsSocket}${metrics}`);
  let abandoned = false;
  try {
    await worker.run();
  } catch (error) {
    if (!(error instanceof GracefulShutdownPeriodExpiredError)) throw error;
    console.warn(`activities were still running ${SHUTDOWN_FORCE} after the stop; the worker exits, and they are retried by the next one`);
    abandoned = true;
  }
  watch.stop();
  collector.stop();
  await logs.flush();
  await events.close();
  // The abandoned activities' promises would keep the process alive.
  if (abandoned) process.exit(0);
  await connection.close();
}

/** Whether host:port can be bound (the SDK's exporter would fail the worker's start otherwise). */
function portFree(address: string): Promise<boolean> {
  const colon = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(Number(address.slice(colon + 1)), address.slice(0, colon), () => server.close(() => resolve(true)));
  });
}

run().catch((error) => {
  console.error(error);
  process.exit(1);
});
