import type { ScaleConfig } from '../../lib/function-config';
import type { FunctionVersion } from '../../lib/types';

/**
 * How many requests each instance holds, and how many wait in each pool, by slot: this gateway's own
 * array, or the native front's (native.ts), which places requests on the same counts from its thread;
 * hence the Atomics.
 */
let counts: Int32Array<ArrayBufferLike> = new Int32Array(1 << 16);
/** Slots given to a route or a pool now. */
let owned = new Uint8Array(counts.length);
let nextSlot = 0;

/** Places requests on counts shared with the native front from now on (before any pool is made). */
export function shareCounts(shared: Int32Array<ArrayBufferLike>): void {
  counts = shared;
  owned = new Uint8Array(shared.length);
  nextSlot = 0;
}

/** A slot no route or pool has, and that no request still holds. */
function takeSlot(): number {
  for (let tried = 0; tried < counts.length; tried++) {
    const slot = nextSlot;
    nextSlot = (nextSlot + 1) % counts.length;
    if (owned[slot] === 0 && Atomics.load(counts, slot) === 0) {
      owned[slot] = 1;
      return slot;
    }
  }
  throw new Error('no free slot for another instance: too many instances in this gateway');
}

/** What a route is made of: where its instance is and what it runs. */
export interface RouteTarget {
  /** The pool's key: `name`, or `name@version` for a preview URL. */
  key: string;
  name: string;
  version: string;
  preview: boolean;
  containerId: string;
  /** Sent with every request over TCP; the runtime refuses a request meant for another instance. */
  instanceId: string;
  url: string;
  /** The instance's Unix socket (Instance.socket): requests go there instead of `url`, and need no instance check. */
  socket?: string;
  timeoutMs: number;
}

/** One instance a request can be sent to, and how many of this gateway's requests it holds now. */
export class Route implements RouteTarget {
  readonly key: string;
  readonly name: string;
  readonly version: string;
  readonly preview: boolean;
  readonly containerId: string;
  readonly instanceId: string;
  readonly url: string;
  readonly socket?: string;
  readonly timeoutMs: number;
  /** Where its count is (see `counts`). */
  readonly slot = takeSlot();

  constructor(target: RouteTarget) {
    this.key = target.key;
    this.name = target.name;
    this.version = target.version;
    this.preview = target.preview;
    this.containerId = target.containerId;
    this.instanceId = target.instanceId;
    this.url = target.url;
    this.socket = target.socket;
    this.timeoutMs = target.timeoutMs;
  }

  /** This gateway's requests on it now, from the moment one is placed until its answer's headers arrive. */
  get active(): number {
    return Atomics.load(counts, this.slot);
  }

  /** A request placed on it gives its place back. */
  release(): void {
    Atomics.sub(counts, this.slot, 1);
  }

  /** No longer routed to: its slot is free once the requests it holds are done. */
  retire(): void {
    owned[this.slot] = 0;
  }
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
  /** Where the count of its waiting requests is (see `counts`): the native front sends requests to the gateway while any wait. */
  readonly slot = takeSlot();
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
    for (;;) {
      let best: Route | undefined;
      let least = 0;
      for (const route of this.instances) {
        const active = Atomics.load(counts, route.slot);
        if (active < this.scale.concurrency && (!best || active < least)) {
          best = route;
          least = active;
        }
      }
      // The native front may have taken the place meanwhile: look again.
      if (!best || Atomics.compareExchange(counts, best.slot, least, least + 1) === least) return best;
    }
  }

  /** Gives a place back; the request that waited longest takes it. */
  release(route: Route): void {
    route.release();
    if (this.waiters.length > 0 && this.instances.includes(route)) this.hand();
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
    this.counted();
    return {
      promise,
      cancel: () => {
        const at = this.waiters.indexOf(wake);
        if (at >= 0) this.waiters.splice(at, 1);
        this.counted();
      },
    };
  }

  /** An instance joins (no-op when it is in already): the waiting requests take its places, in order. */
  add(target: RouteTarget): boolean {
    if (this.has(target.containerId)) return false;
    this.instances.push(new Route(target));
    this.hand();
    return true;
  }

  /** Whether the instance is in the pool. */
  has(containerId: string): boolean {
    return this.instances.some((r) => r.containerId === containerId);
  }

  /** An instance left: requests on it end on their own; none is placed on it again. */
  remove(containerId: string): boolean {
    const at = this.instances.findIndex((r) => r.containerId === containerId);
    if (at < 0) return false;
    this.instances.splice(at, 1)[0]?.retire();
    return true;
  }

  /** The pool is no longer used: its waiting requests look again, and its slots are free once their requests are done. */
  close(): void {
    this.wakeAll();
    for (const route of this.instances) route.retire();
    owned[this.slot] = 0;
  }

  /** Tells the native front how many requests wait here. */
  private counted(): void {
    Atomics.store(counts, this.slot, this.waiters.length);
  }

  /** Hands free places to waiting requests, then wakes the rest to look again (a start ended, the pool was dropped). */
  wakeAll(): void {
    this.hand();
    const waiters = this.waiters.splice(0);
    this.counted();
    for (const wake of waiters) wake('again');
  }

  /** A start failed and nothing else can serve: every waiting request ends with its error. */
  fail(error: Error): void {
    const waiters = this.waiters.splice(0);
    this.counted();
    for (const wake of waiters) wake(error);
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** Hands free places to waiting requests (also when the native front gave one back: see InvokeService's tick). */
  hand(): void {
    while (this.waiters.length > 0) {
      const place = this.acquire();
      if (!place) break;
      const wake = this.waiters.shift();
      this.counted();
      wake?.(place);
    }
  }
}
