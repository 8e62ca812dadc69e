import { ActivityFailure, ApplicationFailure, CancellationScope, proxyActivities, setHandler } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { describeProblems, validateFunctionConfig } from '../lib/function-config';
import { DEPLOY_STEPS, type DeployInput, type DeployResult, type DeployStep, type StepProgress } from '../lib/types';
import { dockerShort, imageBuild, imageTransfer, packaging, temporalCall } from './activity-options';
import { progressQuery } from './definitions';

const { packageSource } = proxyActivities<Activities>(packaging);
const { buildImage } = proxyActivities<Activities>(imageBuild);
const { pushImage } = proxyActivities<Activities>(imageTransfer);
const { registerVersion } = proxyActivities<Activities>(temporalCall);
const { cleanupBuild } = proxyActivities<Activities>(dockerShort);

/**
 * deploy/<fn>/<version>: validate → package → build → push → register. A failure in any step
 * fails the deploy with that step's message; the function's active version is untouched until the
 * register step, so a failed deploy leaves the previous version serving.
 */
export async function deployFunction(input: DeployInput): Promise<DeployResult> {
  const steps: StepProgress[] = DEPLOY_STEPS.map((step) => ({ step, status: 'pending' }));
  setHandler(progressQuery, () => steps);

  async function run<T>(name: DeployStep, work: () => Promise<T>, detail?: (result: T) => string): Promise<T> {
    const step = steps.find((s) => s.step === name) as StepProgress;
    step.status = 'running';
    step.startedAt = new Date().toISOString();
    try {
      const result = await work();
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
    await run('validate', async () => {
      const checked = validateFunctionConfig(config);
      if (!checked.ok) {
        throw ApplicationFailure.create({ type: 'InvalidConfig', message: describeProblems(checked.problems), nonRetryable: true });
      }
    });
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
    await run(
      'register',
      () =>
        registerVersion({
          version,
          image: pushed.image,
          digest: pushed.digest,
          config,
          sourceDigest: input.sourceDigest,
          deployedAt: new Date().toISOString(),
        }),
      () => `${name} now serves ${version}`,
    );
    succeeded = true;
    return { name, version, image: pushed.image, digest: pushed.digest };
  } finally {
    // A failed deploy leaves nothing behind: neither its build context, nor its uploaded source,
    // nor an image it pushed (a version that could not start).
    const discard = succeeded ? {} : { discardSource: input.sourceDigest, discardImage };
    await CancellationScope.nonCancellable(() => cleanupBuild({ name, version, ...discard }));
  }
}

/**
 * The failure a user should read: an activity's own ApplicationFailure (its type and message), not
 * the ActivityFailure wrapper around it. Raised again as non-retryable so the deploy ends at once.
 */
function rootFailure(error: unknown): ApplicationFailure {
  let cause: unknown = error;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
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
