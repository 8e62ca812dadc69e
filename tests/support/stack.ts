import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection, type WorkflowExecutionInfo } from '@temporalio/client';
import type { Subprocess } from 'bun';
import Docker from 'dockerode';
import { LABELS } from '../../lib/names';
import { loadSettings } from '../../lib/settings';
import { Api } from '../../cli/api';
import { freePort, waitFor } from './wait';

const ROOT = new URL('../..', import.meta.url).pathname;
const BUN = join(ROOT, 'node_modules/.bin/bun');

/**
 * The platform as the tests use it: the real Temporal server, Docker engine and registry that
 * `npm test` ensures, plus a worker and a gateway of this checkout started for this run on a task
 * queue of its own, so the run never touches workflows, containers or images it did not create.
 */
export interface TestStack {
  runId: string;
  apiUrl: string;
  token: string;
  api: Api;
  temporal: Client;
  docker: Docker;
  taskQueue: string;
  dataDir: string;
  env: Record<string, string>;
  /** A function name unique to this run: t<run>-<suffix>. */
  name(suffix: string): string;
}

/** Integration tests build images and start containers: minutes on a cold machine, not seconds. */
export const INTEGRATION_TIMEOUT_MS = 300_000;

let starting: Promise<TestStack> | undefined;
let processes: Subprocess[] = [];
let connection: Connection | undefined;

export function stack(): Promise<TestStack> {
  starting ??= start();
  return starting;
}

export function stackStarted(): boolean {
  return starting !== undefined;
}

async function start(): Promise<TestStack> {
  const settings = loadSettings();
  const runId = randomBytes(3).toString('hex');
  const taskQueue = `plat-test-${runId}`;
  const token = randomBytes(16).toString('hex');
  const dataDir = await mkdtemp(join(tmpdir(), 'plat-test-'));
  const port = await freePort();
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    PLAT_TASK_QUEUE: taskQueue,
    PLAT_HOME: dataDir,
    AUTH_TOKEN: token,
    PORT: String(port),
    TEMPORAL_ADDRESS: settings.temporalAddress,
    REGISTRY: settings.registry,
  };

  try {
    connection = await Connection.connect({ address: settings.temporalAddress, connectTimeout: '5s' });
  } catch (error) {
    throw new Error(
      `Temporal is not reachable at ${settings.temporalAddress}: run the suite with \`npm test\`, which starts it (${(error as Error).message})`,
    );
  }
  const temporal = new Client({ connection, namespace: settings.temporalNamespace });
  const docker = new Docker();

  // Their logs go to files, shown only when they fail to start: a test's output stays its own.
  const worker = Bun.spawn(['node', '--import', 'tsx', join(ROOT, 'worker/main.ts')], {
    env,
    cwd: ROOT,
    stdout: 'pipe',
    stderr: Bun.file(join(dataDir, 'worker.log')),
  });
  const gateway = Bun.spawn([BUN, join(ROOT, 'gateway/main.ts')], {
    env,
    cwd: ROOT,
    stdout: 'ignore',
    stderr: Bun.file(join(dataDir, 'gateway.log')),
  });
  processes = [worker, gateway];

  await waitForLine(worker.stdout, 'worker polling', 90_000).catch(async (error) => {
    throw new Error(`${error.message}\n${await Bun.file(join(dataDir, 'worker.log')).text()}`);
  });
  const apiUrl = `http://127.0.0.1:${port}`;
  await waitFor('the test gateway', 30_000, async () => (await fetch(`${apiUrl}/healthz`).catch(() => undefined))?.ok === true);

  return {
    runId,
    apiUrl,
    token,
    api: new Api({ apiUrl, token }),
    temporal,
    docker,
    taskQueue,
    dataDir,
    env: { API_URL: apiUrl, AUTH_TOKEN: token },
    name: (suffix) => `t${runId}-${suffix}`,
  };
}

async function waitForLine(stream: ReadableStream<Uint8Array>, text: string, timeoutMs: number): Promise<void> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let seen = '';
  const deadline = Date.now() + timeoutMs;
  while (!seen.includes(text)) {
    const next = await Promise.race([reader.read(), Bun.sleep(Math.max(0, deadline - Date.now())).then(() => 'timeout' as const)]);
    if (next === 'timeout' || next.done) throw new Error(`the test worker did not print "${text}":\n${seen}`);
    seen += decoder.decode(next.value);
  }
  // Keep draining so the worker never blocks on a full pipe.
  void (async () => {
    for (;;) if ((await reader.read()).done) return;
  })();
}

/** Ends the run's stack: removes what it made, then stops its worker and gateway. */
export async function teardown(): Promise<void> {
  if (!starting) return;
  const s = await starting.catch(() => undefined);
  try {
    if (s) await removeWhatThisRunMade(s);
  } finally {
    // Even when clean-up fails, the worker and gateway of this run must not outlive it.
    for (const p of processes) p.kill('SIGTERM');
    await Promise.all(processes.map((p) => p.exited));
    await connection?.close();
  }
}

/**
 * Removes everything this run created: its functions (through the API, which stops containers and
 * deletes images and registry entries), then any container or image left with this run's label
 * prefix, then every workflow on this run's task queue.
 */
async function removeWhatThisRunMade(s: TestStack): Promise<void> {
  const { functions } = await s.api.json<{ functions: { name: string }[] }>('/functions').catch(() => ({ functions: [] }));
  const ours = functions.filter((f) => f.name.startsWith(`t${s.runId}-`));
  await Promise.all(ours.map((f) => s.api.request(`/functions/${f.name}`, { method: 'DELETE' }).catch(() => undefined)));

  const mine = (labels: Record<string, string> | undefined) => (labels?.[LABELS.function] ?? '').startsWith(`t${s.runId}-`);
  for (const c of await s.docker.listContainers({ all: true, filters: { label: [LABELS.managed] } })) {
    if (mine(c.Labels))
      await s.docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
  }
  for (const image of await s.docker.listImages({ filters: { label: [LABELS.managed] } })) {
    if (mine(image.Labels))
      await s.docker
        .getImage(image.Id)
        .remove({ force: true })
        .catch(() => undefined);
  }

  await deleteWorkflows(s);
  await rm(s.dataDir, { recursive: true, force: true });
}

/**
 * Deletes every workflow on this run's task queue. Deleting a workflow whose close has not yet
 * reached visibility leaves an orphan record behind (the late close re-creates it), so: terminate
 * what runs, wait until visibility shows every workflow closed, then delete them all (listed first:
 * deleting while paging skips entries) and wait until the list is empty.
 */
async function deleteWorkflows(s: TestStack): Promise<void> {
  const namespace = s.temporal.options.namespace;
  const list = async () => {
    const found: WorkflowExecutionInfo[] = [];
    for await (const wf of s.temporal.workflow.list({ query: `TaskQueue = '${s.taskQueue}'` })) found.push(wf);
    return found;
  };
  for (const wf of await list()) {
    if (wf.status.name === 'RUNNING')
      await s.temporal.workflow
        .getHandle(wf.workflowId, wf.runId)
        .terminate('test run finished')
        .catch(() => undefined);
  }
  await waitFor(
    'visibility to show the test workflows closed',
    30_000,
    async () => (await list()).every((wf) => wf.status.name !== 'RUNNING'),
    200,
  );
  // The server removes a deleted workflow from visibility some seconds later (about 18 s here).
  const deleted = new Set<string>();
  await waitFor(
    'the test workflows to be deleted',
    90_000,
    async () => {
      const found = await list();
      const fresh = found.filter((wf) => !deleted.has(wf.runId));
      for (const wf of fresh) deleted.add(wf.runId);
      await Promise.all(
        fresh.map((wf) =>
          s.temporal.workflowService
            .deleteWorkflowExecution({ namespace, workflowExecution: { workflowId: wf.workflowId, runId: wf.runId } })
            .catch(() => undefined),
        ),
      );
      return found.length === 0;
    },
    500,
  );
}
