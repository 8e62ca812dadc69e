import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import Docker from 'dockerode';
import { createActivities } from '../activities';
import { RegistryApi } from '../lib/registry-api';
import { loadSettings } from '../lib/settings';
import { EngineWatch } from './engine-watch';
import { EventsHub } from './events-hub';
import { ensureRegistryGcSchedule } from './registry-gc-schedule';

/**
 * The Temporal worker: hosts the workflows, does all Docker and registry work (on Node.js), watches
 * the engine for containers that die, and tells this host's gateways about it.
 */
async function run(): Promise<void> {
  const settings = loadSettings();
  const address = settings.temporalAddress;
  const connection = await NativeConnection.connect({ address });
  const client = new Client({ connection: await Connection.connect({ address }), namespace: settings.temporalNamespace });
  const docker = new Docker();
  // A gateway's request for a paused container: resumed here, on the engine, not through Temporal.
  const events = new EventsHub(settings.eventsSocket, (containerId) =>
    docker
      .getContainer(containerId)
      .unpause()
      .catch((error: Error) => {
        if (!/is not paused/.test(error.message)) throw error;
      }),
  );
  await events.listen();
  const watch = new EngineWatch(docker, client, settings, events);

  const worker = await Worker.create({
    connection,
    namespace: settings.temporalNamespace,
    taskQueue: settings.taskQueue,
    workflowsPath: fileURLToPath(new URL('../workflows/index.ts', import.meta.url)),
    activities: createActivities({ docker, registry: new RegistryApi(settings.registry), temporal: client, settings, events }),
    // A worker that dies leaves its workflows' next tasks on its own sticky queue; after this long
    // they go to the shared queue, where the next worker takes them.
    stickyQueueScheduleToStartTimeout: '3 seconds',
  });
  watch.start();
  await ensureRegistryGcSchedule(client, settings);
  console.log(`worker polling task queue "${settings.taskQueue}" on ${address}; events on ${settings.eventsSocket}`);
  await worker.run();
  watch.stop();
  await events.close();
  await connection.close();
}

run().catch((error) => {
  console.error(error);
  process.exit(1);
});
