import { ApplicationFailure, getExternalWorkflowHandle, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { workflowIds } from '../lib/names';
import type { ColdStartInput, FunctionVersion, Instance } from '../lib/types';
import { dockerShort, healthCheck, imageTransfer } from './activity-options';
import { instanceStartedSignal } from './definitions';

const { findInstance, createContainer, startContainer, removeContainer } = proxyActivities<Activities>(dockerShort);
const { ensureImage } = proxyActivities<Activities>(imageTransfer);
const { waitHealthy } = proxyActivities<Activities>(healthCheck);

/**
 * coldstart/<fn>: started by the gateway with the "use existing" conflict policy, so any number of
 * concurrent first requests share one run and one container start.
 */
export async function coldStart({ name, version }: ColdStartInput): Promise<Instance> {
  // A container may already run that the entity does not list (its start was reported to an
  // entity that has since lost it, or after an engine restart): it is reported like a new one.
  const instance = (await findInstance({ name, version: version.version })) ?? (await startInstance(name, version));
  try {
    await getExternalWorkflowHandle(workflowIds.entity(name)).signal(instanceStartedSignal, instance);
  } catch {
    // The function was removed while its container started.
    await removeContainer({ containerId: instance.containerId });
    throw removedWhileStarting(name);
  }
  return instance;
}

/** Starts a container of the version and waits until it answers its health route; removes it if it never does. */
export async function startInstance(name: string, version: FunctionVersion): Promise<Instance> {
  await ensureImage({ image: version.image });
  const containerId = await createContainer({ name, version });
  try {
    const url = await startContainer({ containerId });
    await waitHealthy({ url, containerId, timeoutMs: 30_000 });
    return { containerId, version: version.version, url, startedAt: new Date().toISOString() };
  } catch (error) {
    await removeContainer({ containerId });
    throw error;
  }
}

/** The failure of a start that a removal overtook (its container is removed by the caller). */
export function removedWhileStarting(name: string): ApplicationFailure {
  return ApplicationFailure.create({ type: 'FunctionNotFound', message: `function ${name} was removed`, nonRetryable: true });
}
