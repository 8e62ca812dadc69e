import { afterAll, beforeAll, beforeEach, describe, expect, it, setDefaultTimeout } from 'bun:test';
import type { Client, WorkflowFailedError } from '@temporalio/client';
import { heartbeat } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type Docker from 'dockerode';
import type { Activities } from '../../activities';
import { createRegisterActivities } from '../../activities/register';
import { workflowIds } from '../../lib/names';
import { DRAIN_MS, loadSettings } from '../../lib/settings';
import type { FunctionState, FunctionVersion, Instance } from '../../lib/types';
import {
  describeQuery,
  type FunctionEntityInput,
  instanceGoneSignal,
  type RegisterInput,
  registerVersionUpdate,
  removeUpdate,
  WORKFLOW_TYPES,
} from '../../workflows/definitions';
import { waitFor } from '../support/wait';
import { startWorkflowTests } from './environment';

setDefaultTimeout(60_000);

// The function entity's races, one test each, on Temporal's time-skipping test server with stub
// activities standing in for Docker: what must hold is decided in the workflow, and the stubs let
// a test hold a container start (or a removal) open at the moment it wants.

let env: TestWorkflowEnvironment;
let client: Client;
let stopWorker: () => Promise<void>;
const taskQueue = 'entity-tests';

/** What the stub activities were asked to do, and gates that hold them until a test releases them. */
const docker = {
  created: [] as Array<{ version: string; instanceId: string }>,
  removed: [] as string[],
  retired: [] as string[][],
  removedAll: 0,
  /** Removals of every container that began (and may be waiting at their gate). */
  removalsBegun: 0,
  /** A start of this version waits at its gate. */
  gates: new Map<string, Gate>(),
  /** A removal of every container waits at this gate. */
  removalGate: undefined as Gate | undefined,
  failStart: new Set<string>(),
};

/** A gate a stub activity waits at until the test opens it. */
interface Gate {
  opened: boolean;
  open: () => void;
}

function gate(): Gate {
  const g: Gate = {
    opened: false,
    open: () => {
      g.opened = true;
    },
  };
  return g;
}

/** Waits at a gate inside an activity, heartbeating, so the test server never takes the activity for dead. */
async function pass(g: Gate | undefined): Promise<void> {
  while (g && !g.opened) {
    heartbeat();
    await Bun.sleep(20);
  }
}

const containerOf = (instanceId: string) => `c-${instanceId.slice(0, 8)}`;

/**
 * The retirements among these containers, in order. Time is shared by every test on the server,
 * so a drain an earlier test left running may end during this one's: only this test's count.
 */
const retiredOf = (...containerIds: string[]) => docker.retired.filter((ids) => ids.some((id) => containerIds.includes(id)));

function stubActivities(client: Client): Partial<Activities> {
  const fakeDocker = { getContainer: (id: string) => ({ remove: async () => void docker.removed.push(id) }) } as unknown as Docker;
  const settings = { ...loadSettings({}), taskQueue };
  const register = createRegisterActivities({
    temporal: client,
    settings,
    docker: fakeDocker,
    events: { publish: () => {} },
    registry: undefined as never,
  });
  return {
    registerVersion: register.registerVersion,
    reportInstance: register.reportInstance,
    findInstance: async () => null,
    ensureImage: async () => {},
    createContainer: async ({ version, instanceId }) => {
      docker.created.push({ version: version.version, instanceId });
      return containerOf(instanceId);
    },
    startContainer: async ({ containerId }) => `http://${containerId}:8080`,
    waitHealthy: async ({ containerId }) => {
      const version = docker.created.find((c) => containerOf(c.instanceId) === containerId)?.version as string;
      await pass(docker.gates.get(version));
      if (docker.failStart.has(version)) {
        throw ApplicationFailure.create({ type: 'HealthCheckFailed', message: 'boom at import', nonRetryable: true });
      }
    },
    removeContainer: async ({ containerId }) => {
      docker.removed.push(containerId);
    },
    retireContainers: async ({ containerIds }) => {
      docker.retired.push(containerIds);
    },
    removeContainers: async () => {
      docker.removalsBegun++;
      await pass(docker.removalGate);
      docker.removedAll++;
      return 0;
    },
    removeFunctionArtifacts: async () => {},
  };
}

beforeAll(async () => {
  ({ env, client, stop: stopWorker } = await startWorkflowTests(taskQueue, stubActivities));
});

afterAll(async () => {
  await stopWorker?.();
});

beforeEach(() => {
  docker.created = [];
  docker.removed = [];
  docker.retired = [];
  docker.removedAll = 0;
  docker.removalsBegun = 0;
  docker.gates.clear();
  docker.removalGate = undefined;
  docker.failStart.clear();
});

let counter = 0;
function newName(): string {
  counter++;
  return `fn${counter}-${Date.now().toString(36)}`;
}

function version(name: string, id: string): FunctionVersion {
  return {
    version: id,
    image: `registry/${name}@sha256:${id}`,
    digest: `sha256:${id}`,
    sourceDigest: `sha256:src-${id}`,
    deployedAt: new Date().toISOString(),
    config: { name, runtime: 'bun', entry: 'index.ts', env: {}, memory: 256, cpu: 1, timeout: 30 },
  };
}

/**
 * What a deploy's register step does. The real step sends one update-with-start (tested against the
 * real server in tests/integration); the test server's update-with-start fails on a running workflow,
 * so here the entity is started first, if it is not yet running, and then updated.
 */
async function register(name: string, id: string, requestedAt: string, entity: Partial<FunctionEntityInput> = {}) {
  const handle = await client.workflow.start(WORKFLOW_TYPES.entity, {
    workflowId: workflowIds.entity(name),
    taskQueue,
    args: [{ name, ...entity }],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
  return handle.executeUpdate(registerVersionUpdate, {
    args: [{ version: version(name, id), requestedAt } satisfies RegisterInput],
    updateId: `register/${id}`,
  });
}

function describeEntity(name: string): Promise<FunctionState> {
  return client.workflow.getHandle(workflowIds.entity(name)).query(describeQuery);
}

/** A cold start of the active version, as the gateway runs it. */
function coldStart(name: string, id: string): Promise<Instance> {
  return client.workflow.execute(WORKFLOW_TYPES.coldStart, {
    workflowId: workflowIds.coldStart(name),
    taskQueue,
    args: [{ name, version: version(name, id) }],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
}

/**
 * A cold start of v1 held at its health check until `open()`. `failureType()` gives the type of the
 * failure it ends with (undefined if it succeeds); `containerId` is the container it made.
 */
async function heldColdStart(name: string) {
  const start = gate();
  docker.gates.set('v1', start);
  const outcome = coldStart(name, 'v1').then(
    () => undefined,
    (error: unknown) => ((error as WorkflowFailedError).cause as ApplicationFailure).type,
  );
  await waitFor('the cold start to create its container', 10_000, () => docker.created.length === 1);
  return { open: start.open, failureType: () => outcome, containerId: containerOf(docker.created[0]?.instanceId as string) };
}

const at = (second: number) => new Date(Date.UTC(2026, 10, 30, 12, 0, second)).toISOString();

describe('the function entity', () => {
  it('activates the deploy that started last, whichever registers first', async () => {
    const name = newName();
    // The later deploy registers first; the earlier one, finishing after it, is kept but not served.
    expect(await register(name, 'v2', at(2))).toEqual({ activated: true, activeVersion: 'v2' });
    expect(await register(name, 'v1', at(1))).toEqual({ activated: false, activeVersion: 'v2' });
    const state = await describeEntity(name);
    expect(state.activeVersion).toBe('v2');
    expect(state.versions.map((v) => v.version)).toEqual(['v1', 'v2']);

    // In start order, each takes over.
    expect(await register(name, 'v3', at(3))).toEqual({ activated: true, activeVersion: 'v3' });
  });

  it('runs two overlapping deploys of a serving function one after the other, and the later one serves', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    const first = await coldStart(name, 'v1');

    // v2's new container is held while it starts; v3 registers meanwhile and must wait its turn.
    const v2Start = gate();
    docker.gates.set('v2', v2Start);
    const v2 = register(name, 'v2', at(2));
    await waitFor('v2 to start its container', 10_000, () => docker.created.some((c) => c.version === 'v2'));
    const v3 = register(name, 'v3', at(3));
    // v3 has not begun: the entity is still busy with v2.
    expect(docker.created.map((c) => c.version)).toEqual(['v1', 'v2']);
    v2Start.open();
    expect(await v2).toEqual({ activated: true, activeVersion: 'v2' });
    expect(await v3).toEqual({ activated: true, activeVersion: 'v3' });

    const state = await describeEntity(name);
    expect(state.activeVersion).toBe('v3');
    expect(state.instances.map((i) => i.version)).toEqual(['v3']);
    await env.sleep(DRAIN_MS + 1000);
    const v2Container = containerOf(docker.created.find((c) => c.version === 'v2')?.instanceId as string);
    await waitFor('both replaced containers to be retired', 10_000, () => retiredOf(first.containerId, v2Container).length === 2);
    expect(retiredOf(first.containerId, v2Container)).toEqual([[first.containerId], [v2Container]]);
  });

  it('retires exactly the containers a switch replaced, never a newer version’s that started during the drain', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    const v1 = await coldStart(name, 'v1');
    await register(name, 'v2', at(2));
    const v2 = (await describeEntity(name)).instances[0] as Instance;

    // v3 starts during v1's drain and takes longer than the rest of it.
    const v3Start = gate();
    docker.gates.set('v3', v3Start);
    const v3 = register(name, 'v3', at(3));
    await waitFor('v3 to start its container', 10_000, () => docker.created.some((c) => c.version === 'v3'));
    await env.sleep(DRAIN_MS + 1000);
    const v3Container = containerOf(docker.created.find((c) => c.version === 'v3')?.instanceId as string);
    const mine = [v1.containerId, v2.containerId, v3Container];
    await waitFor('v1 to be retired', 10_000, () => retiredOf(...mine).length === 1);
    expect(retiredOf(...mine)).toEqual([[v1.containerId]]);
    v3Start.open();
    expect(await v3).toEqual({ activated: true, activeVersion: 'v3' });

    await env.sleep(DRAIN_MS + 1000);
    await waitFor('v2 to be retired', 10_000, () => retiredOf(...mine).length === 2);
    expect(retiredOf(...mine)).toEqual([[v1.containerId], [v2.containerId]]);
    const state = await describeEntity(name);
    expect(state.instances.map((i) => i.version)).toEqual(['v3']);
    expect(state.retiring).toEqual([]);
  });

  it('keeps serving the old version when the new one cannot start', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    const v1 = await coldStart(name, 'v1');
    docker.failStart.add('v2');
    const failure = await register(name, 'v2', at(2)).catch((error: Error) => error);
    expect(String((failure as Error).cause)).toContain('v2 did not start, so v1 keeps serving: boom at import');
    const state = await describeEntity(name);
    expect(state.activeVersion).toBe('v1');
    expect(state.instances.map((i) => i.containerId)).toEqual([v1.containerId]);
    expect(state.versions.map((v) => v.version)).toEqual(['v1']);
  });

  it('answers a duplicate registration without starting another container', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    await coldStart(name, 'v1');
    expect(await register(name, 'v2', at(2))).toEqual({ activated: true, activeVersion: 'v2' });
    // The same registration again, as a retried activity sends it (after a continue-as-new the
    // server no longer dedupes the update id, so the entity must).
    const again = await client.workflow
      .getHandle(workflowIds.entity(name))
      .executeUpdate(registerVersionUpdate, { args: [{ version: version(name, 'v2'), requestedAt: at(2) }], updateId: 'a-retry' });
    expect(again).toEqual({ activated: true, activeVersion: 'v2' });
    expect(docker.created.filter((c) => c.version === 'v2')).toHaveLength(1);
    const state = await describeEntity(name);
    expect(state.versions.map((v) => v.version)).toEqual(['v1', 'v2']);
    expect(state.instances.map((i) => i.version)).toEqual(['v2']);
  });

  it('refuses a cold start that a removal overtook, and removes its container', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    const start = await heldColdStart(name);
    expect(await client.workflow.getHandle(workflowIds.entity(name)).executeUpdate(removeUpdate)).toEqual({ removedContainers: 0 });
    start.open();
    expect(await start.failureType()).toBe('FunctionNotFound');
    expect(docker.removed).toContain(start.containerId);
  });

  it('refuses a cold start that reports while a removal holds the entity', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    const removal = gate();
    docker.removalGate = removal;
    const removing = client.workflow.getHandle(workflowIds.entity(name)).executeUpdate(removeUpdate);
    const start = await heldColdStart(name);
    start.open();
    removal.open();
    await removing;
    expect(await start.failureType()).toBe('FunctionNotFound');
    expect(docker.removed).toEqual([start.containerId]);
  });

  it('refuses a second removal, and a registration, while a removal is under way', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    const removal = gate();
    docker.removalGate = removal;
    const handle = client.workflow.getHandle(workflowIds.entity(name));
    const removing = handle.executeUpdate(removeUpdate);
    await waitFor('the removal to begin', 10_000, () => docker.removalsBegun === 1);
    const refusal = (error: unknown) => ((error as Error).cause as ApplicationFailure).type;
    expect(await handle.executeUpdate(removeUpdate).catch(refusal)).toBe('Conflict');
    expect(await register(name, 'v2', at(2)).catch(refusal)).toBe('Conflict');
    removal.open();
    expect(await removing).toEqual({ removedContainers: 0 });
  });

  it('refuses a cold start of a version a deploy replaced while it started', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    const start = await heldColdStart(name);
    // Nothing serves yet, so v2 switches without a start of its own.
    expect(await register(name, 'v2', at(2))).toEqual({ activated: true, activeVersion: 'v2' });
    start.open();
    expect(await start.failureType()).toBe('VersionSuperseded');
    expect(docker.removed).toEqual([start.containerId]);
    expect((await describeEntity(name)).instances).toEqual([]);
  });

  it('forgets an instance reported gone', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    const instance = await coldStart(name, 'v1');
    await client.workflow.getHandle(workflowIds.entity(name)).signal(instanceGoneSignal, instance.containerId);
    await waitFor('the instance to be forgotten', 10_000, async () => (await describeEntity(name)).instances.length === 0);
  });

  it('continues as new with every field of its state, and finishes a drain the previous run began', async () => {
    const name = newName();
    // A short history, so a few operations make the entity continue as new.
    await register(name, 'v1', at(1), { historyLimit: 40 });
    const v1 = await coldStart(name, 'v1');
    await register(name, 'v2', at(2));
    const before = await describeEntity(name);
    expect(before.retiring).toHaveLength(1);
    const handle = client.workflow.getHandle(workflowIds.entity(name));
    const firstRun = (await handle.describe()).runId;

    // Signals that change nothing (the container is unknown) until the history is long enough.
    for (let i = 0; i < 20 && (await handle.describe()).runId === firstRun; i++) {
      await handle.signal(instanceGoneSignal, `unknown-${i}`);
    }
    await waitFor('the entity to continue as new', 10_000, async () => (await handle.describe()).runId !== firstRun);
    const after = await describeEntity(name);
    expect(after).toEqual(before);

    await env.sleep(DRAIN_MS + 1000);
    const v2 = (await describeEntity(name)).instances[0]?.containerId as string;
    await waitFor('the carried drain to end', 10_000, () => retiredOf(v1.containerId, v2).length === 1);
    expect(retiredOf(v1.containerId, v2)).toEqual([[v1.containerId]]);
    expect((await describeEntity(name)).retiring).toEqual([]);
  });
});
