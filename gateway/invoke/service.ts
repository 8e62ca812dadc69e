import { lstatSync } from 'node:fs';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { PlatError } from '../../lib/errors';
import type { PlatformEvent } from '../../lib/events';
import { type LogWriter, platformRecord } from '../../lib/logs';
import { functionNameProblem, INSTANCE_HEADER, REFUSED_HEADER, VERSION_PATTERN, workflowIds } from '../../lib/names';
import { scaleOf } from '../../lib/function-config';
import { publicScheme, ROUTE_REVALIDATE_MS, type Settings } from '../../lib/settings';
import type { FunctionState, FunctionVersion, Instance } from '../../lib/types';
import { instanceGoneSignal, WORKFLOW_TYPES } from '../../workflows/definitions';
import type { FunctionsService } from '../functions/service';
import { CONTROL_READ_MS, within } from '../temporal';
import { rootCause, toPlatError } from '../temporal-errors';
import { isForwardedAnswerHeader, readRequestHeaders, type RequestHeads } from './headers';
import type { GatewayMetrics, StartKind } from '../metrics';
import { acceptsConnections } from './liveness';
import { REQUEST_ID_HEADER } from './request-id';
import { checkSizesOf } from '../limits';
import type { NativeEvents, NativeFront } from './native';
import { Pool, type Route, type Wake } from './pool';
import { type Answer, answerHeader, toResponse, type UpstreamCall, type UpstreamError, Upstreams } from './upstream';
import { UsageReports } from './usage';
import { resumeContainer } from './worker-link';

export type { Route } from './pool';

/** How often what the native front did is drained (its records and use reports wait at most this long). */
const DRAIN_MS = 25;
/** How often a request still waiting for its answer checks that its container is still there. */
const LIVENESS_MS = 1000;
/** How often the ticker looks at the requests in flight: the grain of timeouts and of noticing a client gone. */
const TICK_MS = 50;
const LIVENESS_PROBE_MS = 500;
/** The containers reported gone a cold start is told not to take over: the latest this many. */
const MAX_AVOIDED = 64;
/** How long a container reported gone is remembered, so an entity read that predates the report cannot route to it. */
const GONE_REMEMBERED_MS = 10 * 60_000;
/**
 * Request bodies up to this size (by Content-Length) are read before they are sent, so a request
 * that never reached a function can be sent again to its replacement; larger ones stream through.
 */
const REPLAY_BUFFER_BYTES = 1024 * 1024;
/** Methods HTTP defines as idempotent: sent again even when the first attempt may have reached the function. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** What one invocation met on its way, for its record. */
interface Trace {
  route?: Route;
  start?: StartKind;
  answer?: Answer;
}

/**
 * One invocation as the invoke path needs it, whoever took it in: Bun's server (a Request, see
 * `invoke`) or the invoke front (front.ts), which parses the client's bytes itself.
 */
export interface Incoming {
  method: string;
  /** The path and query the function sees (`functionPath`). */
  path: string;
  /** Aborted when the client goes away; read only when needed (a request waits, or is watched past its first tick). */
  readonly signal: AbortSignal;
  /** The body as it will be sent, read once who may call has been checked (`bodyToSend`). */
  body: () => Uint8Array | ReadableStream<Uint8Array> | null | Promise<Uint8Array | ReadableStream<Uint8Array> | null>;
}

/** One request on its way to a container, until its answer's head is in: what the ticker watches. */
interface Exchange {
  call: UpstreamCall;
  route: Route;
  /** Its request, whose signal is aborted when the client goes away. */
  incoming: Incoming;
  /** Wall-clock time it was sent, to compare with when its container died. */
  startedAt: number;
  /** `performance.now()` past which its timeout has passed, and its container is probed next. */
  deadline: number;
  nextProbe: number;
  /** Whether its client's abort signal is listened to. */
  watching: boolean;
  /** Why it was ended early. */
  reason?: symbol;
  /** Set when the container died before this request was sent. */
  neverReached?: boolean;
}

/** Ends an exchange early, for `reason` (the first reason wins). */
function end(exchange: Exchange, reason: symbol): void {
  if (exchange.reason !== undefined) return;
  exchange.reason = reason;
  exchange.call.abort(new Error(reason.description));
}

/** An exchange that failed because of its container; `reached` says whether the function may have seen the request. */
class ExchangeFailed extends Error {
  constructor(
    message: string,
    readonly reached: boolean,
  ) {
    super(message);
  }
}

/** `name` or `name@version` (a preview URL), checked. */
export function parseTarget(target: string): { name: string; version?: string } {
  const at = target.indexOf('@');
  const name = at < 0 ? target : target.slice(0, at);
  const version = at < 0 ? undefined : target.slice(at + 1);
  const problem = functionNameProblem(name);
  if (problem) throw new PlatError('BAD_REQUEST', problem);
  if (version !== undefined && !VERSION_PATTERN.test(version)) {
    throw new PlatError('BAD_REQUEST', `"${version}" is not a version id (see plat versions ${name})`);
  }
  return { name, version };
}

/**
 * The data plane. Each function (and each preview URL) has a pool of the instances of its version
 * (pool.ts): a warm request takes a place on the instance with the fewest requests and never touches
 * Temporal. A request that finds every instance at its `scale.concurrency` waits, and has another
 * instance started, up to `scale.max`, through the cold-start workflow (id
 * coldstart/<fn>/<version>[/<n>], "use existing": the requests and gateways that want the same start
 * share it); up to `scale.queue` more wait for a place, and past that get 429. The pools are only a
 * cache of the entities: the worker's events (onEvent) drop an instance the moment its container
 * dies and a pool when its version switches, they are re-read from the entities every few seconds
 * (which is how gateways learn of each other's instances), and rebuilt from them after a restart.
 * A route names its instance, so even a stale one cannot reach another function: the runtime refuses
 * it (421) and the instance is dropped. A paused instance is resumed by the worker on this host
 * before its request is sent; which instances served requests is told to their entities in batches
 * (usage.ts), for the idle rules.
 */
export class InvokeService {
  private readonly pools = new Map<string, Pool>();
  /** Pool look-ups under way, one per key. */
  private readonly loading = new Map<string, Promise<Pool>>();
  /** Liveness probes in flight, one per container however many requests wait on it. */
  private readonly probes = new Map<string, Promise<boolean>>();
  /** Containers known to be gone, and when that was learnt. */
  private readonly gone = new Map<string, number>();
  /** Containers paused by the idle rules, and the resumes under way. */
  private readonly paused = new Set<string>();
  private readonly resuming = new Map<string, Promise<void>>();
  /** Requests in flight, by container. */
  private readonly inFlight = new Map<string, Set<Exchange>>();
  private readonly usage: UsageReports;
  /** Cold starts this gateway waits for, by workflow id: told of their instance by `instance-ready`. */
  private readonly readyWaiters = new Map<string, Set<(instance: Instance) => void>>();
  /** Instances routed to on their `instance-ready`, until their entity has accepted them. */
  private readonly unconfirmed = new Set<string>();
  /**
   * Who may invoke what (see access/policy.ts): undefined when the request may go on at once (the
   * admin token), a promise that rejects with 401 when it may not. Unset: everyone may.
   */
  authorize?: (target: string, token: string | undefined) => Promise<void> | undefined;
  /** Whether a token is trusted with the platform's own request headers (RequestHeads.platformLines): the admin token. */
  trusted?: (token: string) => boolean;
  private timer?: ReturnType<typeof setInterval>;
  /** The one timer of the requests in flight (see tick). */
  private ticker?: ReturnType<typeof setInterval>;
  private readonly upstreams = new Upstreams(isForwardedAnswerHeader);
  /** The native front (PLAT_INVOKE_FRONT=native), told of every pool, and drained of what it did. */
  private native?: NativeFront;
  private drainer?: ReturnType<typeof setInterval>;

  constructor(
    private readonly temporal: Client,
    private readonly functions: FunctionsService,
    private readonly settings: Settings,
    /** Undefined when metrics are off (PLAT_METRICS=off): no counting and no invocation records. */
    private readonly metrics: GatewayMetrics | undefined,
    /** Functions' logs, for the events only the gateway sees (a request that timed out). */
    private readonly logs: LogWriter,
  ) {
    this.usage = new UsageReports(temporal);
  }

  /** Drops the function's pools: its active one and its previews. Requests waiting in them look again. */
  invalidate(name: string): void {
    for (const key of [...this.pools.keys()]) if (key === name || key.startsWith(`${name}@`)) this.drop(key);
  }

  private drop(key: string): void {
    const pool = this.pools.get(key);
    if (!pool) return;
    this.pools.delete(key);
    this.native?.unpool(key);
    pool.close();
  }

  /** Tells the native front a pool as it is now (no-op without one, or when nothing changed). */
  private publish(pool: Pool): void {
    if (this.native && this.pools.get(pool.key) === pool) this.native.pool(pool, (containerId) => this.paused.has(containerId));
  }

  private publishContaining(containerId: string): void {
    if (!this.native) return;
    for (const pool of this.pools.values()) if (pool.instances.some((r) => r.containerId === containerId)) this.publish(pool);
  }

  /**
   * Serves with the native front: it is told of every pool from now on, and what it did is drained
   * every DRAIN_MS (counted, recorded, and told to entities as the gateway's own requests are).
   */
  attachNative(native: NativeFront): void {
    this.native = native;
    for (const pool of this.pools.values()) this.publish(pool);
    this.drainer = setInterval(() => {
      native.drain(this.nativeEvents);
      // A place the native front gave back in a pool where requests wait (it does not wake them).
      for (const pool of this.pools.values()) if (pool.waiting > 0) pool.hand();
    }, DRAIN_MS);
  }

  private readonly nativeEvents: NativeEvents = {
    tally: (tally) => this.metrics?.merge(tally),
    records: (lines) => this.metrics?.appendRecords(lines),
    used: (name, containerId) => this.usage.record(name, containerId),
    gone: (containerId, _key, name, failure) => {
      this.forget(containerId);
      this.reportGone({ name, containerId }, failure);
    },
    timedOut: (name, containerId, version, requestId, timeoutMs) => {
      this.logs.append(
        name,
        platformRecord(`request timed out: no answer within ${timeoutMs / 1000} s (raise "timeout" in function.json)`, {
          containerId,
          version,
          requestId,
        }),
      );
    },
  };

  /** This gateway's requests on a container now (`plat describe` shows them by instance). */
  requestsOn(containerId: string): number {
    let count = 0;
    for (const pool of this.pools.values())
      for (const route of pool.instances) if (route.containerId === containerId) count += route.active;
    return count;
  }

  /** What the worker on this host pushes (see lib/events.ts). */
  onEvent(event: PlatformEvent): void {
    switch (event.type) {
      case 'hello':
        void this.revalidate();
        break;
      case 'instance-gone':
        this.forget(event.containerId, event.at);
        break;
      case 'instance-ready':
        for (const wake of this.readyWaiters.get(event.start) ?? []) wake(event.instance);
        break;
      case 'instance-retired':
        this.retire(event.containerId);
        break;
      case 'function-changed':
        this.drop(event.name);
        break;
      case 'instance-paused':
        this.paused.add(event.containerId);
        // Requests that reached it just as it was paused wait in its socket: resume it for them.
        // (the native front's requests among them: the counts are shared)
        if (this.inFlight.has(event.containerId) || this.requestsOn(event.containerId) > 0) {
          this.resume(event.containerId).catch(() => {});
        }
        this.publishContaining(event.containerId);
        break;
      case 'instance-resumed':
        this.paused.delete(event.containerId);
        this.publishContaining(event.containerId);
        break;
    }
  }

  /**
   * Drops every route to a container that is gone, and keeps it from being routed to again. When the
   * engine says it died (at `diedAt`), the requests still waiting on it end now: those sent after
   * it died never reached it, and are sent again to its replacement.
   */
  forget(containerId: string, diedAt?: number): void {
    this.markGone(containerId);
    this.native?.forget(containerId);
    for (const pool of [...this.pools.values()]) {
      if (!pool.remove(containerId)) continue;
      // A pool left with nothing running or starting is read again from the entity by its next request.
      if (pool.instances.length === 0 && pool.starting === 0) this.drop(pool.key);
      else this.publish(pool);
    }
    if (diedAt === undefined) return;
    for (const exchange of this.inFlight.get(containerId) ?? []) {
      exchange.neverReached = exchange.startedAt > diedAt;
      end(exchange, GONE);
    }
  }

  /**
   * A container the platform stops (idle for stopAfter, or replaced): no new request goes to it, and
   * those on it finish. Its pool stays even when it is left empty, as its entity has nothing newer to
   * tell: the next request starts an instance at once, without reading the entity first.
   */
  private retire(containerId: string): void {
    this.markGone(containerId);
    for (const pool of this.pools.values()) {
      if (!pool.remove(containerId)) continue;
      this.publish(pool);
      pool.wakeAll();
    }
  }

  /** Keeps a container from being routed to again (an entity read that predates its going included). */
  private markGone(containerId: string): void {
    this.gone.set(containerId, Date.now());
    this.paused.delete(containerId);
  }

  /** Re-reads routes from the entities every few seconds, and reports use to them in batches. */
  startRevalidation(intervalMs = ROUTE_REVALIDATE_MS): void {
    this.timer = setInterval(() => void this.revalidate(), intervalMs);
    this.timer.unref?.();
    this.usage.start();
  }

  stop(): void {
    clearInterval(this.drainer);
    this.native?.drain(this.nativeEvents);
    clearInterval(this.timer);
    clearInterval(this.ticker);
    this.ticker = undefined;
    this.upstreams.close();
    this.usage.stop();
  }

  /**
   * Brings each pool in line with its entity: instances other gateways started join, those gone
   * leave, and a pool whose version is no longer the active one (or whose function was removed) is
   * dropped.
   */
  private async revalidate(): Promise<void> {
    const now = Date.now();
    for (const [containerId, at] of this.gone) if (now - at > GONE_REMEMBERED_MS) this.gone.delete(containerId);
    await Promise.all([...this.pools.values()].map((pool) => this.refresh(pool)));
  }

  private async refresh(pool: Pool): Promise<void> {
    const state = await this.functions
      .get(pool.name)
      .catch((error) => (error instanceof PlatError && error.code === 'FUNCTION_NOT_FOUND' ? null : undefined));
    if (state === undefined) return; // Temporal unreachable: keep serving what we know
    if (this.pools.get(pool.key) !== pool) return;
    if (state === null || (!pool.preview && state.activeVersion !== pool.version)) {
      this.drop(pool.key);
      return;
    }
    const live = state.instances.filter((i) => i.version === pool.version && !this.gone.has(i.containerId));
    for (const route of [...pool.instances])
      if (!live.some((i) => i.containerId === route.containerId) && !this.unconfirmed.has(route.containerId))
        pool.remove(route.containerId);
    for (const instance of live) this.join(pool, instance);
    this.publish(pool);
  }

  /** An instance of the entity's joins the pool (no-op when it is in already). */
  private join(pool: Pool, instance: Instance): void {
    if (instance.state === 'paused') this.paused.add(instance.containerId);
    // (every revalidation joins the entity's instances again: the socket is looked at for new ones only)
    if (pool.has(instance.containerId)) return;
    const added = pool.add({
      key: pool.key,
      name: pool.name,
      version: pool.version,
      preview: pool.preview,
      containerId: instance.containerId,
      instanceId: instance.instanceId,
      url: instance.url,
      socket: visibleSocket(instance.socket),
      timeoutMs: pool.timeoutMs,
    });
    if (added) this.publish(pool);
  }

  /** The pool of `name` or `name@version`, read from the entity once however many requests ask. */
  private load(key: string): Promise<Pool> {
    let pending = this.loading.get(key);
    if (!pending) {
      pending = this.read(key).finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }

  private async read(key: string): Promise<Pool> {
    const { name, version: asked } = parseTarget(key);
    const state: FunctionState = await this.functions.get(name);
    const preview = asked !== undefined;
    const target = state.versions.find((v) => v.version === (asked ?? state.activeVersion));
    if (!target && preview) {
      throw new PlatError('VERSION_NOT_FOUND', `function ${name} has no version ${asked}; see plat versions ${name}`);
    }
    if (!target) throw new PlatError('NO_ACTIVE_VERSION', `function ${name} has no deployed version yet`);
    const pool = new Pool(key, name, target, preview, target.config.timeout * 1000, scaleOf(target.config));
    // Running instances first, then the most recently used: a paused one costs a resume.
    const instances = state.instances
      .filter((i) => i.version === target.version && !this.gone.has(i.containerId))
      .sort((a, b) => Number(b.state === 'running') - Number(a.state === 'running') || b.lastUsedAt.localeCompare(a.lastUsedAt));
    this.pools.set(key, pool);
    for (const instance of instances) this.join(pool, instance);
    this.publish(pool);
    return pool;
  }

  /**
   * A place for one request: on the least busy instance with room, or, when none has, after waiting
   * for one (an instance this starts, or a request that ends). 429 when the pool is at its max and
   * its queue is full; 503 when no instance came within PLAT_COLD_START_WAIT (a worker that does not
   * run the start, say), however many starts it waited for.
   */
  private async place(key: string, trace: Trace, signal: AbortSignal): Promise<Route> {
    const deadline = Date.now() + this.settings.coldStartWaitMs;
    for (let round = 0; ; round++) {
      const pool = this.pools.get(key) ?? (await this.load(key));
      const place = pool.acquire();
      if (place) return place;
      const atMax = pool.instances.length + pool.starting >= pool.scale.max;
      if (atMax && pool.full()) {
        throw new PlatError(
          'TOO_MANY_REQUESTS',
          `function ${pool.name} is at its limit: ${pool.scale.max} instance(s) of ${pool.scale.concurrency} request(s) each, and ${pool.scale.queue} waiting; try again shortly, or raise scale.max or scale.queue`,
        );
      }
      if (round > 20) throw new PlatError('COLD_START_FAILED', `function ${pool.name} kept changing while this request waited; try again`);
      const waiter = pool.wait();
      // The first instance starts alone: starts at once slow each other down, and it may serve them all.
      if (pool.wantsInstance() && (pool.instances.length > 0 || pool.starting === 0)) this.scaleOut(pool);
      if (pool.starting > 0) trace.start = 'cold';
      const wake = await waitFor(
        waiter,
        signal,
        atMax
          ? { ms: pool.timeoutMs, error: () => noFreeInstance(pool.name, pool.timeoutMs) }
          : { ms: Math.max(0, deadline - Date.now()), error: () => noInstanceYet(pool.name, this.settings.coldStartWaitMs) },
        pool.name,
      );
      if (wake instanceof Error) throw wake;
      if (wake !== 'again') return wake;
    }
  }

  /**
   * Starts one more instance for the pool's waiting requests: the start that brings the version to
   * the pool's count plus one, shared with any gateway that wants the same.
   */
  private scaleOut(pool: Pool): void {
    pool.starting++;
    const slot = pool.instances.length + pool.starting;
    void this.coldStart(pool.name, pool.target, pool.preview, slot).then(
      (outcome) => {
        pool.starting--;
        if (outcome === 'superseded') {
          // A deploy switched versions while this start ran: its container was refused; look again.
          if (this.pools.get(pool.key) === pool) this.drop(pool.key);
          else pool.wakeAll();
        } else if (outcome === 'full') {
          // Other gateways' instances fill the version: take them in, then the waiting requests look again.
          void this.refresh(pool).finally(() => pool.wakeAll());
        } else if (this.gone.has(outcome.containerId)) {
          // A start run this request joined ("use existing") was still reporting an instance that has
          // gone since (its gateway had routed to it on instance-ready): the waiting requests start another.
          pool.wakeAll();
        } else {
          this.join(pool, outcome);
          // Requests still waiting once it took what it can: as many more starts as they need, at once.
          while (pool.wantsInstance()) this.scaleOut(pool);
        }
      },
      (error: unknown) => {
        pool.starting--;
        if (pool.instances.length === 0 && pool.starting === 0) pool.fail(error instanceof Error ? error : new Error(String(error)));
        else pool.wakeAll();
      },
    );
  }

  protected async coldStart(
    name: string,
    version: FunctionVersion,
    preview: boolean,
    slot: number,
  ): Promise<Instance | 'superseded' | 'full'> {
    const started = performance.now();
    const workflowId = workflowIds.coldStart(name, version.version, slot);
    const ready = this.whenReady(workflowId);
    try {
      const handle = await within(this.temporal, CONTROL_READ_MS, () =>
        this.temporal.workflow.start(WORKFLOW_TYPES.coldStart, {
          workflowId,
          taskQueue: this.settings.taskQueue,
          // The containers this gateway stopped routing to: one that failed a request may still run.
          args: [{ name, version, preview, slot, avoid: [...this.gone.keys()].slice(-MAX_AVOIDED) }],
          workflowIdConflictPolicy: 'USE_EXISTING',
        }),
      );
      const result = handle.result() as Promise<Instance>;
      // The worker on this host tells of the instance as soon as it answers; the result comes after
      // the entity accepted it. Whichever is first routes.
      const first = await Promise.race([result.then((instance) => ({ instance, accepted: true })), ready.instance]);
      this.metrics?.coldStart(name, (performance.now() - started) / 1000);
      if (!first.accepted) this.awaitAcceptance(first.instance, result);
      return first.instance;
    } catch (error) {
      const cause = rootCause(error);
      if (cause instanceof ApplicationFailure && cause.type === 'VersionSuperseded') return 'superseded';
      if (cause instanceof ApplicationFailure && cause.type === 'ScaleLimit') return 'full';
      throw toPlatError(error, 'COLD_START_FAILED', `function ${name} not found`);
    } finally {
      ready.cancel();
    }
  }

  /** The instance of a cold start, when the worker on this host tells of it (`instance-ready`). */
  private whenReady(workflowId: string): { instance: Promise<{ instance: Instance; accepted: false }>; cancel: () => void } {
    let wake!: (instance: Instance) => void;
    const instance = new Promise<{ instance: Instance; accepted: false }>((resolve) => {
      wake = (found) => resolve({ instance: found, accepted: false });
    });
    const waiters = this.readyWaiters.get(workflowId) ?? new Set();
    waiters.add(wake);
    this.readyWaiters.set(workflowId, waiters);
    const cancel = () => {
      waiters.delete(wake);
      if (waiters.size === 0 && this.readyWaiters.get(workflowId) === waiters) this.readyWaiters.delete(workflowId);
    };
    return { instance, cancel };
  }

  /**
   * An instance routed to before its entity accepted it: one the entity refuses (a deploy switched
   * meanwhile, or the version is at its max) gets no new requests; those it has are answered, as
   * the entity drains it before it stops it.
   */
  private awaitAcceptance(instance: Instance, result: Promise<Instance>): void {
    this.unconfirmed.add(instance.containerId);
    result.then(
      () => this.unconfirmed.delete(instance.containerId),
      () => {
        this.unconfirmed.delete(instance.containerId);
        this.forget(instance.containerId);
      },
    );
  }

  /** Has the worker on this host resume a paused container (one resume however many requests wait for it). */
  private resume(containerId: string, name?: string): Promise<void> {
    let pending = this.resuming.get(containerId);
    if (!pending) {
      if (name) this.metrics?.resume(name);
      pending = resumeContainer(this.settings.eventsSocket, containerId)
        .then(() => {
          this.paused.delete(containerId);
        })
        .finally(() => this.resuming.delete(containerId));
      this.resuming.set(containerId, pending);
    }
    return pending;
  }

  /**
   * Proxies one request, streaming both bodies. If the instance is gone (connection refused, no
   * longer accepting connections while the request waits, reported dead, or another instance
   * answering at its address), the route is dropped, the entity told, and the request is sent once
   * more, to a fresh route, if that is safe: its body is at hand (none, or small enough to have been
   * read), and either it never reached the function or its method is idempotent. Otherwise 502.
   */
  async invoke(target: string, request: Request, clientIp?: string): Promise<Response> {
    const heads = readRequestHeaders(request.headers, clientIp, publicScheme(this.settings));
    const incoming: Incoming = {
      method: request.method,
      path: functionPath(request.url),
      signal: request.signal,
      body: () => bodyToSend(request, heads.contentLength),
    };
    try {
      const response = toResponse(await this.serve(target, incoming, heads));
      response.headers.set(REQUEST_ID_HEADER, heads.requestId);
      return response;
    } catch (error) {
      // The error's answer carries the request's id too (errors.ts reads it from the request).
      request.headers.set(REQUEST_ID_HEADER, heads.requestId);
      throw error;
    }
  }

  /**
   * One invocation, from who may call to the function's answer (see `invoke`), counted and recorded;
   * its errors are PlatErrors for the caller to answer with (errors.ts). The answer's headers do not
   * include the request id (`heads.requestId`), which the caller adds.
   */
  async serve(target: string, incoming: Incoming, heads: RequestHeads): Promise<Answer> {
    const started = performance.now();
    const trace: Trace = {};
    let status = 500;
    try {
      const answer = await this.exchange(target, incoming, heads, trace);
      status = answer.status;
      return answer;
    } catch (error) {
      if (error instanceof PlatError) {
        status = error.status;
        if (error.code === 'UPSTREAM_TIMEOUT' && trace.route) {
          this.logs.append(
            trace.route.name,
            platformRecord(`request timed out: no answer within ${trace.route.timeoutMs / 1000} s (raise "timeout" in function.json)`, {
              containerId: trace.route.containerId,
              version: trace.route.version,
              requestId: heads.requestId,
            }),
          );
        }
      }
      throw error;
    } finally {
      if (this.metrics) this.record(target, incoming, heads, status, started, trace);
    }
  }

  /** Counts the invocation and writes its record. */
  private record(target: string, incoming: Incoming, heads: RequestHeads, status: number, started: number, trace: Trace): void {
    const route = trace.route;
    const path = incoming.path;
    const query = path.indexOf('?');
    const answer = trace.answer;
    const bytesOut =
      answer?.body instanceof Uint8Array
        ? answer.body.byteLength
        : Number(answer ? (answerHeader(answer, 'content-length') ?? Number.NaN) : Number.NaN);
    this.metrics?.invocation({
      time: isoNow(),
      function: route?.name ?? target.split('@', 1)[0] ?? target,
      version: route?.version,
      instance: route?.containerId.slice(0, 12),
      method: incoming.method,
      path: query < 0 ? path : path.slice(0, query),
      status,
      durationMs: Math.round((performance.now() - started) * 1000) / 1000,
      start: route ? trace.start : undefined,
      bytesIn: heads.contentLength,
      bytesOut: Number.isNaN(bytesOut) ? undefined : bytesOut,
      requestId: heads.requestId,
    });
  }

  private async exchange(target: string, incoming: Incoming, heads: RequestHeads, trace: Trace): Promise<Answer> {
    checkSizesOf(heads.contentLength, heads.bytes);
    const authorizing = this.authorize?.(target, heads.token);
    if (authorizing !== undefined) await authorizing;
    if (heads.platformLines && heads.token !== undefined && this.trusted?.(heads.token)) heads.lines += heads.platformLines;
    const read = incoming.body();
    const body = read instanceof Promise ? await read : read;
    trace.start = 'warm';
    let route = this.pools.get(target)?.acquire() ?? (await this.place(target, trace, incoming.signal));
    const name = route.name;
    for (let attempt = 0; ; attempt++) {
      let failure: string;
      let reached: boolean;
      try {
        // A paused container's kernel still takes the connection and holds the request until the
        // worker has resumed it: both go at once, and a resume that fails ends the request.
        const resumed = this.paused.has(route.containerId) ? this.resume(route.containerId, route.name) : undefined;
        if (resumed && trace.start === 'warm') trace.start = 'resumed';
        trace.route = route;
        let answer: Answer;
        try {
          answer = await this.forward(route, incoming, body, heads.lines, resumed);
        } finally {
          // The place is taken until the answer's headers arrive; a streamed body does not hold it.
          this.release(route);
        }
        if (!isRefusal(answer)) {
          this.usage.record(route.name, route.containerId);
          trace.answer = answer;
          return answer;
        }
        if (answer.body instanceof ReadableStream) await answer.body.cancel();
        failure = 'another instance answers at its address';
        reached = false;
      } catch (error) {
        // The function's own slowness, or a client that went away, says nothing about the instance.
        if (error instanceof PlatError) throw error;
        if (incoming.signal.aborted) throw new PlatError('CLIENT_CLOSED_REQUEST', `the client went away before ${name} answered`);
        failure = (error as Error).message;
        reached = !(error instanceof ExchangeFailed) || error.reached;
      }
      this.forget(route.containerId);
      this.reportGone(route, failure);
      const again = attempt === 0 && !(body instanceof ReadableStream) && (!reached || IDEMPOTENT.has(incoming.method));
      if (!again) {
        throw new PlatError(
          'UPSTREAM_UNAVAILABLE',
          `function ${name} did not answer (${failure}); its instance is being replaced, try again`,
        );
      }
      route = await this.place(target, trace, incoming.signal);
    }
  }

  private release(route: Route): void {
    const pool = this.pools.get(route.key);
    if (pool) pool.release(route);
    else route.release();
  }

  /** Tells the function's entity that an instance failed a request (`failure`), so no one is routed to it again and it is stopped. */
  private reportGone(route: { name: string; containerId: string }, failure: string): void {
    this.temporal.workflow
      .getHandle(workflowIds.entity(route.name))
      .signal(instanceGoneSignal, route.containerId, failure)
      .catch(() => {});
  }

  /**
   * One exchange with the container, on a kept-alive connection (upstream.ts). The function's timeout
   * bounds the wait for its answer to start (status and headers), as a proxy's read timeout does; a
   * streamed body may go on past it. A client that goes away ends the exchange, body included. While
   * it waits, the container is probed every second (see liveness.ts), so a dead one fails the request
   * at once instead of at the timeout. No timer is set per request: one ticker (`tick`) watches every
   * exchange in flight.
   */
  private async forward(
    route: Route,
    incoming: Incoming,
    body: Uint8Array | ReadableStream | null,
    headerLines: string,
    resumed?: Promise<void>,
  ): Promise<Answer> {
    // On the instance's own socket, no other instance can answer: no check to ask for.
    const head = route.socket ? headerLines : `${headerLines}${INSTANCE_HEADER}: ${route.instanceId}\r\n`;
    const call = this.upstreams.request(route.url, { method: incoming.method, target: incoming.path, head, body }, route.socket);
    const now = performance.now();
    const exchange: Exchange = {
      call,
      route,
      incoming,
      startedAt: Date.now(),
      deadline: now + route.timeoutMs,
      nextProbe: now + LIVENESS_MS,
      watching: false,
    };
    resumed?.catch(() => end(exchange, NOT_RESUMED));
    let exchanges = this.inFlight.get(route.containerId);
    if (!exchanges) {
      exchanges = new Set<Exchange>();
      this.inFlight.set(route.containerId, exchanges);
    }
    exchanges.add(exchange);
    if (!this.ticker) {
      this.ticker = setInterval(() => this.tick(), TICK_MS);
      this.ticker.unref?.();
    }
    try {
      return await call.response;
    } catch (error) {
      const reason = exchange.reason;
      if (reason === TIMED_OUT) {
        throw new PlatError('UPSTREAM_TIMEOUT', `function ${route.name} did not answer within its timeout of ${route.timeoutMs / 1000} s`);
      }
      if (reason === GONE) throw new ExchangeFailed('its container is gone', !exchange.neverReached);
      if (reason === UNRESPONSIVE) throw new ExchangeFailed('its container stopped accepting connections', true);
      // Frozen until now, it cannot have read the request.
      if (reason === NOT_RESUMED) throw new ExchangeFailed('its paused container could not be resumed', false);
      if (reason === CLIENT_GONE) throw error;
      const failure = error as UpstreamError;
      throw new ExchangeFailed(failure.message, failure.reached !== false);
    } finally {
      exchanges.delete(exchange);
      if (exchanges.size === 0) this.inFlight.delete(route.containerId);
    }
  }

  /**
   * Every TICK_MS, for each request waiting for its answer: its timeout, its client (watched from its
   * first tick on, so a quick request never pays for an abort signal), and its container's liveness;
   * and the kept connections idle too long are closed.
   */
  private tick(): void {
    const now = performance.now();
    for (const exchanges of this.inFlight.values()) {
      for (const exchange of exchanges) {
        if (now >= exchange.deadline) {
          end(exchange, TIMED_OUT);
          continue;
        }
        if (!exchange.watching) {
          exchange.watching = true;
          const signal = exchange.incoming.signal;
          if (signal.aborted) {
            end(exchange, CLIENT_GONE);
            continue;
          }
          signal.addEventListener('abort', () => end(exchange, CLIENT_GONE), { once: true });
        }
        if (now >= exchange.nextProbe) {
          exchange.nextProbe = now + LIVENESS_MS;
          void this.alive(exchange.route).then((alive) => alive || end(exchange, UNRESPONSIVE));
        }
      }
    }
    this.upstreams.sweep(now);
  }

  private alive(route: Route): Promise<boolean> {
    let probe = this.probes.get(route.containerId);
    if (!probe) {
      probe = acceptsConnections(route.socket ?? route.url, LIVENESS_PROBE_MS).finally(() => this.probes.delete(route.containerId));
      this.probes.set(route.containerId, probe);
    }
    return probe;
  }
}

/** A request that waited its function's timeout in the queue of a pool at its max. */
function noFreeInstance(name: string, timeoutMs: number): PlatError {
  return new PlatError('UPSTREAM_TIMEOUT', `function ${name} had no free instance within its timeout of ${timeoutMs / 1000} s`);
}

/** A request that waited PLAT_COLD_START_WAIT for an instance: the start goes on, and a later request may find it. */
function noInstanceYet(name: string, waitMs: number): PlatError {
  return new PlatError(
    'COLD_START_FAILED',
    `function ${name} has no instance yet after ${waitMs / 1000} s: its start is still under way, or no worker runs it (is the worker running? npm start starts one); try again shortly`,
  );
}

/**
 * A waiting request's wake-up, or its end: the client went away (499), or it waited past `timeout`
 * (its error says what it waited for).
 */
function waitFor(
  waiter: { promise: Promise<Wake>; cancel: () => void },
  signal: AbortSignal,
  timeout: { ms: number; error: () => PlatError },
  name: string,
): Promise<Wake> {
  if (signal.aborted) {
    waiter.cancel();
    return Promise.resolve(new PlatError('CLIENT_CLOSED_REQUEST', `the client went away while it waited for ${name}`));
  }
  return new Promise<Wake>((resolve) => {
    const end = (wake: Wake) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', abort);
      waiter.cancel();
      resolve(wake);
    };
    const abort = () => end(new PlatError('CLIENT_CLOSED_REQUEST', `the client went away while it waited for ${name}`));
    const timer = setTimeout(() => end(timeout.error()), timeout.ms);
    signal.addEventListener('abort', abort, { once: true });
    void waiter.promise.then(end);
  });
}

let isoMs = 0;
let iso = '';
/** The time as an ISO string, made once per millisecond however many requests end in it. */
function isoNow(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    iso = new Date(now).toISOString();
  }
  return iso;
}

/** The runtime's answer to a request meant for another instance (see lib/names.ts). */
function isRefusal(answer: Answer): boolean {
  return answer.status === 421 && answerHeader(answer, REFUSED_HEADER) === 'instance';
}

/** The body as it will be sent: read into memory when small enough to send twice, else the stream itself. */
async function bodyToSend(request: Request, length: number | undefined): Promise<Uint8Array | ReadableStream | null> {
  if (request.body === null) return null;
  if (length !== undefined && length <= REPLAY_BUFFER_BYTES) return new Uint8Array(await request.arrayBuffer());
  return request.body;
}

const TIMED_OUT = Symbol('timed out');
/** Its client went away. */
const CLIENT_GONE = Symbol('client gone');
/** The worker reported the container dead. */
const GONE = Symbol('container gone');
/** The liveness probe found nothing listening. */
const UNRESPONSIVE = Symbol('container unresponsive');
/** The worker could not resume the paused container. */
const NOT_RESUMED = Symbol('container not resumed');
const FUNCTION_PREFIX = '/function/';

/** The path the function sees: `/function/<name>/a/b?q=1` arrives as `/a/b?q=1` (string work, no URL parse). */
export function functionPath(url: string): string {
  const path = url.indexOf('/', url.indexOf('//') + 2);
  const nameStart = url.indexOf(FUNCTION_PREFIX, path) + FUNCTION_PREFIX.length;
  let end = nameStart;
  while (end < url.length && url[end] !== '/' && url[end] !== '?' && url[end] !== '#') end++;
  const rest = url.slice(end).split('#', 1)[0] as string;
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/**
 * The instance's socket if this gateway sees a socket at its path, else none: the instance is then
 * reached over TCP. A gateway that does not share the worker's view of the host's files (another
 * mount namespace, a container without the run folder) would otherwise fail every connection there
 * and have the instance replaced, again and again. (lstat: a link the worker made is a socket; a
 * symlink is never followed.) Asked when an instance joins a pool, not per request.
 */
function visibleSocket(path: string | undefined): string | undefined {
  if (!path) return undefined;
  let seen = false;
  try {
    seen = lstatSync(path).isSocket();
  } catch {}
  if (seen) return path;
  if (!socketUnseenTold) {
    socketUnseenTold = true;
    console.warn(
      `an instance socket is not there for this gateway (${path}: gone, or another mount namespace); such instances are reached over TCP`,
    );
  }
  return undefined;
}
let socketUnseenTold = false;
