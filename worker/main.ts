import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import Docker from 'dockerode';
import { createActivities } from '../activities';
import { RegistryApi } from '../activities/registry-api';
import { loadSettings } from '../lib/settings';

/** The Temporal worker: hosts the workflows and does all Docker and registry work (on Node.js). */
async function run(): Promise<void> {
  const settings = loadSettings();
  const address = settings.temporalAddress;
  const connection = await NativeConnection.connect({ address });
  const client = new Client({ connection: await Connection.connect({ address }), namespace: settings.temporalNamespace });
  const docker = new Docker();
  await docker.ping();

  const worker = await Worker.create({
    connection,
    namespace: settings.temporalNamespace,
    taskQueue: settings.taskQueue,
    workflowsPath: fileURLToPath(new URL('../workflows/index.ts', import.meta.url)),
    activities: createActivities({ docker, registry: new RegistryApi(settings.registry), temporal: client, settings }),
  });
  console.log(`worker polling task queue "${settings.taskQueue}" on ${address}`);
  await worker.run();
  await connection.close();
}

run().catch((error) => {
  console.error(error);
  process.exit(1);
});
