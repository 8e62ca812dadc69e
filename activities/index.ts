import { createBuildActivities } from './build';
import { createContainerActivities } from './containers';
import type { ActivityDeps } from './deps';
import { createPackageActivities } from './package';
import { createRegisterActivities } from './register';

export type { ActivityDeps } from './deps';

/** Every activity the worker hosts; workflows bind them with proxyActivities<Activities>. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createPackageActivities(deps),
    ...createBuildActivities(deps),
    ...createContainerActivities(deps),
    ...createRegisterActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
