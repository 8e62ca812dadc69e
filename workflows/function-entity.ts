import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { Mutex } from 'async-mutex';
import type { Activities } from '../activities';
import { SCALE_DEFAULTS, type ScaleConfig, scaleOf as withDefaults } from '../lib/function-config';
import { SEARCH_ATTRIBUTES } from '../lib/names';
import { DRAIN_MS } from '../lib/settings';
import type { FunctionState, FunctionVersion, Instance, InstanceOutcome, RegisterOutcome, Retirement, RollbackOutcome } from '../lib/types';
import { dockerShort, imageTransfer, temporalCall } from './activity-options';
import { removedWhileStarting, startInstance } from './cold-start';
import {
  activateVersionUpdate,
  addKeyUpdate,
  describeQuery,
  ENTITY_HISTORY_LIMIT,
  type FunctionEntityInput,
  instanceGoneSignal,
  instanceResumedSignal,
  instanceStartedUpdate,
  instancesUsedSignal,
  reserveInstanceUpdate,
  registerVersionUpdate,
  removeUpdate,
  revokeKeyUpdate,
} from './definitions';

const { removeContainers, retireContainers, removeContainer, pauseInstance, pruneImages } = proxyActivities<Activities>(dockerShort);
const { removeFunctionArtifacts, discardVersions } = proxyActivities<Activities>(imageTransfer);
const { collectRegistryGarbageSoon } = proxyActivities<Activities>(temporalCall);

/** How many versions a function keeps when the registration does not say (PLAT_VERSIONS_KEPT). */
export const VERSIONS_KEPT = 20;

/** Invoke keys a function may have at once (each is a line of its entity's state). */
const MAX_KEYS = 100;
/**
 * How long a scale-out's hold on a place lasts without its instance's report: a start's health wait
 * (30 s) and more. Holds live in the run's memory; a continue-as-new drops them, and the check at the
 * report still holds the version to its max.
 */
const RESERVATION_MS = 60_000;
/** Refused starts are drained, not removed at once (histories from before record a removal). */
const DRAIN_REFUSED = 'drain-refused-starts';
/** How long a retirement or an idle transition that failed (the engine was down) waits before it tries again. */
const RETRY_MS = 30_000;

type Refusal = Extract<InstanceOutcome, { accepted: false }>;

type IdleAction = { at: number; instance?: Instance; action: 'pause' | 'stop' | 'start' };

/** Histories from before an entity stopped the containers that failed a request replay without it. */
const STOP_FAILED = 'stop-failed-instances';

/**
 * One long-lived workflow per function (id `function/<name>`): the one writer of its versions and
 * instances. Deploys register versions, rollbacks activate them and cold starts report instances
 * through updates; the worker reports dead and resumed containers and the gateways report use by
 * signal. It owns the idle timers: instances are paused, then stopped, by its own activities, so
 * each transition shows in its history.
 *
 * Handlers that await run one at a time, under `mutex` (as in Temporal's safe-message-handlers
 * sample): each reads the state after it holds the lock, so no decision rests on a state that
 * changed during another handler's await. Handlers that do not await (describe, the signals) are
 * atomic by construction and take no lock, so a dead container is forgotten even while a
 * registration waits for a new container to start.
 *
 * Every registration and rollback proves its version starts (a container that answers its health
 * route, or one of that version already running) before the switch. Overlapping deploys: the deploy
 * that started last wins; one that started before the active version's deploy (or rollback) is
 * recorded but not activated. A switch retires exactly the containers of the version it replaced,
 * after DRAIN_MS; preview instances of other versions idle out by the rules.
 */
export async function functionEntity({ name, state: carried, historyLimit = ENTITY_HISTORY_LIMIT }: FunctionEntityInput): Promise<void> {
  const state: FunctionState = carried ?? { name, createdAt: new Date().toISOString(), versions: [], instances: [], retiring: [] };
  const mutex = new Mutex();
  /** Set the moment a removal is asked for, before it holds the lock: from then on nothing new is started. */
  let removing = false;
  /** Bumped whenever instances, their use or the active version change: the idle timer recomputes its next deadline. */
  let changes = 0;

  setHandler(describeQuery, () => state);

  const versionOf = (id: string | undefined) => state.versions.find((v) => v.version === id);
  const scaleOf = (version: string): ScaleConfig => withDefaults(versionOf(version)?.config);
  const now = () => new Date().toISOString();

  /** Stops the containers a switch replaced once the drain is over; retried while the engine is away. */
  async function retire(retirement: Retirement): Promise<void> {
    let wait = Date.parse(retirement.at) - Date.now();
    for (;;) {
      if (wait > 0) await sleep(wait);
      if (removing) break; // removal takes every container anyway
      try {
        const reason = retirement.reason ?? `replaced by version ${state.activeVersion}`;
        await retireContainers({ containerIds: retirement.containerIds, name, reason });
        break;
      } catch (error) {
        log.warn('retiring replaced containers failed; trying again', { containerIds: retirement.containerIds, error });
        wait = RETRY_MS;
      }
    }
    state.retiring = state.retiring.filter((r) => r !== retirement);
    await reclaimImages();
  }
  /** Stops these containers once DRAIN_MS is over (every gateway has stopped routing to them), recorded in the state. */
  function drainThenStop(containerIds: string[], reason?: string): void {
    const retirement: Retirement = { containerIds, at: new Date(Date.now() + DRAIN_MS).toISOString(), ...(reason ? { reason } : {}) };
    state.retiring.push(retirement);
    void retire(retirement);
  }
  // Drains that a previous run (before continue-as-new) had not finished.
  for (const retirement of state.retiring) void retire(retirement);

  /** Removes the local images no instance needs, but the active version's and the previous one's (a fast rollback). */
  async function reclaimImages(): Promise<void> {
    if (removing) return;
    const keep = new Set([state.activeVersion, state.previousVersion, ...state.instances.map((i) => i.version)]);
    await pruneImages({ name, keep: [...keep].filter((v): v is string => v !== undefined) }).catch((error: unknown) =>
      log.warn('removing unused images failed', { error }),
    );
  }

  /** Records a version; those that fall out of the kept count are deleted from the registry and the engine. */
  async function record(version: FunctionVersion, versionsKept: number): Promise<void> {
    state.versionsKept = versionsKept;
    const all = [...state.versions, version].sort((a, b) => a.version.localeCompare(b.version));
    const protectedIds = new Set([state.activeVersion, state.previousVersion, version.version]);
    const dropped: FunctionVersion[] = [];
    let excess = all.length - versionsKept;
    for (const v of all) {
      if (excess <= 0) break;
      if (protectedIds.has(v.version) || state.instances.some((i) => i.version === v.version)) continue;
      dropped.push(v);
      excess--;
    }
    state.versions = all.filter((v) => !dropped.includes(v));
    if (dropped.length === 0) return;
    await discardVersions({
      name,
      versions: dropped.map((v) => ({ version: v.version, image: v.image, sourceDigest: v.sourceDigest })),
      keepSources: state.versions.map((v) => v.sourceDigest),
    }).catch((error: unknown) => log.warn('deleting versions that fell out failed', { error }));
  }

  /** Makes the version the one that serves; the previous version's containers drain, then stop. */
  function activate(version: FunctionVersion, requestedAt: string, started: Instance | undefined): void {
    const previous = state.activeVersion;
    if (previous !== undefined && previous !== version.version) state.previousVersion = previous;
    state.activeVersion = version.version;
    state.activatedAt = requestedAt;
    upsertSearchAttributes([
      { key: SEARCH_ATTRIBUTES.function, value: name },
      { key: SEARCH_ATTRIBUTES.version, value: version.version },
      { key: SEARCH_ATTRIBUTES.runtime, value: version.config.runtime },
    ]);
    if (started) state.instances.push(started);
    changes++;
    if (previous === undefined || previous === version.version) return;
    const replaced = state.instances.filter((i) => i.version === previous);
    if (replaced.length === 0) return;
    state.instances = state.instances.filter((i) => i.version !== previous);
    drainThenStop(replaced.map((i) => i.containerId));
  }

  /**
   * Proves the version starts: a container of it that runs already will do; else a new one must
   * answer its health route. A version that cannot start fails its deploy (or rollback) while the
   * active one keeps serving.
   */
  async function proveStart(version: FunctionVersion): Promise<Instance | undefined> {
    if (state.instances.some((i) => i.version === version.version && i.state === 'running')) return undefined;
    try {
      return await startInstance(name, version);
    } catch (error) {
      const cause = error instanceof ActivityFailure && error.cause ? error.cause : (error as Error);
      if (cause instanceof ApplicationFailure && cause.type === 'EngineUnavailable') throw cause;
      const serving = state.activeVersion ? `, so ${state.activeVersion} keeps serving` : '';
      throw ApplicationFailure.create({
        type: 'VersionStartFailed',
        message: `${version.version} did not start${serving}: ${cause.message}`,
        nonRetryable: true,
      });
    }
  }

  /** After an await: a removal may have come meanwhile (it refuses new work at once); what was started must go. */
  async function abandonIfRemoving(started: Instance | undefined): Promise<void> {
    if (!removing) return;
    if (started) await removeContainer({ containerId: started.containerId });
    throw removedWhileStarting(name);
  }

  setHandler(
    registerVersionUpdate,
    ({ version, requestedAt, versionsKept = VERSIONS_KEPT }) =>
      mutex.runExclusive(async () => {
        // A registration that is retried (after a continue-as-new the update id no longer dedupes it).
        if (versionOf(version.version))
          return { activated: state.activeVersion === version.version, activeVersion: state.activeVersion ?? '' };
        if (removing) throw removedWhileStarting(name);
        // This await would be dangerous without the lock held: another deploy could switch meanwhile.
        const started = await proveStart(version);
        await abandonIfRemoving(started);
        if (state.activatedAt !== undefined && requestedAt < state.activatedAt) {
          // A deploy that started before the active version's: kept (for a rollback), not served.
          // Its container, proof that it starts, stays as a preview instance until it idles out.
          if (started) state.instances.push(started);
          changes++;
          await record(version, versionsKept);
          return { activated: false, activeVersion: state.activeVersion ?? '' } satisfies RegisterOutcome;
        }
        activate(version, requestedAt, started);
        await record(version, versionsKept);
        return { activated: true, activeVersion: version.version } satisfies RegisterOutcome;
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

  setHandler(
    activateVersionUpdate,
    ({ version }) =>
      mutex.runExclusive(async (): Promise<RollbackOutcome> => {
        if (removing) throw removedWhileStarting(name);
        const target = version ?? state.previousVersion;
        if (!target) {
          throw ApplicationFailure.create({
            type: 'VersionNotFound',
            message: `function ${name} has no previous version to roll back to; name one (plat versions ${name})`,
            nonRetryable: true,
          });
        }
        const found = versionOf(target);
        if (!found) {
          throw ApplicationFailure.create({
            type: 'VersionNotFound',
            message: `function ${name} has no version ${target}; it keeps ${state.versions.map((v) => v.version).join(', ') || 'none'}`,
            nonRetryable: true,
          });
        }
        if (found.version !== state.activeVersion) {
          const started = await proveStart(found);
          await abandonIfRemoving(started);
          // A rollback is a request of its own: a deploy that started before it and ends after it does not undo it.
          activate(found, now(), started);
        }
        return { activeVersion: found.version, previousVersion: state.previousVersion };
      }),
    {
      validator: (_request: { version?: string }) => {
        if (removing)
          throw ApplicationFailure.create({ type: 'Conflict', message: `function ${name} is being removed`, nonRetryable: true });
      },
    },
  );

  /** Places held by scale-outs under way, by instance id. */
  const reserved = new Map<string, { version: string; until: number }>();
  /** The version's instances, running and held for. */
  function placesTaken(version: string): number {
    const now = Date.now();
    for (const [id, hold] of reserved) if (hold.until < now) reserved.delete(id);
    const held = [...reserved.values()].filter((hold) => hold.version === version).length;
    return state.instances.filter((i) => i.version === version).length + held;
  }

  /** Why a start of this version may not go on now, if it may not. */
  function startRefusal(version: string, preview: boolean): Refusal | undefined {
    if (removing || state.removed) return { accepted: false, reason: 'removed' };
    if (!versionOf(version) || (!preview && version !== state.activeVersion)) {
      return { accepted: false, reason: 'superseded', activeVersion: state.activeVersion };
    }
    return undefined;
  }

  // Synchronous: decided at once, between any two steps of the handlers that hold the lock.
  setHandler(reserveInstanceUpdate, ({ version, instanceId, preview }) => {
    const refused = startRefusal(version, preview);
    if (refused) return refused;
    if (reserved.has(instanceId)) return { accepted: true };
    if (placesTaken(version) >= scaleOf(version).max) return { accepted: false, reason: 'full' };
    reserved.set(instanceId, { version, until: Date.now() + RESERVATION_MS });
    return { accepted: true };
  });

  /**
   * Takes away a started instance the entity does not accept. Gateways on the worker's host route to
   * a cold start's instance before it is reported (`instance-ready`), so it is drained like a
   * replaced one, not cut; when the function is being removed, it goes at once.
   */
  async function refuse(instance: Instance, outcome: Refusal): Promise<void> {
    if (outcome.reason === 'removed' || !patched(DRAIN_REFUSED)) {
      await removeContainer({ containerId: instance.containerId });
      return;
    }
    const why =
      outcome.reason === 'full'
        ? `version ${instance.version} runs scale.max instances already`
        : `replaced by version ${state.activeVersion}`;
    drainThenStop([instance.containerId], why);
  }

  setHandler(instanceStartedUpdate, ({ instance, preview }) =>
    mutex.runExclusive(async () => {
      // Reported, an instance holds no place any more: it counts as an instance, or not at all.
      reserved.delete(instance.instanceId);
      const refused = startRefusal(instance.version, preview);
      if (refused) {
        // A cold start that a removal or a deploy overtook: its container must not linger, and its gateway routes again.
        await refuse(instance, refused);
        return refused;
      }
      if (!state.instances.some((i) => i.containerId === instance.containerId)) {
        // Gateways scale out on what they see; the entity holds the version to its max, whatever they saw
        // (a scale-out held its place before it started; this is for the starts that did not).
        if (placesTaken(instance.version) >= scaleOf(instance.version).max) {
          const full = { accepted: false, reason: 'full' } as const;
          await refuse(instance, full);
          return full;
        }
        state.instances.push(instance);
      }
      changes++;
      return { accepted: true } as const;
    }),
  );

  setHandler(instanceGoneSignal, (containerId, failure) => {
    state.instances = state.instances.filter((i) => i.containerId !== containerId);
    changes++;
    // A gateway reports a container that failed a request (it answered something other than HTTP,
    // say): it may still run, unlisted, where no idle rule would ever stop it and a first cold start
    // would take it up again. Listed or not yet: a gateway may route to a new instance before its
    // start is reported here.
    if (failure !== undefined && patched(STOP_FAILED)) void stopFailed(containerId, failure);
  });

  /**
   * Stops a container that failed a request (the engine may have removed it already). The gateways on
   * this host drop it at once (instance-retired), and their cold starts never take it up again.
   */
  async function stopFailed(containerId: string, failure: string): Promise<void> {
    try {
      // As any stop: its requests in flight (other gateways', say) get the stop's grace to finish.
      await retireContainers({ containerIds: [containerId], name, reason: `it failed a request (${failure})` });
    } catch (error) {
      log.warn('stopping a container that failed a request failed', { containerId, error });
    }
  }

  /** A later use of an instance than it knew of. */
  function used(containerId: string, at: string): Instance | undefined {
    const instance = state.instances.find((i) => i.containerId === containerId);
    if (instance && at > instance.lastUsedAt) {
      instance.lastUsedAt = at;
      changes++;
    }
    return instance;
  }

  // Invoke keys: synchronous handlers, so atomic without the mutex. A key added twice (a retried
  // update) is kept once; the gateways re-read the keys every few seconds.
  setHandler(
    addKeyUpdate,
    (key) => {
      state.keys ??= [];
      const known = state.keys.find((k) => k.id === key.id);
      if (known) return known;
      state.keys.push(key);
      return key;
    },
    {
      validator: (key) => {
        if (removing || state.removed)
          throw ApplicationFailure.create({ type: 'FunctionNotFound', message: `function ${name} is being removed` });
        if ((state.keys?.length ?? 0) >= MAX_KEYS && !state.keys?.some((k) => k.id === key.id)) {
          throw ApplicationFailure.create({ type: 'Conflict', message: `function ${name} has ${MAX_KEYS} keys already; revoke one first` });
        }
      },
    },
  );
  setHandler(revokeKeyUpdate, ({ id }) => {
    const before = state.keys?.length ?? 0;
    state.keys = (state.keys ?? []).filter((k) => k.id !== id);
    return state.keys.length < before;
  });

  setHandler(instancesUsedSignal, (uses) => {
    for (const { containerId, at } of uses) used(containerId, at);
  });

  setHandler(instanceResumedSignal, ({ containerId, at }) => {
    const instance = used(containerId, at);
    if (instance && instance.state !== 'running') {
      instance.state = 'running';
      changes++;
    }
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
            versions: state.versions.map((v) => v.version),
          });
          // What the deletes left (layers, configs) goes with a garbage collection now.
          await collectRegistryGarbageSoon().catch((error: unknown) =>
            log.warn('asking for a registry garbage collection failed', { error }),
          );
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

  /**
   * What the idle rules do next: start an instance when the active version has fewer than `min`
   * (at once), else pause or stop the instance whose deadline comes first. The `min` most recently
   * used instances of the active version are never paused or stopped.
   */
  function nextIdleAction(): IdleAction | undefined {
    const active = state.activeVersion;
    const activeScale = active ? scaleOf(active) : SCALE_DEFAULTS;
    const serving = state.instances.filter((i) => i.version === active).sort((a, b) => b.lastUsedAt.localeCompare(a.lastUsedAt));
    if (active && serving.length < activeScale.min) return { at: Date.now(), action: 'start' };
    const exempt = new Set(serving.slice(0, activeScale.min).map((i) => i.containerId));
    let next: IdleAction | undefined;
    for (const instance of state.instances) {
      if (exempt.has(instance.containerId)) continue;
      const { pauseAfter, stopAfter } = scaleOf(instance.version);
      const since = Date.parse(instance.lastUsedAt);
      let due: IdleAction | undefined;
      if (instance.state === 'running' && pauseAfter > 0) due = { at: since + pauseAfter * 1000, instance, action: 'pause' };
      else if (stopAfter > 0) due = { at: since + stopAfter * 1000, instance, action: 'stop' };
      if (due && (!next || due.at < next.at)) next = due;
    }
    return next;
  }

  /** Carries out one idle action; the state is read again under the lock, so a use reported meanwhile wins. */
  async function idleStep(): Promise<void> {
    const due = nextIdleAction();
    if (!due || due.at > Date.now() || removing) return;
    const { instance, action } = due;
    if (action === 'start') {
      const active = versionOf(state.activeVersion);
      if (!active) return;
      const started = await startInstance(name, active);
      await abandonIfRemoving(started);
      state.instances.push(started);
      changes++;
      return;
    }
    if (!instance) return;
    if (action === 'pause') {
      const outcome = await pauseInstance({ containerId: instance.containerId, instanceId: instance.instanceId, url: instance.url });
      // Work the function goes on with after its answer (ctx.waitUntil) counts as use.
      if (outcome === 'busy') instance.lastUsedAt = now();
      else if (outcome === 'paused') instance.state = 'paused';
      else state.instances = state.instances.filter((i) => i !== instance);
    } else {
      const idleFor = scaleOf(instance.version).stopAfter;
      await retireContainers({ containerIds: [instance.containerId], name, reason: `idle for ${idleFor} s (scale.stopAfter)` });
      state.instances = state.instances.filter((i) => i !== instance);
      await reclaimImages();
    }
    changes++;
  }

  /** The idle timer: sleeps until the next deadline, or until something changes it. */
  async function idleTimer(): Promise<void> {
    while (!removing && !state.removed) {
      const seen = changes;
      const due = nextIdleAction();
      const changed = () => changes !== seen || removing || state.removed === true;
      if (!due) await condition(changed);
      else if (due.at > Date.now()) await condition(changed, due.at - Date.now());
      if (removing || state.removed) return;
      if (changes !== seen && due && due.at > Date.now()) continue;
      try {
        await mutex.runExclusive(idleStep);
      } catch (error) {
        if (removing || state.removed) return;
        log.warn('an idle transition failed; trying again later', { error });
        await condition(() => removing || state.removed === true, RETRY_MS);
      }
    }
  }
  void idleTimer();

  const historyFull = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= historyLimit;
  await condition(() => state.removed === true || (historyFull() && !removing));
  await condition(() => allHandlersFinished() && !mutex.isLocked());
  if (state.removed) return;
  await continueAsNew<typeof functionEntity>({ name, state, historyLimit });
}
