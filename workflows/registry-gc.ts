import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';

const { collectGarbage } = proxyActivities<Activities>({
  // It waits for running deploys to end before it collects: a long wait is not a failure.
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '10 seconds', maximumAttempts: 5, nonRetryableErrorTypes: ['RegistryGcUnavailable'] },
});

/**
 * registry-gc/<task queue>: run by a Temporal Schedule of the same id (every PLAT_REGISTRY_GC_EVERY,
 * and at once after a function's removal), so each collection shows in the Web UI with its count.
 */
export async function collectRegistryGarbage(): Promise<{ deletedBlobs: number }> {
  return collectGarbage();
}
