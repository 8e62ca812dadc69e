import type { Client } from '@temporalio/client';
import { workflowIds } from '../../lib/names';
import { USAGE_REPORT_MS } from '../../lib/settings';
import { type InstanceUse, instancesUsedSignal } from '../../workflows/definitions';

/**
 * Which instances served requests, told to their entities in batches: one signal per function with
 * traffic every USAGE_REPORT_MS, never a Temporal call per request. The entity's idle rules count
 * from the last use it was told of (the time of the request, not of the report).
 */
export class UsageReports {
  /** Function → container → time of its last request (ms). */
  private readonly pending = new Map<string, Map<string, number>>();
  private timer?: ReturnType<typeof setInterval>;

  constructor(private readonly temporal: Client) {}

  record(name: string, containerId: string): void {
    let uses = this.pending.get(name);
    if (!uses) {
      uses = new Map();
      this.pending.set(name, uses);
    }
    uses.set(containerId, Date.now());
  }

  start(intervalMs = USAGE_REPORT_MS): void {
    this.timer = setInterval(() => this.flush(), intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    clearInterval(this.timer);
    this.flush();
  }

  flush(): void {
    for (const [name, uses] of this.pending) {
      const report: InstanceUse[] = [...uses].map(([containerId, at]) => ({ containerId, at: new Date(at).toISOString() }));
      this.temporal.workflow
        .getHandle(workflowIds.entity(name))
        .signal(instancesUsedSignal, report)
        .catch(() => {
          // Temporal away or the function removed: a use not told only makes an idle rule come a little early.
        });
    }
    this.pending.clear();
  }
}
