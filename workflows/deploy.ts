import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { DEPLOY_STEPS, WAITING_FOR_ENGINE, type DeployInput, type DeployResult, type DeployStep, type StepProgress } from '../lib/types';
import { dockerShort, engineWait, imageBuild, imageTransfer, packaging, temporalCall } from './activity-options';
import { progressQuery } from './definitions';

const { packageSource } = proxyActivities<Activities>(packaging);
const { buildImage } = proxyActivities<Activities>(imageBuild);
const { pushImage } = proxyActivities<Activities>(imageTransfer);
const { registerVersion } = proxyActivities<Activities>(temporalCall);
const { cleanupBuild } = proxyActivities<Activities>(dockerShort);
const { waitForEngine } = proxyActivities<Activities>(engineWait);

/**
 * deploy/<fn>/<version>: package → build → push → register. The gateway validated the input before
 * it started this workflow; it is not checked again here, because a replay must take the decisions
 * the first run took even if the rules have changed since. A failure in any step
 * fails the deploy with that step's message; the function's active version is untouched until the
 * register step, so a failed deploy leaves the previous version serving. A step that finds the Docker
 * engine away waits for it (its progress says so) and runs again once it answers.
 */
export async function deployFunction(input: DeployInput): Promise<DeployResult> {
  const steps: StepProgress[] = DEPLOY_STEPS.map((step) => ({ step, status: 'pending' }));
  setHandler(progressQuery, () => steps);

  async function run<T>(name: DeployStep, work: () => Promise<T>, detail?: (result: T) => string): Promise<T> {
    const step = steps.find((s) => s.step === name) as StepProgress;
    step.status = 'running';
    step.startedAt = new Date().toISOString();
    try {
      const result = await untilEngineAnswers(work, (waiting) => {
        step.detail = waiting ? WAITING_FOR_ENGINE : undefined;
      });
      step.status = 'done';
      step.detail = detail?.(result);
      return result;
    } catch (error) {
      step.status = 'failed';
      const failure = rootFailure(error);
      step.detail = failure.message;
      throw failure;
    } finally {
      step.finishedAt = new Date().toISOString();
    }
  }

  const { name, version, config } = input;
  let succeeded = false;
  let discardImage: { tag: string; digest: string } | undefined;
  try {
    const packaged = await run(
      'package',
      () => packageSource({ name, version, config, sourceDigest: input.sourceDigest }),
      (p) => `${p.files} files, ${formatBytes(p.bytes)}${p.dependencies ? `, ${p.dependencies} dependencies` : ''}`,
    );
    const built = await run(
      'build',
      () => buildImage({ name, version, config, contextDir: packaged.contextDir }),
      (b) => b.tag,
    );
    const pushed = await run(
      'push',
      () => pushImage({ tag: built.tag }),
      (p) => p.digest,
    );
    discardImage = { tag: built.tag, digest: pushed.digest };
    const registered = await run(
      'register',
      () =>
        registerVersion({
          version: {
            version,
            image: pushed.image,
            digest: pushed.digest,
            config,
            sourceDigest: input.sourceDigest,
            deployedAt: new Date().toISOString(),
          },
          requestedAt: workflowInfo().startTime.toISOString(),
        }),
      (r) =>
        r.activated ? `${name} now serves ${version}` : `${version} is kept, not served: ${r.activeVersion}, from a later deploy, serves`,
    );
    succeeded = true;
    return { name, version, image: pushed.image, digest: pushed.digest, ...registered };
  } finally {
    // A failed deploy leaves nothing behind: neither its build context, nor its uploaded source,
    // nor an image it pushed (a version that could not start).
    const discard = succeeded ? {} : { discardSource: input.sourceDigest, discardImage };
    // A clean-up that fails (the engine is away) must not hide the deploy's own outcome.
    await CancellationScope.nonCancellable(() => cleanupBuild({ name, version, ...discard })).catch((error: unknown) =>
      log.warn('cleaning up after the deploy failed', { error }),
    );
  }
}

/**
 * Runs a step; when it finds the Docker engine away, waits until the engine answers (telling the
 * step's progress) and runs it again. Gives up, plainly, when waitForEngine's timeout passes.
 */
async function untilEngineAnswers<T>(work: () => Promise<T>, waiting: (waiting: boolean) => void): Promise<T> {
  for (;;) {
    try {
      return await work();
    } catch (error) {
      if (failureType(error) !== 'EngineUnavailable') throw error;
    }
    waiting(true);
    try {
      await waitForEngine();
    } catch {
      throw ApplicationFailure.create({
        type: 'EngineUnavailable',
        message: `the Docker engine did not answer for ${engineWait.scheduleToCloseTimeout}; start it (npm start) and deploy again`,
        nonRetryable: true,
      });
    }
    waiting(false);
  }
}

/** What an activity failed with, out of the ActivityFailure wrapper(s) around it. */
function innermost(error: unknown): unknown {
  let cause: unknown = error;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  return cause;
}

function failureType(error: unknown): string | undefined {
  const cause = innermost(error);
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

/**
 * The failure a user should read: an activity's own ApplicationFailure (its type and message), not
 * the ActivityFailure wrapper around it. Raised again as non-retryable so the deploy ends at once.
 */
function rootFailure(error: unknown): ApplicationFailure {
  const cause = innermost(error);
  if (cause instanceof ApplicationFailure) {
    return ApplicationFailure.create({ type: cause.type ?? 'DeployFailed', message: cause.message, nonRetryable: true });
  }
  const message = cause instanceof Error ? cause.message : String(cause);
  return ApplicationFailure.create({ type: 'DeployFailed', message, nonRetryable: true });
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
