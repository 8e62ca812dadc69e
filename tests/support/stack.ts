import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection, type WorkflowExecutionInfo } from '@temporalio/client';
import type { Subprocess } from 'bun';
import Docker from 'dockerode';
import { LABELS, workflowIds } from '../../lib/names';
import { secretsRunDir } from '../../lib/secrets';
import { socketsRunDir } from '../../lib/sockets';
import { GATEWAY_BUN_FLAGS, GATEWAY_ENV, loadSettings } from '../../lib/settings';
import { Api } from '../../cli/api';
import { engineAnswers, engineReport } from './engine-report';
import { freePort, waitFor } from './wait';

const ROOT = new URL('../..', import.meta.url).pathname;
/** The checkout's root folder. */
export const PLAT_ROOT = ROOT;
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
  /** A task queue of this run that no worker polls: for work whose worker is gone. Its workflows go with the run's. */
  orphanTaskQueue: string;
  dataDir: string;
  env: Record<string, string>;
  /** Where this run's worker serves the Temporal SDK's metrics (host:port). */
  workerMetrics: string;
  /** The environment this run's worker and gateway run with: another gateway of this run starts with it. */
  processEnv: Record<string, string>;
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
    // The worker's SDK metrics on a port of this run's own (the dev stack's worker may hold the default).
    PLAT_WORKER_METRICS: `127.0.0.1:${await freePort()}`,
    ...GATEWAY_ENV,
    // The async calls' tests receive callbacks on loopback (tests/integration/calls.test.ts checks the refusal).
    PLAT_CALLBACK_ALLOW_LOCAL: 'true',
    // Dead containers go within seconds, so tests can see them go.
    PLAT_REAP_AFTER_SECONDS: '2',
    // The registry npm test started, whose garbage this run's worker collects.
    PLAT_REGISTRY_CONFIG: join(process.env.PLAT_HOME || join(process.env.HOME || '/root', '.plat'), 'registry.yml'),
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

  // Under the same supervisor as `npm start`'s, which restarts them when they die (the fault tests
  // kill them). Their output goes to files, shown only when they fail to start.
  processes = (['worker', 'gateway'] as const).map((part) => {
    const log = openSync(logOf(dataDir, part), 'a');
    return Bun.spawn(['bash', join(ROOT, 'scripts/supervise.sh'), part, ...PART_COMMANDS[part]], {
      env,
      cwd: ROOT,
      stdout: log,
      stderr: log,
    });
  });
  await waitFor('the test worker to poll', 90_000, async () => (await logText(dataDir, 'worker')).includes('worker polling')).catch(
    async (error) => {
      throw new Error(`${error.message}\n${await logText(dataDir, 'worker')}`);
    },
  );
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
    orphanTaskQueue: `${taskQueue}-orphan`,
    dataDir,
    env: { API_URL: apiUrl, AUTH_TOKEN: token },
    workerMetrics: env.PLAT_WORKER_METRICS as string,
    processEnv: env,
    name: (suffix) => `t${runId}-${suffix}`,
  };
}

const PART_COMMANDS = {
  worker: ['node', '--import', 'tsx', join(ROOT, 'worker/main.ts')],
  gateway: [BUN, ...GATEWAY_BUN_FLAGS, join(ROOT, 'gateway/main.ts')],
} as const;

export type Part = keyof typeof PART_COMMANDS;

/** Where a part's output (and its supervisor's notes on restarts) goes. */
export function logOf(dataDir: string, part: Part): string {
  return join(dataDir, `${part}.log`);
}

export async function logText(dataDir: string, part: Part): Promise<string> {
  return Bun.file(logOf(dataDir, part))
    .text()
    .catch(() => '');
}

/** The pid of the part's own process (not its supervisor's). */
export async function partPid(s: TestStack, part: Part): Promise<number> {
  return Number((await Bun.file(join(s.dataDir, 'run', `${part}.child.pid`)).text()).trim());
}

/** How long the clean-up waits for the run's function removals through the API. */
const TEARDOWN_REMOVAL_MS = 90_000;

/** Ends the run's stack: removes what it made, then stops its worker and gateway. */
export async function teardown(): Promise<void> {
  if (!starting) return;
  const s = await starting.catch(() => undefined);
  try {
    if (s) await removeWhatThisRunMade(s);
  } finally {
    // Even when clean-up fails, the worker and gateway of this run must not outlive it (their
    // supervisors pass the signal on and wait for them).
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
  // Bounded: what a removal leaves (say, the platform is stuck) goes with the clean-up below, and
  // the log says so: a removal that fails here is a bug to look into, not noise.
  const failed: string[] = [];
  await Promise.all(
    ours.map((f) =>
      s.api
        .request(`/functions/${f.name}`, { method: 'DELETE', signal: AbortSignal.timeout(TEARDOWN_REMOVAL_MS) })
        .then((response) => (response.ok || response.status === 404 ? undefined : `${f.name}: ${response.status}`))
        .catch((error: Error) => `${f.name}: ${error.message}`)
        .then((failure) => failure && failed.push(failure)),
    ),
  );
  if (failed.length > 0) console.warn(`clean-up: ${failed.length} removal(s) through the API failed:\n  ${failed.join('\n  ')}`);
  // A hung engine is why removals fail more often than not: say what it waits on, and list nothing
  // from it (that would hang the clean-up too).
  const report = failed.length > 0 && !(await engineAnswers(s.docker)) ? await engineReport() : undefined;

  const mine = (labels: Record<string, string> | undefined) => (labels?.[LABELS.function] ?? '').startsWith(`t${s.runId}-`);
  for (const c of report ? [] : await s.docker.listContainers({ all: true, filters: { label: [LABELS.managed] } })) {
    if (mine(c.Labels))
      await s.docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
  }
  for (const image of report ? [] : await s.docker.listImages({ filters: { label: [LABELS.managed] } })) {
    if (mine(image.Labels))
      await s.docker
        .getImage(image.Id)
        .remove({ force: true })
        .catch(() => undefined);
  }

  await s.temporal.schedule
    .getHandle(workflowIds.registryGc(s.taskQueue))
    .delete()
    .catch(() => undefined);
  await deleteWorkflows(s);
  // The run's instances' secrets, on the host's tmpfs.
  await rm(join(secretsRunDir(), s.taskQueue), { recursive: true, force: true });
  await rm(join(socketsRunDir(), s.taskQueue), { recursive: true, force: true });
  // PLAT_TEST_KEEP=1 keeps the run's folder (the worker's and gateway's logs) for a look after a failure.
  if (!process.env.PLAT_TEST_KEEP && !report) await rm(s.dataDir, { recursive: true, force: true });
  // The run fails on it, with what the engine waits on, rather than on a hook's timeout.
  if (report)
    throw new Error(`the Docker engine stopped answering during the clean-up (the run's folder is kept: ${s.dataDir}): ${report}`);
}

/**
 * Deletes every workflow on this run's task queues. Deleting a workflow whose close has not yet
 * reached visibility leaves an orphan record behind (the late close re-creates it), so: terminate
 * what runs, wait until visibility shows every workflow closed, then delete them all (listed first:
 * deleting while paging skips entries) and wait until the list is empty.
 */
async function deleteWorkflows(s: TestStack): Promise<void> {
  const namespace = s.temporal.options.namespace;
  const list = async () => {
    const found: WorkflowExecutionInfo[] = [];
    const query = `TaskQueue IN ('${s.taskQueue}', '${s.orphanTaskQueue}')`;
    for await (const wf of s.temporal.workflow.list({ query })) found.push(wf);
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
  // The server removes a deleted workflow from visibility some seconds later (about 18 s here);
  // a delete that has not taken after 15 s (refused while the server was busy) is asked again.
  const deleted = new Map<string, number>();
  await waitFor(
    'the test workflows to be deleted',
    90_000,
    async () => {
      const found = await list();
      const fresh = found.filter((wf) => Date.now() - (deleted.get(wf.runId) ?? 0) > 15_000);
      for (const wf of fresh) deleted.set(wf.runId, Date.now());
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

let extraGateways = 0;

/**
 * Another gateway of this run (same task queue, token and PLAT_HOME), with settings of its own, on a
 * free port; stopped by the returned function. `scheme` is how to reach it.
 */
export async function extraGateway(
  s: TestStack,
  env: Record<string, string>,
  scheme: 'http' | 'https' = 'http',
  /** A command the gateway runs under (it execs the gateway's command line, given as its arguments). */
  under: string[] = [],
): Promise<{ url: string; port: number; log: () => Promise<string>; stop: () => Promise<void> }> {
  // freePort's port is free when it answers, not when the gateway binds it: another process may take
  // it in between. Then the gateway exits at once, and another port is tried.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    // A log of its own: the kernel hands out a port again within a run, and a log named after the port
    // alone would hold an earlier gateway's "gateway listening", taken for this one's before it listens.
    const logFile = join(s.dataDir, `gateway-extra-${++extraGateways}-${port}.log`);
    const out = openSync(logFile, 'wx');
    const child = Bun.spawn([...under, BUN, ...GATEWAY_BUN_FLAGS, join(ROOT, 'gateway/main.ts')], {
      env: { ...s.processEnv, ...GATEWAY_ENV, PORT: String(port), ...env },
      cwd: ROOT,
      stdout: out,
      stderr: out,
    });
    closeSync(out); // (the gateway has its own copy)
    const log = () => Bun.file(logFile).text();
    let taken = false;
    await waitFor(`a gateway on :${port}`, 30_000, async () => {
      if (child.exitCode !== null) {
        const text = await log();
        taken = /could not (listen|start)[^\n]*in use/i.test(text);
        if (taken && attempt < 3) return true;
        throw new Error(`the extra gateway exited: ${text}`);
      }
      return (await log()).includes('gateway listening');
    });
    if (taken) continue;
    return extraGatewayOf(scheme, port, log, child);
  }
}

function extraGatewayOf(scheme: 'http' | 'https', port: number, log: () => Promise<string>, child: Bun.Subprocess) {
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    log,
    stop: async () => {
      child.kill('SIGTERM');
      await child.exited;
    },
  };
}
