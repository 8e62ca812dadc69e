import { spawn } from 'node:child_process';
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import { ScheduleNotFoundError } from '@temporalio/client';
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

export function createRegistryGcActivities({ docker, temporal, settings, events }: ActivityDeps) {
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

  /** Waits until no deploy runs (they push images), then runs the collector. */
  async function collectWhenQuiet(): Promise<{ deletedBlobs: number }> {
    // An upload a gateway began before it heard of the maintenance ends within this.
    await new Promise((resolve) => setTimeout(resolve, UPLOADS_SETTLE_MS));
    for (;;) {
      // Deploys on every platform sharing the registry; one running for longer than a deploy can
      // (its worker gone for good) does not hold the collection back forever.
      const since = new Date(Date.now() - DEPLOY_LONGEST_MS).toISOString();
      const running = `WorkflowType = '${WORKFLOW_TYPES.deploy}' AND ExecutionStatus = 'Running' AND StartTime > '${since}'`;
      const { count } = await temporal.workflow.count(running);
      if (count === 0) break;
      heartbeat(`waiting for ${count} deploys to end`);
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    const output = await runCollector();
    return { deletedBlobs: output.split('\n').filter((line) => line.startsWith('blob eligible for deletion')).length };
  }

  return {
    /**
     * Collects the registry's garbage once no deploy pushes; returns how many blobs went. Meanwhile
     * the gateways on this host hold new deploy uploads (a blob uploaded while the collector runs
     * would be taken for garbage), and the deploys already running are waited for.
     */
    collectGarbage: () =>
      heartbeating(async (): Promise<{ deletedBlobs: number }> => {
        events.publish({ type: 'registry-maintenance', active: true });
        try {
          return await collectWhenQuiet();
        } finally {
          events.publish({ type: 'registry-maintenance', active: false });
        }
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
