import { afterAll, beforeAll, beforeEach, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { type Client, type WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { beat } from '../../activities/docker-helpers';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type Docker from 'dockerode';
import type { Activities } from '../../activities';
import { createRegisterActivities } from '../../activities/register';
import { SCALE_DEFAULTS, type ScaleConfig } from '../../lib/function-config';
import { workflowIds } from '../../lib/names';
import { DRAIN_MS, loadSettings } from '../../lib/settings';
import type { FunctionState, FunctionVersion, Instance } from '../../lib/types';
import {
  activateVersionUpdate,
  describeQuery,
  type FunctionEntityInput,
  instanceGoneSignal,
  instanceResumedSignal,
  instancesUsedSignal,
  type RegisterInput,
  registerVersionUpdate,
  removeUpdate,
  WORKFLOW_TYPES,
} from '../../workflows/definitions';
import { waitFor } from '../support/wait';
import { startWorkflowTests } from './environment';

setDefaultTimeout(60_000);

// The function entity's races and timers, one test each, on Temporal's time-skipping test server
// with stub activities standing in for Docker: what must hold is decided in the workflow, the stubs
// let a test hold a container start (or a removal) open at the moment it wants, and env.sleep moves
// the clock past drains and idle deadlines.

let env: TestWorkflowEnvironment;
let client: Client;
let stopWorker: () => Promise<void>;
const taskQueue = 'entity-tests';

/** What the stub activities were asked to do, and gates that hold them until a test releases them. */
const docker = {
  created: [] as Array<{ version: string; instanceId: string }>,
  removed: [] as string[],
  retired: [] as string[][],
  /** Each container retired with a reason, and the reason (the function's log gets it). */
  retiredFor: [] as Array<{ containerId: string; reason?: string }>,
  removedAll: 0,
  /** Removals of every container that began (and may be waiting at their gate). */
  removalsBegun: 0,
  /** A start of this version waits at its gate. */
  gates: new Map<string, Gate>(),
  /** A removal of every container waits at this gate. */
  removalGate: undefined as Gate | undefined,
  failStart: new Set<string>(),
  /** Pauses asked for, and the containers that answer "busy" (work pending after their answer). */
  paused: [] as string[],
  busy: new Set<string>(),
  /** What pruneImages was told to keep, and the versions discardVersions deleted. */
  pruned: [] as Array<{ name: string; keep: string[] }>,
  discarded: [] as Array<{ name: string; versions: string[] }>,
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
    beat();
    await Bun.sleep(20);
  }
}

const containerOf = (instanceId: string) => `c-${instanceId.slice(0, 8)}`;

/**
 * The retirements among these containers, in order. Time is shared by every test on the server,
 * so a drain or an idle timer an earlier test left running may end during this one's: only this
 * test's containers count.
 */
const retiredOf = (...containerIds: string[]) => docker.retired.filter((ids) => ids.some((id) => containerIds.includes(id)));

/** A stand-in container answers its health route once its version's gate opens, unless its version is set to fail. */
async function healthy(containerId: string): Promise<void> {
  const version = docker.created.find((c) => containerOf(c.instanceId) === containerId)?.version as string;
  await pass(docker.gates.get(version));
  if (docker.failStart.has(version)) {
    throw ApplicationFailure.create({ type: 'HealthCheckFailed', message: 'boom at import', nonRetryable: true });
  }
}

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
    reserveInstance: register.reserveInstance,
    findInstance: async () => null,
    ensureImage: async () => {},
    createContainer: async ({ version, instanceId }) => {
      docker.created.push({ version: version.version, instanceId });
      return containerOf(instanceId);
    },
    startContainer: async ({ containerId }) => `http://${containerId}:8080`,
    waitHealthy: async ({ containerId }) => healthy(containerId),
    // The cold start's whole start, made of the same stand-ins as the entity's own starts.
    launchInstance: async ({ version, instanceId }) => {
      docker.created.push({ version: version.version, instanceId });
      const containerId = containerOf(instanceId);
      try {
        await healthy(containerId);
      } catch (error) {
        docker.removed.push(containerId);
        throw error;
      }
      const now = new Date().toISOString();
      return {
        containerId,
        instanceId,
        version: version.version,
        url: `http://${containerId}:8080`,
        startedAt: now,
        state: 'running',
        lastUsedAt: now,
      };
    },
    removeContainer: async ({ containerId }) => {
      docker.removed.push(containerId);
    },
    retireContainers: async ({ containerIds, reason }) => {
      docker.retired.push(containerIds);
      for (const containerId of containerIds) docker.retiredFor.push({ containerId, reason });
    },
    removeContainers: async () => {
      docker.removalsBegun++;
      await pass(docker.removalGate);
      docker.removedAll++;
      return 0;
    },
    removeFunctionArtifacts: async () => {},
    collectRegistryGarbageSoon: async () => {},
    pauseInstance: async ({ containerId }) => {
      if (docker.busy.has(containerId)) return 'busy';
      docker.paused.push(containerId);
      return 'paused';
    },
    pruneImages: async ({ name, keep }) => {
      docker.pruned.push({ name, keep });
      return 0;
    },
    discardVersions: async ({ name, versions }) => {
      docker.discarded.push({ name, versions: versions.map((v) => v.version) });
    },
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
  docker.paused = [];
  docker.busy.clear();
  docker.pruned = [];
  docker.discarded = [];
});

let counter = 0;
function newName(): string {
  counter++;
  return `fn${counter}-${Date.now().toString(36)}`;
}

/** Idle rules that never fire within a test, unless the test sets its own. */
const NO_IDLE: ScaleConfig = { ...SCALE_DEFAULTS, min: 0, pauseAfter: 0, stopAfter: 0 };

function version(name: string, id: string, scale: ScaleConfig = NO_IDLE): FunctionVersion {
  return {
    version: id,
    image: `registry/${name}@sha256:${id}`,
    digest: `sha256:${id}`,
    sourceDigest: `sha256:src-${id}`,
    deployedAt: new Date().toISOString(),
    config: { name, runtime: 'bun', entry: 'index.ts', env: {}, memory: 256, cpu: 1, timeout: 30, scale },
  };
}

interface RegisterOptions {
  entity?: Partial<FunctionEntityInput>;
  scale?: ScaleConfig;
  versionsKept?: number;
}

/**
 * What a deploy's register step does. The real step sends one update-with-start (tested against the
 * real server in tests/integration); the test server's update-with-start fails on a running workflow,
 * so here the entity is started first, if it is not yet running, and then updated.
 */
async function register(name: string, id: string, requestedAt: string, options: RegisterOptions = {}) {
  const handle = await client.workflow.start(WORKFLOW_TYPES.entity, {
    workflowId: workflowIds.entity(name),
    taskQueue,
    args: [{ name, ...options.entity }],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
  return handle.executeUpdate(registerVersionUpdate, {
    args: [{ version: version(name, id, options.scale), requestedAt, versionsKept: options.versionsKept } satisfies RegisterInput],
    updateId: `register/${id}`,
  });
}

const entity = (name: string) => client.workflow.getHandle(workflowIds.entity(name));

function describeEntity(name: string): Promise<FunctionState> {
  return entity(name).query(describeQuery);
}

/** The instance of a version the entity lists (the one its registration started, say). */
async function instanceOf(name: string, id: string): Promise<Instance> {
  const found = (await describeEntity(name)).instances.find((i) => i.version === id);
  if (!found) throw new Error(`${name} lists no instance of ${id}`);
  return found;
}

/** A cold start, as the gateway runs it (for a version's preview URL with `preview`). */
function coldStart(name: string, id: string, preview = false, slot = 1, scale?: ScaleConfig): Promise<Instance> {
  return client.workflow.execute(WORKFLOW_TYPES.coldStart, {
    workflowId: workflowIds.coldStart(name, id, slot),
    taskQueue,
    args: [{ name, version: version(name, id, scale), preview, slot }],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
}

/** What a failed workflow or update failed with. */
const failureType = (error: unknown) => ((error as WorkflowFailedError).cause as ApplicationFailure).type;

/**
 * A cold start of v1 held at its health check until `open()`. `failureType()` gives the type of the
 * failure it ends with (undefined if it succeeds); `containerId` is the container it made.
 */
async function heldColdStart(name: string) {
  const start = gate();
  docker.gates.set('v1', start);
  const before = docker.created.length;
  const outcome = coldStart(name, 'v1').then(() => undefined, failureType);
  await waitFor('the cold start to create its container', 10_000, () => docker.created.length === before + 1);
  return { open: start.open, failureType: () => outcome, containerId: containerOf(docker.created[before]?.instanceId as string) };
}

/** Times long before the test server's clock: a deploy that started then is older than anything the entity does now. */
const at = (second: number) => new Date(Date.UTC(2020, 0, 1, 12, 0, second)).toISOString();
const serverNow = async () => new Date(await env.currentTimeMs()).toISOString();

describe('the function entity', () => {
  it('holds a version to scale.max: a scale-out past it is refused before any container starts', async () => {
    const name = newName();
    const scale = { ...NO_IDLE, max: 2 };
    await register(name, 'v1', at(1), { scale });
    const second = await coldStart(name, 'v1', false, 2, scale);
    expect((await describeEntity(name)).instances.map((i) => i.containerId)).toContain(second.containerId);
    const created = docker.created.length;
    expect(await coldStart(name, 'v1', false, 3, scale).catch(failureType)).toBe('ScaleLimit');
    expect(docker.created.length).toBe(created);
    expect((await describeEntity(name)).instances).toHaveLength(2);
  });

  it('proves the first version starts, and keeps that container as its instance', async () => {
    const name = newName();
    expect(await register(name, 'v1', at(1))).toEqual({ activated: true, activeVersion: 'v1' });
    expect(docker.created.map((c) => c.version)).toEqual(['v1']);
    const state = await describeEntity(name);
    expect(state.instances.map((i) => [i.version, i.state, i.containerId])).toEqual([
      ['v1', 'running', containerOf(docker.created[0]?.instanceId as string)],
    ]);
  });

  it('fails a version that cannot start even when nothing serves, and records nothing', async () => {
    const name = newName();
    docker.failStart.add('v1');
    const failure = await register(name, 'v1', at(1)).catch((error: Error) => error);
    expect(String((failure as Error).cause)).toContain('v1 did not start: boom at import');
    const state = await describeEntity(name);
    expect(state.activeVersion).toBeUndefined();
    expect(state.versions).toEqual([]);
    expect(state.instances).toEqual([]);
  });

  it('activates the deploy that started last, whichever registers first', async () => {
    const name = newName();
    // The later deploy registers first; the earlier one, finishing after it, is kept but not served.
    expect(await register(name, 'v2', at(2))).toEqual({ activated: true, activeVersion: 'v2' });
    expect(await register(name, 'v1', at(1))).toEqual({ activated: false, activeVersion: 'v2' });
    const state = await describeEntity(name);
    expect(state.activeVersion).toBe('v2');
    expect(state.versions.map((v) => v.version)).toEqual(['v1', 'v2']);
    // Its proof of start stays as a preview instance, which the idle rules take down.
    expect(state.instances.map((i) => i.version).sort()).toEqual(['v1', 'v2']);

    // In start order, each takes over.
    expect(await register(name, 'v3', at(3))).toEqual({ activated: true, activeVersion: 'v3' });
  });

  it('runs two overlapping deploys of a serving function one after the other, and the later one serves', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    const first = await instanceOf(name, 'v1');

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
    const v1 = await instanceOf(name, 'v1');
    await register(name, 'v2', at(2));
    const v2 = await instanceOf(name, 'v2');

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
    // Once the drain is over, the local images of the versions that no longer run go, but the active and the previous one's.
    await waitFor('the images to be pruned', 10_000, () => docker.pruned.some((p) => p.name === name && !p.keep.includes('v1')));
    expect(
      docker.pruned
        .filter((p) => p.name === name)
        .at(-1)
        ?.keep.sort(),
    ).toEqual(['v2', 'v3']);
  });

  it('keeps serving the old version when the new one cannot start', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    const v1 = await instanceOf(name, 'v1');
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
    expect(await register(name, 'v2', at(2))).toEqual({ activated: true, activeVersion: 'v2' });
    // The same registration again, as a retried activity sends it (after a continue-as-new the
    // server no longer dedupes the update id, so the entity must).
    const again = await entity(name).executeUpdate(registerVersionUpdate, {
      args: [{ version: version(name, 'v2'), requestedAt: at(2) }],
      updateId: 'a-retry',
    });
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
    expect(await entity(name).executeUpdate(removeUpdate)).toEqual({ removedContainers: 0 });
    start.open();
    expect(await start.failureType()).toBe('FunctionNotFound');
    expect(docker.removed).toContain(start.containerId);
  });

  it('refuses a cold start that reports while a removal holds the entity', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    const removal = gate();
    docker.removalGate = removal;
    const removing = entity(name).executeUpdate(removeUpdate);
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
    const removing = entity(name).executeUpdate(removeUpdate);
    await waitFor('the removal to begin', 10_000, () => docker.removalsBegun === 1);
    expect(await entity(name).executeUpdate(removeUpdate).catch(failureType)).toBe('Conflict');
    expect(await register(name, 'v2', at(2)).catch(failureType)).toBe('Conflict');
    removal.open();
    expect(await removing).toEqual({ removedContainers: 0 });
  });

  it('refuses a cold start of a version a deploy replaced while it started, and drains its container before stopping it', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    const start = await heldColdStart(name);
    expect(await register(name, 'v2', at(2))).toEqual({ activated: true, activeVersion: 'v2' });
    start.open();
    expect(await start.failureType()).toBe('VersionSuperseded');
    // Gateways may have routed to it already (instance-ready): what they sent is answered first.
    expect(docker.removed).toEqual([]);
    const state = await describeEntity(name);
    expect(state.instances.map((i) => i.version)).toEqual(['v2']);
    expect(state.retiring.map((r) => r.containerIds)).toContainEqual([start.containerId]);
    expect(docker.retired).not.toContainEqual([start.containerId]);
    await env.sleep(DRAIN_MS + 1000);
    await waitFor('the refused container to be stopped', 10_000, () => docker.retired.some((ids) => ids.includes(start.containerId)));
    expect(docker.removed).toEqual([]);
  });

  it('forgets an instance reported gone', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    const instance = await instanceOf(name, 'v1');
    await entity(name).signal(instanceGoneSignal, instance.containerId);
    await waitFor('the instance to be forgotten', 10_000, async () => (await describeEntity(name)).instances.length === 0);
  });

  it('stops a container a gateway reports failing, listed or not yet, and leaves a dead one the worker reports to the reaper', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    const instance = await instanceOf(name, 'v1');
    const [failing, unlisted, dead] = [instance.containerId, `${name}-unlisted`, `${name}-dead`];
    // First (signals are handled in order): by the time the others are stopped, this one would be too.
    await entity(name).signal(instanceGoneSignal, dead);
    await entity(name).signal(instanceGoneSignal, failing, 'its answer has a malformed header line');
    // A gateway may route to a new instance (instance-ready) before its start is reported here.
    await entity(name).signal(instanceGoneSignal, unlisted, 'its container closed the connection before answering');
    const stopped = () => docker.retiredFor.filter((k) => [failing, unlisted, dead].includes(k.containerId));
    await waitFor('the failing containers to be stopped', 10_000, () => stopped().length === 2);
    // The two stops run at once: in either order.
    expect(stopped().sort((a, b) => (a.containerId === failing ? -1 : b.containerId === failing ? 1 : 0))).toEqual([
      { containerId: failing, reason: 'it failed a request (its answer has a malformed header line)' },
      { containerId: unlisted, reason: 'it failed a request (its container closed the connection before answering)' },
    ]);
    expect((await describeEntity(name)).instances).toEqual([]);
    expect(docker.retired.some((ids) => ids.includes(dead))).toBe(false);
  });

  it('continues as new with every field of its state, and finishes a drain the previous run began', async () => {
    const name = newName();
    // A short history, so a few operations make the entity continue as new.
    await register(name, 'v1', at(1), { entity: { historyLimit: 40 } });
    const v1 = await instanceOf(name, 'v1');
    await register(name, 'v2', at(2));
    const before = await describeEntity(name);
    expect(before.retiring).toHaveLength(1);
    const firstRun = (await entity(name).describe()).runId;

    // Signals that change nothing (the container is unknown) until the history is long enough.
    for (let i = 0; i < 20 && (await entity(name).describe()).runId === firstRun; i++) {
      // A signal that meets the run at the moment it continues as new is refused (the run completed):
      // the next look finds the new run.
      await entity(name)
        .signal(instanceGoneSignal, `unknown-${i}`)
        .catch((error: unknown) => {
          if (!(error instanceof WorkflowNotFoundError)) throw error;
        });
    }
    await waitFor('the entity to continue as new', 10_000, async () => (await entity(name).describe()).runId !== firstRun);
    const after = await describeEntity(name);
    expect(after).toEqual(before);

    await env.sleep(DRAIN_MS + 1000);
    const v2 = (await instanceOf(name, 'v2')).containerId;
    await waitFor('the carried drain to end', 10_000, () => retiredOf(v1.containerId, v2).length === 1);
    expect(retiredOf(v1.containerId, v2)).toEqual([[v1.containerId]]);
    expect((await describeEntity(name)).retiring).toEqual([]);
  });
});

describe('versions and rollback', () => {
  it('rolls back to the previous version, then to a named one, each proving it starts first', async () => {
    const name = newName();
    for (const [i, id] of ['v1', 'v2', 'v3'].entries()) await register(name, id, at(i + 1));
    expect(await entity(name).executeUpdate(activateVersionUpdate, { args: [{}] })).toEqual({ activeVersion: 'v2', previousVersion: 'v3' });
    // v2's container was retired by v3's switch: the rollback started a new one before switching.
    expect(docker.created.map((c) => c.version)).toEqual(['v1', 'v2', 'v3', 'v2']);
    expect((await describeEntity(name)).instances.map((i) => i.version)).toEqual(['v2']);

    expect(await entity(name).executeUpdate(activateVersionUpdate, { args: [{ version: 'v1' }] })).toEqual({
      activeVersion: 'v1',
      previousVersion: 'v2',
    });
    const state = await describeEntity(name);
    expect([state.activeVersion, state.previousVersion]).toEqual(['v1', 'v2']);
  });

  it('refuses a rollback to a version it does not keep, or with nothing before', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    expect(
      await entity(name)
        .executeUpdate(activateVersionUpdate, { args: [{}] })
        .catch(failureType),
    ).toBe('VersionNotFound');
    expect(
      await entity(name)
        .executeUpdate(activateVersionUpdate, { args: [{ version: 'v9' }] })
        .catch(failureType),
    ).toBe('VersionNotFound');
    expect((await describeEntity(name)).activeVersion).toBe('v1');
  });

  it('keeps the active version when the one rolled back to cannot start', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    await register(name, 'v2', at(2));
    docker.failStart.add('v1');
    expect(
      await entity(name)
        .executeUpdate(activateVersionUpdate, { args: [{}] })
        .catch(failureType),
    ).toBe('VersionStartFailed');
    expect((await describeEntity(name)).activeVersion).toBe('v2');
  });

  it('keeps a rollback when a deploy that started before it registers after it', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    await register(name, 'v2', at(2));
    await entity(name).executeUpdate(activateVersionUpdate, { args: [{}] });
    expect(await register(name, 'v3', at(3))).toEqual({ activated: false, activeVersion: 'v1' });
  });

  it('accepts a preview instance of a kept version beside the active one, and refuses it as the active route', async () => {
    const name = newName();
    await register(name, 'v1', at(1));
    await register(name, 'v2', at(2));
    const preview = await coldStart(name, 'v1', true);
    expect((await describeEntity(name)).instances.map((i) => i.version).sort()).toEqual(['v1', 'v2']);
    // A switch retires the replaced version's serving containers, not a preview that started since.
    expect(preview.version).toBe('v1');
    expect(await coldStart(name, 'v9', true).catch(failureType)).toBe('VersionSuperseded');
  });

  it('deletes versions that fall out of the kept count, never the active or the previous one', async () => {
    const name = newName();
    for (const [i, id] of ['v1', 'v2', 'v3', 'v4'].entries()) await register(name, id, at(i + 1), { versionsKept: 2 });
    expect((await describeEntity(name)).versions.map((v) => v.version)).toEqual(['v3', 'v4']);
    expect(docker.discarded.filter((d) => d.name === name).flatMap((d) => d.versions)).toEqual(['v1', 'v2']);

    // Rolled back to v3 (v4 becomes the previous one, kept), then v5 deployed after it: v3 is now
    // the previous one, and v4, neither, goes.
    await entity(name).executeUpdate(activateVersionUpdate, { args: [{}] });
    expect((await describeEntity(name)).versions.map((v) => v.version)).toEqual(['v3', 'v4']);
    expect(await register(name, 'v5', await serverNow(), { versionsKept: 2 })).toEqual({ activated: true, activeVersion: 'v5' });
    expect((await describeEntity(name)).versions.map((v) => v.version)).toEqual(['v3', 'v5']);
    expect(docker.discarded.filter((d) => d.name === name).flatMap((d) => d.versions)).toEqual(['v1', 'v2', 'v4']);
  });
});

describe('the idle rules', () => {
  const scale = { ...SCALE_DEFAULTS, min: 0, pauseAfter: 5, stopAfter: 15 };

  it('pause an instance idle for pauseAfter, stop it after stopAfter, and count from its last reported use', async () => {
    const name = newName();
    await register(name, 'v1', at(1), { scale });
    const { containerId } = await instanceOf(name, 'v1');
    await env.sleep(3000);
    await entity(name).signal(instancesUsedSignal, [{ containerId, at: await serverNow() }]);
    await env.sleep(3000);
    // 6 s since the start, 3 s since the use: not paused yet.
    expect(docker.paused.filter((id) => id === containerId)).toEqual([]);
    await env.sleep(3000);
    await waitFor('the instance to be paused', 10_000, async () => (await instanceOf(name, 'v1')).state === 'paused');
    expect(docker.paused.filter((id) => id === containerId)).toEqual([containerId]);

    await env.sleep(10_000);
    await waitFor('the instance to be stopped', 10_000, async () => (await describeEntity(name)).instances.length === 0);
    expect(retiredOf(containerId)).toEqual([[containerId]]);
  });

  it('take a resumed instance as running and used', async () => {
    const name = newName();
    await register(name, 'v1', at(1), { scale });
    const { containerId } = await instanceOf(name, 'v1');
    await env.sleep(6000);
    await waitFor('the instance to be paused', 10_000, async () => (await instanceOf(name, 'v1')).state === 'paused');
    const resumedAt = await serverNow();
    await entity(name).signal(instanceResumedSignal, { containerId, at: resumedAt });
    await waitFor('the instance to run again', 10_000, async () => (await instanceOf(name, 'v1')).state === 'running');
    expect((await instanceOf(name, 'v1')).lastUsedAt).toBe(resumedAt);
  });

  it('do not pause an instance with work pending after its answer', async () => {
    const name = newName();
    await register(name, 'v1', at(1), { scale });
    const { containerId } = await instanceOf(name, 'v1');
    docker.busy.add(containerId);
    await env.sleep(6000);
    await waitFor(
      'the pause to be tried',
      10_000,
      async () => (await instanceOf(name, 'v1')).lastUsedAt > (await instanceOf(name, 'v1')).startedAt,
    );
    expect((await instanceOf(name, 'v1')).state).toBe('running');
    docker.busy.delete(containerId);
    await env.sleep(6000);
    await waitFor('the instance to be paused', 10_000, async () => (await instanceOf(name, 'v1')).state === 'paused');
  });

  it('never pause the min instances, and start one when fewer run', async () => {
    const name = newName();
    await register(name, 'v1', at(1), { scale: { ...scale, min: 1 } });
    const first = await instanceOf(name, 'v1');
    await env.sleep(20_000);
    expect((await instanceOf(name, 'v1')).state).toBe('running');
    expect(docker.paused.filter((id) => id === first.containerId)).toEqual([]);

    await entity(name).signal(instanceGoneSignal, first.containerId);
    await waitFor('another instance to be started', 10_000, async () => {
      const instances = (await describeEntity(name)).instances;
      return instances.length === 1 && instances[0]?.containerId !== first.containerId;
    });
  });
});
