import { ApplicationFailure } from '@temporalio/activity';
import { WithStartWorkflowOperation, WorkflowUpdateFailedError } from '@temporalio/client';
import { SEARCH_ATTRIBUTES, workflowIds } from '../lib/names';
import type { FunctionVersion } from '../lib/types';
import { type FunctionEntityInput, registerVersionUpdate, WORKFLOW_TYPES } from '../workflows/definitions';
import type { ActivityDeps } from './deps';

export function createRegisterActivities({ temporal, settings }: ActivityDeps) {
  return {
    /**
     * Makes a version the function's active one: an update-with-start on the function's entity
     * workflow, so the first deploy creates the function and later ones update it. Returns once the
     * entity has switched (for a serving function, once the new version's container answers).
     */
    async registerVersion(version: FunctionVersion): Promise<void> {
      const name = version.config.name;
      await temporal.workflow
        .executeUpdateWithStart(registerVersionUpdate, {
          args: [version],
          startWorkflowOperation: new WithStartWorkflowOperation<(input: FunctionEntityInput) => Promise<void>>(WORKFLOW_TYPES.entity, {
            workflowId: workflowIds.entity(name),
            taskQueue: settings.taskQueue,
            args: [{ name }],
            workflowIdConflictPolicy: 'USE_EXISTING',
            typedSearchAttributes: [
              { key: SEARCH_ATTRIBUTES.function, value: name },
              { key: SEARCH_ATTRIBUTES.version, value: version.version },
              { key: SEARCH_ATTRIBUTES.runtime, value: version.config.runtime },
            ],
          }),
        })
        .catch((error) => {
          // The entity refused the version (it could not start, or the function was removed):
          // retrying would only do the same again.
          if (error instanceof WorkflowUpdateFailedError && error.cause instanceof ApplicationFailure) {
            throw ApplicationFailure.create({ type: error.cause.type ?? undefined, message: error.cause.message, nonRetryable: true });
          }
          throw error;
        });
    },
  };
}
