import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Runtime, Worker } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import type { Activities } from '../../activities';
import { SEARCH_ATTRIBUTES } from '../../lib/names';

const ROOT = new URL('../..', import.meta.url).pathname;

/** The time-skipping test server that `npm test` fetched (scripts/test-server.sh). */
function testServerPath(): string {
  const cache = process.env.PLAT_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? '/root', '.cache'), 'plat');
  const path = process.env.PLAT_TEST_SERVER ?? join(cache, 'temporal-test-server', 'run');
  if (!existsSync(path)) throw new Error(`no Temporal test server at ${path}: run the suite with \`npm test\`, which fetches it`);
  return path;
}

let runtimeInstalled = false;

/**
 * A time-skipping Temporal test server and a worker of this checkout's workflows on `taskQueue`,
 * with the activities the test gives (stubs: these tests are about the workflows' decisions).
 */
export async function startWorkflowTests(
  taskQueue: string,
  activities: (client: Client) => Partial<Activities>,
): Promise<{ env: TestWorkflowEnvironment; client: Client; stop: () => Promise<void> }> {
  if (!runtimeInstalled) {
    // Only errors: a worker's routine lines (and the workflows these tests make fail on purpose) would bury the test output.
    Runtime.install({ logger: new (await import('@temporalio/worker')).DefaultLogger((process.env.PLAT_TEST_LOG ?? 'ERROR') as 'ERROR') });
    runtimeInstalled = true;
  }
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: testServerPath() } },
  });
  // The workflows set the platform's search attributes, which a server must know first (as scripts/infra.sh registers them).
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: Object.fromEntries(
      Object.values(SEARCH_ATTRIBUTES).map((key) => [key.name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD]),
    ),
  });
  // A plain client: the environment's own one lets time skip whenever it waits for a workflow's
  // result, and skipped time times out the activities these tests hold open. Here time moves on
  // only when a test says so (env.sleep).
  const client = new Client({ connection: env.connection, namespace: env.namespace });
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: join(ROOT, 'workflows/index.ts'),
    activities: activities(client),
  });
  const running = worker.run();
  return {
    env,
    client,
    stop: async () => {
      worker.shutdown();
      await running;
      await env.teardown();
    },
  };
}
