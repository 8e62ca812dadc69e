import { spawn } from 'node:child_process';
import { ApplicationFailure, heartbeat, log } from '@temporalio/activity';
import { ScheduleNotFoundError } from '@temporalio/client';
import { expireCallBodies } from '../lib/calls';
import { workflowIds } from '../lib/names';
import { WORKFLOW_TYPES } from '../workflows/definitions';
import type { ActivityDeps } from './deps';
import { heartbeating } from './docker-helpers';
import { tail } from './dependencies';

/**
 * The registry's garbage collector deletes the blobs no manifest refers to (with --delete-untagged,
 * also manifests no tag refers to): what deleted versions and removed functions leave. It must not
 * run while an image is pushed (the push's layers are not referred to until its manifest lands), so
 * it waits for the running deploys to end first.
 */
/** How long the collector waits after telling the gateways, for the uploads under way to end. */
const UPLOADS_SETTLE_MS = 5000;

/** Longer than any deploy runs (its build times out after 15 minutes). */
const DEPLOY_LONGEST_MS = 30 * 60_000;
/** A live worker long-polls its task queue without pause (each poll lasts at most about a minute). */
const POLLED_WITHIN_MS = 2 * 60_000;

/** temporal.api.enums.v1.TaskQueueType's values. */
const TASK_QUEUE_TYPE_WORKFLOW = 1;
const TASK_QUEUE_TYPE_ACTIVITY = 2;

/** A protobuf Timestamp in milliseconds (0 when absent). */
function millis(at: { seconds?: { toNumber(): number } | number | null; nanos?: number | null } | null | undefined): number {
  if (!at) return 0;
  const seconds = typeof at.seconds === 'number' ? at.seconds : (at.seconds?.toNumber() ?? 0);
  return seconds * 1000 + Math.floor((at.nanos ?? 0) / 1e6);
}

export function createRegistryGcActivities({ docker, temporal, settings, events, registry }: ActivityDeps) {
  /** Runs `registry garbage-collect` where the registry is: a local binary, or in the registry's container. */
  async function runCollector(): Promise<string> {
    const { config, container } = settings.registryGc;
    if (container) {
      const exec = await docker.getContainer(container).exec({
        Cmd: ['registry', 'garbage-collect', '--delete-untagged', '/etc/docker/registry/config.yml'],
        AttachStdout: true,
        AttachStderr: true,
      });
      const stream = await exec.start({});
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      await new Promise((resolve, reject) => {
        stream.on('end', resolve);
        stream.on('error', reject);
      });
      const { ExitCode } = await exec.inspect();
      const output = Buffer.concat(chunks).toString('utf8');
      if (ExitCode !== 0) throw new Error(`registry garbage-collect exited with ${ExitCode}:\n${tail(output)}`);
      return output;
    }
    return new Promise((resolve, reject) => {
      const child = spawn('docker-registry', ['garbage-collect', '--delete-untagged', config], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      child.on('error', (error: NodeJS.ErrnoException) =>
        reject(
          error.code === 'ENOENT'
            ? ApplicationFailure.create({
                type: 'RegistryGcUnavailable',
                message: 'no docker-registry binary here: set PLAT_REGISTRY_CONTAINER to the registry container',
                nonRetryable: true,
              })
            : error,
        ),
      );
      child.on('close', (code) =>
        code === 0 ? resolve(output) : reject(new Error(`docker-registry garbage-collect exited with ${code}:\n${tail(output)}`)),
      );
    });
  }

  /**
   * Deploys that may still push: running, on every platform sharing the registry, and able to make
   * progress. One whose task queue no worker has polled for a while (its worker gone for good, say a
   * test run that was killed) cannot push until a worker returns, so it holds nothing back; if one
   * does return, a push that loses a blob to the collector fails and is retried whole. One started
   * longer ago than a deploy can run is not counted either.
   */
  async function runningDeploys(): Promise<number> {
    const since = new Date(Date.now() - DEPLOY_LONGEST_MS).toISOString();
    const query = `WorkflowType = '${WORKFLOW_TYPES.deploy}' AND ExecutionStatus = 'Running' AND StartTime > '${since}'`;
    const served = new Map<string, Promise<boolean>>();
    let count = 0;
    for await (const deploy of temporal.workflow.list({ query })) {
      let polled = served.get(deploy.taskQueue);
      if (!polled) {
        polled = isPolled(deploy.taskQueue);
        served.set(deploy.taskQueue, polled);
      }
      if (await polled) count++;
    }
    return count;
  }

  /** Whether a worker polled the task queue (for workflow or activity tasks) within POLLED_WITHIN_MS. */
  async function isPolled(taskQueue: string): Promise<boolean> {
    const recent = Date.now() - POLLED_WITHIN_MS;
    for (const taskQueueType of [TASK_QUEUE_TYPE_WORKFLOW, TASK_QUEUE_TYPE_ACTIVITY]) {
      const { pollers } = await temporal.workflowService.describeTaskQueue({
        namespace: temporal.options.namespace,
        taskQueue: { name: taskQueue },
        taskQueueType,
      });
      if ((pollers ?? []).some((poller) => millis(poller.lastAccessTime) >= recent)) return true;
    }
    return false;
  }

  /**
   * Waits until no deploy runs (they push images), then runs the collector. New deploy uploads are
   * held only for the collection itself, never while it waits: a deploy that takes long, or cannot
   * end, must not stop others.
   */
  async function collectWhenQuiet(): Promise<{ deletedBlobs: number }> {
    for (;;) {
      for (let running = await runningDeploys(); running > 0; running = await runningDeploys()) {
        heartbeat(`waiting for ${running} deploys to end`);
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
      events.publish({ type: 'registry-maintenance', active: true });
      try {
        // An upload a gateway began before it heard of the maintenance ends within this.
        await new Promise((resolve) => setTimeout(resolve, UPLOADS_SETTLE_MS));
        // A deploy that started before the hold: it goes first.
        if ((await runningDeploys()) > 0) continue;
        const output = await runCollector();
        return { deletedBlobs: output.split('\n').filter((line) => line.startsWith('blob eligible for deletion')).length };
      } finally {
        events.publish({ type: 'registry-maintenance', active: false });
      }
    }
  }

  return {
    /**
     * Collects the registry's garbage once no deploy pushes; returns how many blobs went. While the
     * collector runs, the gateways on this host hold new deploy uploads (a blob uploaded meanwhile
     * would be taken for garbage).
     */
    collectGarbage: () =>
      heartbeating(async () => {
        // Async calls' bodies past their retention go with this collection; failing that, the collection still runs.
        await expireCallBodies(registry, settings.callRetentionMs).catch((error: unknown) =>
          log.warn("expiring async calls' bodies failed", { error: (error as Error).message }),
        );
        return collectWhenQuiet();
      }),

    /** Has the scheduled garbage collection run now (after a removal), so that nothing of the function stays downloadable. */
    async collectRegistryGarbageSoon(): Promise<void> {
      const id = workflowIds.registryGc(settings.taskQueue);
      try {
        // BUFFER_ONE: a collection under way runs to its end, then this one (it may miss what the removal just deleted).
        await temporal.schedule.getHandle(id).trigger('BUFFER_ONE');
      } catch (error) {
        if (!(error instanceof ScheduleNotFoundError)) throw error;
        // No schedule (someone deleted it): a collection of its own.
        await temporal.workflow.start(WORKFLOW_TYPES.registryGc, {
          workflowId: `${id}/now`,
          taskQueue: settings.taskQueue,
          workflowIdConflictPolicy: 'USE_EXISTING',
        });
      }
    },
  };
}
