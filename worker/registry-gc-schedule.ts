import { type Client, ScheduleAlreadyRunning } from '@temporalio/client';
import { workflowIds } from '../lib/names';
import type { Settings } from '../lib/settings';
import { WORKFLOW_TYPES } from '../workflows/definitions';

/**
 * The Temporal Schedule that collects the registry's garbage every PLAT_REGISTRY_GC_EVERY (and is
 * triggered after each removal), created by the worker when it is missing: it shows in the Web UI
 * under Schedules, with each run's history.
 */
export async function ensureRegistryGcSchedule(client: Client, settings: Settings): Promise<void> {
  const id = workflowIds.registryGc(settings.taskQueue);
  try {
    await client.schedule.create({
      scheduleId: id,
      spec: { intervals: [{ every: settings.registryGc.every }] },
      action: { type: 'startWorkflow', workflowType: WORKFLOW_TYPES.registryGc, taskQueue: settings.taskQueue, workflowId: id },
      policies: { overlap: 'SKIP' },
    });
  } catch (error) {
    if (!(error instanceof ScheduleAlreadyRunning)) throw error;
  }
}
