import { ApplicationFailure, patched, proxyActivities, proxyLocalActivities, uuid4 } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { ColdStartInput, FunctionVersion, Instance, InstanceOutcome } from '../lib/types';
import { coldStartLocal, dockerShort, healthCheck, imageTransfer, temporalCall } from './activity-options';

const { launchInstance: launch, ensureImage } = proxyActivities<Activities>(imageTransfer);
const { createContainer, startContainer, removeContainer, findInstance } = proxyActivities<Activities>(dockerShort);
const { reportInstance: reportOnce } = proxyActivities<Activities>(temporalCall);
const { waitHealthy } = proxyActivities<Activities>(healthCheck);

/**
 * Entities are long-lived: histories written before launchInstance existed recorded a start as four
 * activities, and replay them so (a worker upgraded under running functions must not fail them).
 */
const LAUNCH_INSTANCE = 'launch-instance';
// A cold start is on a request's path: its two steps run as local activities, in the worker that runs
// the workflow, with no task queue round trip and no workflow task between their parts.
const { launchInstance, reportInstance, reserveInstance } = proxyLocalActivities<Activities>(coldStartLocal);

/** How long a new container has to answer its health route. */
export const START_TIMEOUT_MS = 30_000;

/**
 * coldstart/<fn>/<version>[/<slot>]: started by the gateway with the "use existing" conflict policy, so any
 * number of concurrent first requests for a version share one run and one container start, and
 * gateways that scale out to the same count share the start that gets there. The entity has the last
 * word: a start that a deploy or a removal overtook, or one past the version's `scale.max`, is
 * refused, and its container removed.
 */
export async function coldStart({ name, version, preview = false, slot = 1, avoid }: ColdStartInput): Promise<Instance> {
  // A container may already run that the entity does not list (its report was lost, or the
  // gateway restarted): it is reported like a new one. A scale-out wants another container.
  if (!patched(LAUNCH_INSTANCE)) {
    // A cold start that was under way when its worker was upgraded: the steps it recorded.
    const found = await findInstance({ name, version: version.version });
    const started = found ?? (await startInstance(name, version));
    const reported = await reportOnce({ name, instance: started, preview });
    if (reported.accepted) return started;
    throw refusedStart(name, version, reported);
  }
  const instanceId = uuid4().replaceAll('-', '');
  if (slot > 1) {
    // A scale-out holds its place first: past the version's max, nothing is started at all.
    const held = await reserveInstance({ name, version: version.version, instanceId, preview });
    if (!held.accepted) throw refusedStart(name, version, held);
  }
  const launched = await launchInstance({ name, version, instanceId, adopt: slot <= 1, avoid, timeoutMs: START_TIMEOUT_MS });
  const instance = stamped(launched, instanceId);
  const outcome = await reportInstance({ name, instance, preview });
  if (outcome.accepted) return instance;
  throw refusedStart(name, version, outcome);
}

/** The failure of a start the entity refused: removed, past max, or replaced by a deploy. */
function refusedStart(name: string, version: FunctionVersion, outcome: Exclude<InstanceOutcome, { accepted: true }>): ApplicationFailure {
  if (outcome.reason === 'removed') return removedWhileStarting(name);
  if (outcome.reason === 'full') {
    return ApplicationFailure.create({
      type: 'ScaleLimit',
      message: `${version.version} of ${name} runs scale.max instances already`,
      nonRetryable: true,
    });
  }
  return ApplicationFailure.create({
    type: 'VersionSuperseded',
    message: `${version.version} of ${name} was replaced by ${outcome.activeVersion} while it started`,
    nonRetryable: true,
  });
}

/**
 * Starts a container of the version and waits until it answers its health route (the entity's own
 * starts: a registration's proof, `scale.min`); a container that never answers is removed. The
 * instance id is chosen here, in the workflow, so every retry of the launch names the same container.
 */
export async function startInstance(name: string, version: FunctionVersion): Promise<Instance> {
  const instanceId = uuid4().replaceAll('-', '');
  if (patched(LAUNCH_INSTANCE)) {
    return stamped(await launch({ name, version, instanceId, adopt: false, timeoutMs: START_TIMEOUT_MS }), instanceId);
  }
  await ensureImage({ image: version.image });
  const containerId = await createContainer({ name, version, instanceId });
  try {
    const url = await startContainer({ containerId });
    await waitHealthy({ url, containerId, instanceId, timeoutMs: START_TIMEOUT_MS });
    const startedAt = new Date().toISOString();
    return { containerId, instanceId, version: version.version, url, startedAt, state: 'running', lastUsedAt: startedAt };
  } catch (error) {
    await removeContainer({ containerId });
    throw error;
  }
}

/**
 * A new instance's start and first use, in the workflow's time: the entity's idle rules count from
 * them on its own clock. One taken over (another instance id) keeps what it was found with.
 */
function stamped(instance: Instance, launchedId: string): Instance {
  if (instance.instanceId !== launchedId) return instance;
  const now = new Date().toISOString();
  return { ...instance, startedAt: now, lastUsedAt: now };
}

/** The failure of a start that a removal overtook (its container is removed by the caller). */
export function removedWhileStarting(name: string): ApplicationFailure {
  return ApplicationFailure.create({ type: 'FunctionNotFound', message: `function ${name} was removed`, nonRetryable: true });
}
