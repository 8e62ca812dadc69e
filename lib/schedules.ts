import { createHash } from 'node:crypto';
import { type Client, ScheduleNotFoundError, ScheduleOverlapPolicy, type ScheduleOptions } from '@temporalio/client';
import { WORKFLOW_TYPES } from '../workflows/definitions';
import { asyncOf, MAX_SCHEDULES, type ScheduleConfig, type ScheduleOverlap } from './function-config';
import { workflowIds } from './names';
import { parseDuration } from './settings';
import type { CallInput, FunctionVersion } from './types';

/**
 * A function's schedules are Temporal Schedules, schedule/<fn>/<n> in function.json's order. Each
 * run starts an async call (workflows/call.ts, trigger `schedule`): it is retried and recorded like
 * any call, and invokes the function through the gateway whether it is warm, paused or scaled to zero.
 */
export function scheduleId(name: string, index: number): string {
  return `schedule/${name}/${index}`;
}

const OVERLAP: Record<ScheduleOverlap, ScheduleOverlapPolicy> = {
  skip: ScheduleOverlapPolicy.SKIP,
  bufferOne: ScheduleOverlapPolicy.BUFFER_ONE,
  allow: ScheduleOverlapPolicy.ALLOW_ALL,
};

/** The Temporal Schedule of a function's `index`th schedule, as its active `version` wants it. */
function scheduleOptions(version: FunctionVersion, index: number, schedule: ScheduleConfig, taskQueue: string): ScheduleOptions {
  const name = version.config.name;
  // The schedule adds its run's time to this: call/<fn>/<fn>.<hex>-<time> (see CALL_ID_PATTERN).
  const callId = `${name}.${createHash('sha256').update(`${name}/schedule/${index}`).digest('hex').slice(0, 32)}`;
  const rules = asyncOf(version.config);
  const input: CallInput = {
    callId,
    name,
    method: schedule.method,
    path: schedule.path,
    headers: schedule.body === undefined ? [] : [['content-type', /^\s*[[{]/.test(schedule.body) ? 'application/json' : 'text/plain']],
    ...(schedule.body !== undefined ? { inlineBody: schedule.body } : {}),
    trigger: 'schedule',
    retry: {
      retries: rules.retries,
      backoffMs: parseDuration(rules.backoff) ?? 1000,
      maxBackoffMs: parseDuration(rules.maxBackoff) ?? 60_000,
    },
    acceptedAt: version.deployedAt,
  };
  return {
    scheduleId: scheduleId(name, index),
    spec: {
      ...(schedule.cron !== undefined
        ? { cronExpressions: [schedule.cron] }
        : { intervals: [{ every: parseDuration(schedule.every ?? '') ?? 60_000 }] }),
      ...(schedule.timezone ? { timezone: schedule.timezone } : {}),
    },
    action: { type: 'startWorkflow', workflowType: WORKFLOW_TYPES.call, workflowId: workflowIds.call(callId), taskQueue, args: [input] },
    // A run missed while Temporal was away is made up within a minute of its time, not later.
    policies: { overlap: OVERLAP[schedule.overlap], catchupWindow: '1 minute' },
    memo: { function: name, version: version.version },
  };
}

/** Makes the function's Temporal Schedules those of `version` (its active one): created, updated, the extra ones deleted. */
export async function syncSchedules(temporal: Client, version: FunctionVersion, taskQueue: string): Promise<void> {
  const wanted = version.config.schedules ?? [];
  for (const [index, schedule] of wanted.entries()) {
    const options = scheduleOptions(version, index, schedule, taskQueue);
    try {
      // A removal that failed may have left it paused: an active version's schedules run.
      await temporal.schedule.getHandle(options.scheduleId).update((previous) => ({
        ...previous,
        spec: options.spec,
        action: options.action,
        policies: options.policies,
        state: { ...previous.state, paused: false },
      }));
    } catch (error) {
      if (!(error instanceof ScheduleNotFoundError)) throw error;
      await temporal.schedule.create(options);
    }
  }
  await deleteSchedules(temporal, version.config.name, wanted.length);
}

/** Deletes the function's schedules from the `from`th on (all of them by default); absent ones count as deleted. */
export async function deleteSchedules(temporal: Client, name: string, from = 0): Promise<void> {
  for (let index = from; index < MAX_SCHEDULES; index++) {
    await temporal.schedule
      .getHandle(scheduleId(name, index))
      .delete()
      .catch((error: unknown) => {
        if (!(error instanceof ScheduleNotFoundError)) throw error;
      });
  }
}

/** Pauses the function's schedules (while it is being removed); absent ones are skipped. */
export async function pauseSchedules(temporal: Client, name: string): Promise<void> {
  for (let index = 0; index < MAX_SCHEDULES; index++) {
    await temporal.schedule
      .getHandle(scheduleId(name, index))
      .pause(`function ${name} is being removed`)
      .catch((error: unknown) => {
        if (!(error instanceof ScheduleNotFoundError)) throw error;
      });
  }
}

/** One schedule as `plat schedules` shows it. */
export interface ScheduleSummary {
  id: string;
  cron?: string;
  every?: string;
  timezone?: string;
  method: string;
  path: string;
  overlap: ScheduleOverlap;
  paused: boolean;
  nextRuns: string[];
  recentRuns: Array<{ at: string; callId: string }>;
}

/** The function's schedules as `version` (its active one) defines them, with their next and recent runs from Temporal. */
export async function describeSchedules(temporal: Client, version: FunctionVersion): Promise<ScheduleSummary[]> {
  const name = version.config.name;
  return Promise.all(
    (version.config.schedules ?? []).map(async (schedule, index) => {
      const id = scheduleId(name, index);
      const described = await temporal.schedule
        .getHandle(id)
        .describe()
        .catch((error: unknown) => {
          if (error instanceof ScheduleNotFoundError) return undefined;
          throw error;
        });
      return {
        id,
        ...(schedule.cron !== undefined ? { cron: schedule.cron } : { every: schedule.every }),
        ...(schedule.timezone ? { timezone: schedule.timezone } : {}),
        method: schedule.method,
        path: schedule.path,
        overlap: schedule.overlap,
        paused: described?.state.paused ?? true,
        nextRuns: (described?.info.nextActionTimes ?? []).slice(0, 5).map((at) => at.toISOString()),
        recentRuns: (described?.info.recentActions ?? []).slice(-5).map((action) => ({
          at: action.scheduledAt.toISOString(),
          callId:
            'workflow' in action.action
              ? action.action.workflow.workflowId.slice(action.action.workflow.workflowId.lastIndexOf('/') + 1)
              : '',
        })),
      };
    }),
  );
}
