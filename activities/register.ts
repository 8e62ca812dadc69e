import { ApplicationFailure, Context } from '@temporalio/activity';
import { WithStartWorkflowOperation, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { platformRecord } from '../lib/logs';
import { syncSchedules } from '../lib/schedules';
import { SEARCH_ATTRIBUTES, workflowIds } from '../lib/names';
import type { FunctionVersion, Instance, InstanceOutcome, RegisterOutcome } from '../lib/types';
import {
  type FunctionEntityInput,
  instanceStartedUpdate,
  registerVersionUpdate,
  reserveInstanceUpdate,
  WORKFLOW_TYPES,
} from '../workflows/definitions';
import type { ActivityDeps } from './deps';
import { heartbeating } from './docker-helpers';

/** The entity refused (the version could not start, the function was removed): retrying would only do the same again. */
function refusal(error: unknown): unknown {
  if (error instanceof WorkflowUpdateFailedError && error.cause instanceof ApplicationFailure) {
    return ApplicationFailure.create({ type: error.cause.type ?? undefined, message: error.cause.message, nonRetryable: true });
  }
  return error;
}

export function createRegisterActivities({ temporal, settings, events, docker, logs }: ActivityDeps) {
  return {
    /**
     * Registers a version with the function's entity: an update-with-start, so the first deploy
     * creates the function and later ones update it. Its update id is the version id, and the entity
     * answers a version it knows without doing anything again, so a retried attempt cannot start a
     * second container. Returns once the entity has decided (for a serving function, once the new
     * version's container answers), and tells this host's gateways to route afresh.
     */
    async registerVersion({ version, requestedAt }: { version: FunctionVersion; requestedAt: string }): Promise<RegisterOutcome> {
      const versionsKept = settings.versionsKept;
      const name = version.config.name;
      const outcome = await heartbeating(() =>
        temporal.workflow
          .executeUpdateWithStart(registerVersionUpdate, {
            args: [{ version, requestedAt, versionsKept }],
            updateId: `register/${version.version}`,
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
          .catch((error: unknown) => {
            throw refusal(error);
          }),
      );
      if (outcome.activated) {
        events.publish({ type: 'function-changed', name });
        // Its schedules are now the new version's. Temporal refusing one (say, a cron it cannot read) fails no deploy: the log says so.
        await syncSchedules(temporal, version, settings.taskQueue).catch((error: unknown) =>
          logs?.append(
            name,
            platformRecord(`the schedules of ${version.version} could not be set: ${(error as Error).message}`, {
              version: version.version,
            }),
          ),
        );
      }
      const what = outcome.activated ? 'deployed; it serves the function now' : 'deployed and kept; a later deploy serves the function';
      logs?.append(name, platformRecord(`version ${version.version} ${what}`, { version: version.version }));
      return outcome;
    },

    /** Holds a place for a scale-out's instance before its container starts (see reserveInstanceUpdate). */
    async reserveInstance({
      name,
      version,
      instanceId,
      preview,
    }: {
      name: string;
      version: string;
      instanceId: string;
      preview: boolean;
    }): Promise<InstanceOutcome> {
      try {
        return await temporal.workflow
          .getHandle(workflowIds.entity(name))
          .executeUpdate(reserveInstanceUpdate, { args: [{ version, instanceId, preview }], updateId: `reserve/${instanceId}` });
      } catch (error) {
        if (error instanceof WorkflowNotFoundError) return { accepted: false, reason: 'removed' };
        throw refusal(error);
      }
    },

    /**
     * Tells the entity that a cold start's container answers. The entity keeps it, or removes it
     * when a deploy or a removal overtook the start (a function that is gone removes it here).
     */
    async reportInstance({ name, instance, preview }: { name: string; instance: Instance; preview: boolean }): Promise<InstanceOutcome> {
      try {
        // The entity may hold the report while it finishes another change (say, a deploy's start).
        return await heartbeating(() =>
          temporal.workflow
            .getHandle(workflowIds.entity(name))
            // Retries of this report are one update; a later cold start that adopts the container reports it afresh.
            .executeUpdate(instanceStartedUpdate, {
              args: [{ instance, preview }],
              updateId: `started/${instance.instanceId}/${Context.current().info.workflowExecution?.runId}`,
            }),
        );
      } catch (error) {
        if (!(error instanceof WorkflowNotFoundError)) throw refusal(error);
        await docker
          .getContainer(instance.containerId)
          .remove({ force: true })
          .catch(() => undefined);
        return { accepted: false, reason: 'removed' };
      }
    },
  };
}
