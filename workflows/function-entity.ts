import {
  allHandlersFinished,
  condition,
  continueAsNew,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { SEARCH_ATTRIBUTES } from '../lib/names';
import type { FunctionState } from '../lib/types';
import { dockerShort, imageTransfer } from './activity-options';
import {
  describeQuery,
  type FunctionEntityInput,
  instanceGoneSignal,
  instanceStartedSignal,
  registerVersionUpdate,
  removeUpdate,
} from './definitions';

const { removeContainers } = proxyActivities<Activities>(dockerShort);
const { removeFunctionArtifacts } = proxyActivities<Activities>(imageTransfer);

/** How many versions a function keeps (images in the registry, entries in its history). */
export const VERSIONS_KEPT = 20;

/**
 * One long-lived workflow per function (id `function/<name>`): the source of truth for its versions
 * and instances. Deploys register versions through an update; cold starts report instances by signal.
 */
export async function functionEntity({ name, state: carried }: FunctionEntityInput): Promise<void> {
  const state: FunctionState = carried ?? { name, createdAt: new Date().toISOString(), versions: [], instances: [] };
  let removing = false;
  let removed = false;

  setHandler(describeQuery, () => state);

  setHandler(
    registerVersionUpdate,
    async (version) => {
      state.versions = [...state.versions.filter((v) => v.version !== version.version), version].slice(-VERSIONS_KEPT);
      state.activeVersion = version.version;
      upsertSearchAttributes([
        { key: SEARCH_ATTRIBUTES.function, value: name },
        { key: SEARCH_ATTRIBUTES.version, value: version.version },
        { key: SEARCH_ATTRIBUTES.runtime, value: version.config.runtime },
      ]);
      // Old versions stop serving as soon as the new one is registered.
      if (state.instances.some((i) => i.version !== version.version)) {
        state.instances = state.instances.filter((i) => i.version === version.version);
        await removeContainers({ name, exceptVersion: version.version });
      }
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

  await condition(() => removed || (workflowInfo().continueAsNewSuggested && !removing));
  await condition(allHandlersFinished);
  if (removed) return;
  await continueAsNew<typeof functionEntity>({ name, state });
}
