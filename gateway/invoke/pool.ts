import type { ScaleConfig } from '../../lib/function-config';
import type { FunctionVersion } from '../../lib/types';

/** One instance a request can be sent to, and how many of this gateway's requests it holds now. */
export interface Route {
  /** The pool's key: `name`, or `name@version` for a preview URL. */
  key: string;
  name: string;
  version: string;
  preview: boolean;
  containerId: string;
  /** Sent with every request; the runtime refuses a request meant for another instance. */
  instanceId: string;
  url: string;
  timeoutMs: number;
  /** This gateway's requests on it now, from the moment one is placed until its answer's headers arrive. */
  active: number;
}

/** What wakes a request waiting for a place: a place, `again` (the pool changed: look again), or why it cannot have one. */
export type Wake = Route | 'again' | Error;

/**
 * The instances of one version that this gateway sends requests to, and the requests waiting for a
 * place on them. A request takes the instance with the fewest requests, as long as it holds fewer
 * than `concurrency`; when none does, it waits. Requests that the instances running and starting
 * will take wait without limit (they are why those instances start); up to `queue` more wait for a
 * place to free up; past that the pool is full. Everything here is synchronous, so a place is never
 * given twice.
 */
export class Pool {
  readonly instances: Route[] = [];
  /** Starts under way from this gateway. */
  starting = 0;
  private readonly waiters: Array<(wake: Wake) => void> = [];

  readonly version: string;

  constructor(
    readonly key: string,
    readonly name: string,
    /** The version its instances run, as cold starts need it. */
    readonly target: FunctionVersion,
    readonly preview: boolean,
    readonly timeoutMs: number,
    readonly scale: Pick<ScaleConfig, 'concurrency' | 'max' | 'queue'>,
  ) {
    this.version = target.version;
  }

  /** A place on the instance with the fewest requests, or undefined when every one is at its concurrency. */
  acquire(): Route | undefined {
    let best: Route | undefined;
    for (const route of this.instances) if (route.active < this.scale.concurrency && (!best || route.active < best.active)) best = route;
    if (best) best.active++;
    return best;
  }

  /** Gives a place back; the request that waited longest takes it. */
  release(route: Route): void {
    route.active--;
    if (this.waiters.length > 0 && this.instances.includes(route)) {
      const place = this.acquire();
      if (place) this.waiters.shift()?.(place);
    }
  }

  /** Whether one more instance should start for the requests waiting: they are more than those starting will take, and the pool is below max. */
  wantsInstance(): boolean {
    return this.instances.length + this.starting < this.scale.max && this.waiters.length > this.starting * this.scale.concurrency;
  }

  /** Whether a request that found no place must be refused: the queue past what starting instances will take is full. */
  full(): boolean {
    return this.waiters.length >= this.starting * this.scale.concurrency + this.scale.queue;
  }

  /** Waits for a place; `again` when the pool changed under it (an instance joined or left, a start ended). */
  wait(): { promise: Promise<Wake>; cancel: () => void } {
    let wake!: (w: Wake) => void;
    const promise = new Promise<Wake>((resolve) => {
      wake = resolve;
    });
    this.waiters.push(wake);
    return {
      promise,
      cancel: () => {
        const at = this.waiters.indexOf(wake);
        if (at >= 0) this.waiters.splice(at, 1);
      },
    };
  }

  /** An instance joined: the waiting requests take its places, in order. */
  add(route: Route): void {
    if (this.instances.some((r) => r.containerId === route.containerId)) return;
    this.instances.push(route);
    this.hand();
  }

  /** An instance left: requests on it end on their own; none is placed on it again. */
  remove(containerId: string): boolean {
    const at = this.instances.findIndex((r) => r.containerId === containerId);
    if (at < 0) return false;
    this.instances.splice(at, 1);
    return true;
  }

  /** Hands free places to waiting requests, then wakes the rest to look again (a start ended, the pool was dropped). */
  wakeAll(): void {
    this.hand();
    for (const wake of this.waiters.splice(0)) wake('again');
  }

  /** A start failed and nothing else can serve: every waiting request ends with its error. */
  fail(error: Error): void {
    for (const wake of this.waiters.splice(0)) wake(error);
  }

  get waiting(): number {
    return this.waiters.length;
  }

  private hand(): void {
    while (this.waiters.length > 0) {
      const place = this.acquire();
      if (!place) break;
      this.waiters.shift()?.(place);
    }
  }
}
