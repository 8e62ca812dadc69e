import { ApplicationFailure, proxyActivities, uuid4 } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { ColdStartInput, FunctionVersion, Instance } from '../lib/types';
import { dockerShort, healthCheck, imageTransfer, temporalCall } from './activity-options';

const { findInstance, createContainer, startContainer, removeContainer } = proxyActivities<Activities>(dockerShort);
const { ensureImage } = proxyActivities<Activities>(imageTransfer);
const { waitHealthy } = proxyActivities<Activities>(healthCheck);
const { reportInstance } = proxyActivities<Activities>(temporalCall);

/** How long a new container has to answer its health route. */
export const START_TIMEOUT_MS = 30_000;

/**
 * coldstart/<fn>/<version>[/<slot>]: started by the gateway with the "use existing" conflict policy, so any
 * number of concurrent first requests for a version share one run and one container start, and
 * gateways that scale out to the same count share the start that gets there. The entity has the last
 * word: a start that a deploy or a removal overtook, or one past the version's `scale.max`, is
 * refused, and its container removed.
 */
export async function coldStart({ name, version, preview = false, slot = 1 }: ColdStartInput): Promise<Instance> {
  // A container may already run that the entity does not list (its report was lost, or the
  // gateway restarted): it is reported like a new one. A scale-out wants another container.
  const found = slot > 1 ? null : await findInstance({ name, version: version.version });
  const instance = found ?? (await startInstance(name, version));
  const outcome = await reportInstance({ name, instance, preview });
  if (outcome.accepted) return instance;
  if (outcome.reason === 'removed') throw removedWhileStarting(name);
  if (outcome.reason === 'full') {
    throw ApplicationFailure.create({
      type: 'ScaleLimit',
      message: `${version.version} of ${name} runs scale.max instances already`,
      nonRetryable: true,
    });
  }
  throw ApplicationFailure.create({
    type: 'VersionSuperseded',
    message: `${version.version} of ${name} was replaced by ${outcome.activeVersion} while it started`,
    nonRetryable: true,
  });
}

/**
 * Starts a container of the version and waits until it answers its health route; removes it if it
 * never does. The instance id is chosen here, in the workflow, so every retry of the create names
 * the same container.
 */
export async function startInstance(name: string, version: FunctionVersion): Promise<Instance> {
  const instanceId = uuid4().replaceAll('-', '');
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

/** The failure of a start that a removal overtook (its container is removed by the caller). */
export function removedWhileStarting(name: string): ApplicationFailure {
  return ApplicationFailure.create({ type: 'FunctionNotFound', message: `function ${name} was removed`, nonRetryable: true });
}
