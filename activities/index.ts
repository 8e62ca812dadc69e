import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import { createBuildActivities } from './build';
import { createCallActivities } from './calls';
import { createContainerActivities } from './containers';
import type { ActivityDeps } from './deps';
import { isEngineUnreachable } from './docker-helpers';
import { createPackageActivities } from './package';
import { createRegisterActivities } from './register';
import { createRegistryGcActivities } from './registry-gc';

export type { ActivityDeps } from './deps';

/** How often waitForEngine asks whether the engine is back. */
const ENGINE_POLL_MS = 500;

/** Every activity the worker hosts; workflows bind them with proxyActivities<Activities>. */
export function createActivities(deps: ActivityDeps) {
  return reportEngineDown({
    ...createPackageActivities(deps),
    ...createBuildActivities(deps),
    ...createContainerActivities(deps),
    ...createRegisterActivities(deps),
    ...createRegistryGcActivities(deps),
    ...createCallActivities(deps),

    /**
     * Returns once the Docker engine answers again. A deploy step that found it down waits here
     * (its progress says so) instead of failing; the activity's timeout is how long it waits.
     */
    async waitForEngine(): Promise<void> {
      for (;;) {
        heartbeat();
        if (
          await deps.docker.ping().then(
            () => true,
            () => false,
          )
        )
          return;
        await new Promise((resolve) => setTimeout(resolve, ENGINE_POLL_MS));
      }
    },
  });
}

export type Activities = ReturnType<typeof createActivities>;

/**
 * Turns "the engine did not answer" into one failure type, EngineUnavailable, whichever activity
 * met it: workflows tell it apart from the engine refusing something (a deploy waits for the
 * engine, a cold start answers 503 at once), and no activity needs to check for it itself.
 */
function reportEngineDown<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T): T {
  const guarded: Record<string, unknown> = {};
  for (const [name, activity] of Object.entries(activities)) {
    guarded[name] = async (...args: never[]) => {
      try {
        return await activity(...args);
      } catch (error) {
        if (!(error instanceof ApplicationFailure) && isEngineUnreachable(error)) {
          throw ApplicationFailure.create({
            type: 'EngineUnavailable',
            message: `the Docker engine is not reachable (${(error as Error).message})`,
            nonRetryable: true,
          });
        }
        throw error;
      }
    };
  }
  return guarded as T;
}
