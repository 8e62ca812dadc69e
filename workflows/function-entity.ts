import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { SEARCH_ATTRIBUTES } from '../lib/names';
import type { FunctionState, FunctionVersion, Instance } from '../lib/types';
import { dockerShort, imageTransfer } from './activity-options';
import { removedWhileStarting, startInstance } from './cold-start';
import {
  describeQuery,
  type FunctionEntityInput,
  instanceGoneSignal,
  instanceStartedSignal,
  registerVersionUpdate,
  removeUpdate,
} from './definitions';

const { removeContainers, retireContainers, removeContainer } = proxyActivities<Activities>(dockerShort);
const { removeFunctionArtifacts } = proxyActivities<Activities>(imageTransfer);

/** How many versions a function keeps (images in the registry, entries in its history). */
export const VERSIONS_KEPT = 20;

/**
 * How long a replaced version's containers keep running after the switch: longer than a gateway
 * takes to notice (it re-checks its routes every 3 s), so requests routed to them still land.
 */
const DRAIN_MS = 5000;

/**
 * One long-lived workflow per function (id `function/<name>`): the source of truth for its versions
 * and instances. Deploys register versions through an update; cold starts report instances by signal.
 */
export async function functionEntity({ name, state: carried }: FunctionEntityInput): Promise<void> {
  const state: FunctionState = carried ?? { name, createdAt: new Date().toISOString(), versions: [], instances: [] };
  let removing = false;
  let removed = false;
  let retiring = 0;

  setHandler(describeQuery, () => state);

  /** Stops the replaced versions' containers once gateways have had the time to route past them. */
  async function retireAfterDrain(): Promise<void> {
    retiring++;
    try {
      await sleep(DRAIN_MS);
      if (!removing && state.activeVersion) await retireContainers({ name, keepVersion: state.activeVersion });
    } finally {
      retiring--;
    }
  }

  /**
   * A function that is serving gets its new version running before the switch: no request waits for
   * a cold start, and a version that cannot start fails its deploy while the old one keeps serving.
   */
  async function startBeforeSwitch(version: FunctionVersion): Promise<Instance | undefined> {
    if (!state.instances.some((i) => i.version !== version.version)) return undefined;
    try {
      return await startInstance(name, version);
    } catch (error) {
      const cause = (error as { cause?: Error }).cause ?? (error as Error);
      throw ApplicationFailure.create({
        type: 'VersionStartFailed',
        message: `${version.version} did not start, so ${state.activeVersion} keeps serving: ${cause.message}`,
        nonRetryable: true,
      });
    }
  }

  setHandler(
    registerVersionUpdate,
    async (version) => {
      const warmRedeploy = patched('warm-redeploy');
      const started = warmRedeploy ? await startBeforeSwitch(version) : undefined;
      if (removing) {
        if (started) await removeContainer({ containerId: started.containerId });
        throw removedWhileStarting(name);
      }
      state.versions = [...state.versions.filter((v) => v.version !== version.version), version].slice(-VERSIONS_KEPT);
      state.activeVersion = version.version;
      upsertSearchAttributes([
        { key: SEARCH_ATTRIBUTES.function, value: name },
        { key: SEARCH_ATTRIBUTES.version, value: version.version },
        { key: SEARCH_ATTRIBUTES.runtime, value: version.config.runtime },
      ]);
      const replaced = state.instances.some((i) => i.version !== version.version);
      state.instances = [...state.instances.filter((i) => i.version === version.version), ...(started ? [started] : [])];
      if (!replaced) return;
      if (warmRedeploy) void retireAfterDrain();
      else await removeContainers({ name, exceptVersion: version.version });
    },
    {
      validator: (version) => {
        if (removing) throw new Error(`function ${name} is being removed`);
        if (!version?.version || !version.image) throw new Error('a version needs an id and an image');
      },
    },
  );

  setHandler(
    removeUpdate,
    async () => {
      removing = true;
      const removedContainers = await removeContainers({ name });
      state.instances = [];
      await removeFunctionArtifacts({
        name,
        images: state.versions.map((v) => v.image),
        sourceDigests: state.versions.map((v) => v.sourceDigest),
      });
      removed = true;
      state.removed = true;
      return { removedContainers };
    },
    {
      validator: () => {
        if (removing) throw new Error(`function ${name} is already being removed`);
      },
    },
  );

  setHandler(instanceStartedSignal, async (instance) => {
    if (removing || instance.version !== state.activeVersion) {
      // A cold start that raced with a deploy or a removal: its container must not linger.
      await removeContainers({ name, exceptVersion: removing ? undefined : state.activeVersion });
      return;
    }
    state.instances = [...state.instances.filter((i) => i.containerId !== instance.containerId), instance];
  });

  setHandler(instanceGoneSignal, (containerId) => {
    state.instances = state.instances.filter((i) => i.containerId !== containerId);
  });

  await condition(() => removed || (workflowInfo().continueAsNewSuggested && !removing && retiring === 0));
  await condition(allHandlersFinished);
  if (removed) return;
  await continueAsNew<typeof functionEntity>({ name, state });
}
