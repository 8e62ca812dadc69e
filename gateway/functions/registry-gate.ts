import { PlatError } from '../../lib/errors';
import type { PlatformEvent } from '../../lib/events';

/** How long a deploy upload waits for the registry's garbage collection to end before it gives up with 503. */
const HOLD_MS = 120_000;

/**
 * Holds deploy uploads while the registry's garbage is collected (the worker on this host says when,
 * lib/events.ts): the collector would delete a blob uploaded while it runs.
 */
export class RegistryGate {
  private held = false;
  private waiters: Array<() => void> = [];

  onEvent(event: PlatformEvent): void {
    if (event.type === 'hello') this.set(event.maintenance === true);
    if (event.type === 'registry-maintenance') this.set(event.active);
  }

  /** Resolves once uploads may go on. */
  async open(): Promise<void> {
    if (!this.held) return;
    const opened = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), HOLD_MS);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!(await opened)) {
      throw new PlatError(
        'PLATFORM_UNAVAILABLE',
        'the registry is collecting its garbage and takes no uploads yet; deploy again in a minute',
      );
    }
  }

  private set(held: boolean): void {
    this.held = held;
    if (!held) for (const wake of this.waiters.splice(0)) wake();
  }
}
