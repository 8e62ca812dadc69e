import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { Mutex } from 'async-mutex';
import type { Activities } from '../activities';
import { SEARCH_ATTRIBUTES } from '../lib/names';
import { DRAIN_MS } from '../lib/settings';
import type { FunctionState, FunctionVersion, Instance, RegisterOutcome, Retirement } from '../lib/types';
import { dockerShort, imageTransfer } from './activity-options';
import { removedWhileStarting, startInstance } from './cold-start';
import {
  describeQuery,
  ENTITY_HISTORY_LIMIT,
  type FunctionEntityInput,
  instanceGoneSignal,
  instanceStartedUpdate,
  registerVersionUpdate,
  removeUpdate,
} from './definitions';

const { removeContainers, retireContainers, removeContainer } = proxyActivities<Activities>(dockerShort);
const { removeFunctionArtifacts } = proxyActivities<Activities>(imageTransfer);

/** How many versions a function keeps (images in the registry, entries in its history). */
export const VERSIONS_KEPT = 20;

/** How long a retirement that failed (the engine was down) waits before it tries again. */
const RETIRE_RETRY_MS = 30_000;

/**
 * One long-lived workflow per function (id `function/<name>`): the one writer of its versions and
 * instances. Deploys register versions and cold starts report instances through updates; the
 * worker's engine watch and the gateways report dead containers by signal.
 *
 * Handlers that await run one at a time, under `mutex` (as in Temporal's safe-message-handlers
 * sample): each reads the state after it holds the lock, so no decision rests on a state that
 * changed during another handler's await. Handlers that do not await (describe, instanceGone) are
 * atomic by construction and take no lock, so a dead container is forgotten even while a
 * registration waits for a new container to start.
 *
 * Overlapping deploys: the deploy that started last wins. Each registration carries when its deploy
 * started; one that started before the active version's deploy is recorded (it can be rolled back
 * to) but not activated. A switch retires exactly the containers it replaced, after DRAIN_MS.
 */
export async function functionEntity({ name, state: carried, historyLimit = ENTITY_HISTORY_LIMIT }: FunctionEntityInput): Promise<void> {
  const state: FunctionState = carried ?? { name, createdAt: new Date().toISOString(), versions: [], instances: [], retiring: [] };
  const mutex = new Mutex();
  /** Set the moment a removal is asked for, before it holds the lock: from then on nothing new is started. */
  let removing = false;

  setHandler(describeQuery, () => state);

  /** Stops the containers a switch replaced once the drain is over; retried while the engine is away. */
  async function retire(retirement: Retirement): Promise<void> {
    let wait = Date.parse(retirement.at) - Date.now();
    for (;;) {
      if (wait > 0) await sleep(wait);
      if (removing) break; // removal takes every container anyway
      try {
        await retireContainers({ containerIds: retirement.containerIds });
        break;
      } catch (error) {
        log.warn('retiring replaced containers failed; trying again', { containerIds: retirement.containerIds, error });
        wait = RETIRE_RETRY_MS;
      }
    }
    state.retiring = state.retiring.filter((r) => r !== retirement);
  }
  // Drains that a previous run (before continue-as-new) had not finished.
  for (const retirement of state.retiring) void retire(retirement);

  function record(version: FunctionVersion): void {
    const versions = [...state.versions, version].sort((a, b) => a.version.localeCompare(b.version));
    const kept = versions.slice(-VERSIONS_KEPT);
    const active = versions.find((v) => v.version === state.activeVersion);
    state.versions = active && !kept.includes(active) ? [active, ...kept.slice(1)] : kept;
  }

  function outcome(): RegisterOutcome {
    return { activated: false, activeVersion: state.activeVersion ?? '' };
  }

  /** Makes the version the one that serves; the containers of the others drain, then stop. */
  function activate(version: FunctionVersion, requestedAt: string, started: Instance | undefined): void {
    state.activeVersion = version.version;
    state.activatedAt = requestedAt;
    upsertSearchAttributes([
      { key: SEARCH_ATTRIBUTES.function, value: name },
      { key: SEARCH_ATTRIBUTES.version, value: version.version },
      { key: SEARCH_ATTRIBUTES.runtime, value: version.config.runtime },
    ]);
    const replaced = state.instances.filter((i) => i.version !== version.version);
    state.instances = [...state.instances.filter((i) => i.version === version.version), ...(started ? [started] : [])];
    if (replaced.length === 0) return;
    const retirement: Retirement = { containerIds: replaced.map((i) => i.containerId), at: new Date(Date.now() + DRAIN_MS).toISOString() };
    state.retiring.push(retirement);
    void retire(retirement);
  }

  /**
   * A function that is serving gets its new version running before the switch: no request waits for
   * a cold start, and a version that cannot start fails its deploy while the old one keeps serving.
   */
  async function startForSwitch(version: FunctionVersion): Promise<Instance | undefined> {
    if (state.instances.length === 0) return undefined;
    try {
      return await startInstance(name, version);
    } catch (error) {
      const cause = error instanceof ActivityFailure && error.cause ? error.cause : (error as Error);
      if (cause instanceof ApplicationFailure && cause.type === 'EngineUnavailable') throw cause;
      throw ApplicationFailure.create({
        type: 'VersionStartFailed',
        message: `${version.version} did not start, so ${state.activeVersion} keeps serving: ${cause.message}`,
        nonRetryable: true,
      });
    }
  }

  setHandler(
    registerVersionUpdate,
    ({ version, requestedAt }) =>
      mutex.runExclusive(async () => {
        // A registration that is retried (after a continue-as-new the update id no longer dedupes it).
        if (state.versions.some((v) => v.version === version.version)) {
          return { ...outcome(), activated: state.activeVersion === version.version };
        }
        if (removing) throw removedWhileStarting(name);
        if (state.activatedAt !== undefined && requestedAt < state.activatedAt) {
          record(version);
          return outcome();
        }
        const started = await startForSwitch(version);
        // This await would be dangerous without the lock held: another deploy could have switched
        // meanwhile. With it, only a removal (which refuses new work at once) can have come.
        if (removing) {
          if (started) await removeContainer({ containerId: started.containerId });
          throw removedWhileStarting(name);
        }
        record(version);
        activate(version, requestedAt, started);
        return { ...outcome(), activated: true };
      }),
    {
      validator: ({ version, requestedAt }) => {
        if (removing)
          throw ApplicationFailure.create({ type: 'Conflict', message: `function ${name} is being removed`, nonRetryable: true });
        if (!version?.version || !version.image || !requestedAt)
          throw new Error('a registration needs a version id, an image and its time');
      },
    },
  );

  setHandler(instanceStartedUpdate, (instance) =>
    mutex.runExclusive(async () => {
      if (removing || state.removed) {
        await removeContainer({ containerId: instance.containerId });
        return { accepted: false, reason: 'removed' } as const;
      }
      if (instance.version !== state.activeVersion) {
        // A cold start that a deploy overtook: its container must not linger, and its gateway routes again.
        await removeContainer({ containerId: instance.containerId });
        return { accepted: false, reason: 'superseded', activeVersion: state.activeVersion } as const;
      }
      if (!state.instances.some((i) => i.containerId === instance.containerId)) state.instances.push(instance);
      return { accepted: true } as const;
    }),
  );

  setHandler(instanceGoneSignal, (containerId) => {
    state.instances = state.instances.filter((i) => i.containerId !== containerId);
  });

  setHandler(
    removeUpdate,
    () => {
      removing = true;
      return mutex.runExclusive(async () => {
        try {
          const removedContainers = await removeContainers({ name });
          state.instances = [];
          state.retiring = [];
          await removeFunctionArtifacts({
            name,
            images: state.versions.map((v) => v.image),
            sourceDigests: state.versions.map((v) => v.sourceDigest),
          });
          state.removed = true;
          return { removedContainers };
        } catch (error) {
          // Nothing is half-removed for good: the function serves on, and a removal asked again redoes it all.
          removing = false;
          throw error;
        }
      });
    },
    {
      validator: () => {
        if (removing)
          throw ApplicationFailure.create({ type: 'Conflict', message: `function ${name} is already being removed`, nonRetryable: true });
      },
    },
  );

  const historyFull = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= historyLimit;
  await condition(() => state.removed === true || (historyFull() && !removing));
  await condition(allHandlersFinished);
  if (state.removed) return;
  await continueAsNew<typeof functionEntity>({ name, state, historyLimit });
}
