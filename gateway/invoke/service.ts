import type { Client } from '@temporalio/client';
import { PlatError } from '../../lib/errors';
import { workflowIds } from '../../lib/names';
import type { Settings } from '../../lib/settings';
import type { FunctionState, FunctionVersion, Instance } from '../../lib/types';
import { instanceGoneSignal, WORKFLOW_TYPES } from '../../workflows/definitions';
import type { FunctionsService } from '../functions/service';
import { toPlatError } from '../temporal-errors';
import { toDownstreamHeaders, toUpstreamHeaders } from './headers';
import { acceptsConnections } from './liveness';

/** Where the gateway sends a function's requests: one live instance of its active version. */
export interface Route {
  name: string;
  version: string;
  containerId: string;
  url: string;
  timeoutMs: number;
}

const REVALIDATE_MS = 3000;
/** How often a request still waiting for its answer checks that its container is still there. */
const LIVENESS_MS = 1000;
const LIVENESS_PROBE_MS = 500;

/**
 * The data plane. Warm requests use the in-memory route table and never touch Temporal; a miss reads
 * the function's entity and, when no instance is live, runs the cold-start workflow (id
 * coldstart/<fn>, "use existing": concurrent misses share one start). The table is only a cache:
 * it is refreshed in the background from the entity workflows and rebuilt from them after a restart.
 */
export class InvokeService {
  private readonly routes = new Map<string, Route>();
  private readonly resolving = new Map<string, Promise<Route>>();
  /** Liveness probes in flight, one per container however many requests wait on it. */
  private readonly probes = new Map<string, Promise<boolean>>();
  private timer?: ReturnType<typeof setInterval>;

  constructor(
    private readonly temporal: Client,
    private readonly functions: FunctionsService,
    private readonly settings: Settings,
  ) {}

  invalidate(name: string): void {
    this.routes.delete(name);
  }

  /** Drops routes whose function changed version, lost the instance, or was removed. */
  startRevalidation(intervalMs = REVALIDATE_MS): void {
    this.timer = setInterval(() => void this.revalidate(), intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async revalidate(): Promise<void> {
    await Promise.all(
      [...this.routes.values()].map(async (route) => {
        const state = await this.functions
          .get(route.name)
          .catch((error) => (error instanceof PlatError && error.code === 'FUNCTION_NOT_FOUND' ? null : undefined));
        if (state === undefined) return; // Temporal unreachable: keep serving what we know
        const live = state?.activeVersion === route.version && state.instances.some((i) => i.containerId === route.containerId);
        if (!live && this.routes.get(route.name) === route) this.routes.delete(route.name);
      }),
    );
  }

  async route(name: string, exclude?: string): Promise<Route> {
    const cached = this.routes.get(name);
    if (cached && cached.containerId !== exclude) return cached;
    let pending = this.resolving.get(name);
    if (!pending) {
      pending = this.resolve(name, exclude).finally(() => this.resolving.delete(name));
      this.resolving.set(name, pending);
    }
    return pending;
  }

  private async resolve(name: string, exclude?: string): Promise<Route> {
    const state: FunctionState = await this.functions.get(name);
    const active = state.versions.find((v) => v.version === state.activeVersion);
    if (!active) throw new PlatError('NO_ACTIVE_VERSION', `function ${name} has no deployed version yet`);
    const live = state.instances.find((i) => i.version === active.version && i.containerId !== exclude);
    const instance = live ?? (await this.coldStart(name, active));
    const route: Route = {
      name,
      version: active.version,
      containerId: instance.containerId,
      url: instance.url,
      timeoutMs: active.config.timeout * 1000,
    };
    this.routes.set(name, route);
    return route;
  }

  private async coldStart(name: string, version: FunctionVersion): Promise<Instance> {
    try {
      return await this.temporal.workflow.execute(WORKFLOW_TYPES.coldStart, {
        workflowId: workflowIds.coldStart(name),
        taskQueue: this.settings.taskQueue,
        args: [{ name, version }],
        workflowIdConflictPolicy: 'USE_EXISTING',
      });
    } catch (error) {
      throw toPlatError(error, 'COLD_START_FAILED', `function ${name} not found`);
    }
  }

  /**
   * Proxies one request, streaming both bodies. If the instance is gone (connection refused, or
   * no longer accepting connections while the request waits), the route is dropped, the entity
   * told, and a request without a body to replay is retried once on a fresh cold start.
   */
  async invoke(name: string, request: Request, clientIp?: string): Promise<Response> {
    const pathAndQuery = functionPath(request.url);
    const headers = toUpstreamHeaders(request.headers, clientIp, request.url.startsWith('https:') ? 'https' : 'http');
    const replayable = request.body === null;
    let route = this.routes.get(name) ?? (await this.route(name));
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.forward(route, request, headers, pathAndQuery);
      } catch (error) {
        // The function's own slowness, or a client that went away, says nothing about the instance.
        if (error instanceof PlatError) throw error;
        if (request.signal.aborted) throw new PlatError('CLIENT_CLOSED_REQUEST', `the client went away before ${name} answered`);
        if (this.routes.get(name) === route) this.routes.delete(name);
        this.reportGone(route);
        if (attempt > 0 || !replayable) {
          throw new PlatError('UPSTREAM_UNAVAILABLE', `function ${name} did not answer: ${(error as Error).message}`);
        }
        route = await this.route(name, route.containerId);
      }
    }
  }

  /** Tells the function's entity that an instance stopped answering, so no one is routed to it again. */
  private reportGone(route: Route): void {
    this.temporal.workflow
      .getHandle(workflowIds.entity(route.name))
      .signal(instanceGoneSignal, route.containerId)
      .catch(() => {});
  }

  /**
   * One exchange with the container. The function's timeout bounds the wait for its answer to start
   * (status and headers), as a proxy's read timeout does; a streamed body may go on past it. A client
   * that goes away aborts the exchange, body included. While it waits, the container is probed every
   * second (see liveness.ts), so a dead one fails the request at once instead of at the timeout.
   * The upstream Response is returned as it is (headers trimmed in place, body neither decompressed
   * nor re-wrapped), so Bun pipes it natively: re-wrapping its body cost more than the rest of the hop.
   */
  private async forward(route: Route, request: Request, headers: Headers, pathAndQuery: string): Promise<Response> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(TIMED_OUT), route.timeoutMs);
    const watchdog = setInterval(() => {
      void this.alive(route).then((alive) => alive || controller.abort(GONE));
    }, LIVENESS_MS);
    request.signal.addEventListener('abort', () => controller.abort(request.signal.reason), { once: true });
    try {
      const upstream = await fetch(route.url + pathAndQuery, {
        method: request.method,
        headers,
        body: request.body,
        redirect: 'manual',
        signal: controller.signal,
        decompress: false,
      });
      toDownstreamHeaders(upstream.headers);
      return upstream;
    } catch (error) {
      if (controller.signal.reason === TIMED_OUT) {
        throw new PlatError('UPSTREAM_TIMEOUT', `function ${route.name} did not answer within its timeout of ${route.timeoutMs / 1000} s`);
      }
      if (controller.signal.reason === GONE) throw new Error('its container stopped accepting connections');
      throw error;
    } finally {
      clearTimeout(timer);
      clearInterval(watchdog);
    }
  }

  private alive(route: Route): Promise<boolean> {
    let probe = this.probes.get(route.containerId);
    if (!probe) {
      probe = acceptsConnections(route.url, LIVENESS_PROBE_MS).finally(() => this.probes.delete(route.containerId));
      this.probes.set(route.containerId, probe);
    }
    return probe;
  }
}

const TIMED_OUT = Symbol('timed out');
const GONE = Symbol('container gone');
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
