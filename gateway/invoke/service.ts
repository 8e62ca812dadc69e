import type { Client } from '@temporalio/client';
import { PlatError } from '../../lib/errors';
import { workflowIds } from '../../lib/names';
import type { Settings } from '../../lib/settings';
import type { FunctionState, FunctionVersion, Instance } from '../../lib/types';
import { instanceGoneSignal, WORKFLOW_TYPES } from '../../workflows/definitions';
import type { FunctionsService } from '../functions/service';
import { toPlatError } from '../temporal-errors';
import { downstreamResponseHeaders, upstreamRequestHeaders } from './headers';

/** Where the gateway sends a function's requests: one live instance of its active version. */
export interface Route {
  name: string;
  version: string;
  containerId: string;
  url: string;
  timeoutMs: number;
}

const REVALIDATE_MS = 3000;

/**
 * The data plane. Warm requests use the in-memory route table and never touch Temporal; a miss reads
 * the function's entity and, when no instance is live, runs the cold-start workflow (id
 * coldstart/<fn>, "use existing": concurrent misses share one start). The table is only a cache:
 * it is refreshed in the background from the entity workflows and rebuilt from them after a restart.
 */
export class InvokeService {
  private readonly routes = new Map<string, Route>();
  private readonly resolving = new Map<string, Promise<Route>>();
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
   * Proxies one request, streaming both bodies. If the instance is gone (connection refused) and
   * the request had no body to replay, the route is dropped and the request retried once on a fresh
   * cold start.
   */
  async invoke(name: string, request: Request, clientIp?: string): Promise<Response> {
    const incomingUrl = new URL(request.url);
    // The function sees its own paths: /function/<name>/a/b?q=1 arrives as /a/b?q=1.
    const pathAndQuery = (incomingUrl.pathname.slice(`/function/${name}`.length) || '/') + incomingUrl.search;
    const replayable = request.body === null;
    let route = await this.route(name);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.forward(route, request, pathAndQuery, incomingUrl, clientIp);
      } catch (error) {
        if (error instanceof PlatError) throw error;
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

  private async forward(route: Route, request: Request, pathAndQuery: string, incomingUrl: URL, clientIp?: string): Promise<Response> {
    const signal = AbortSignal.any([request.signal, AbortSignal.timeout(route.timeoutMs)]);
    let upstream: Response;
    try {
      upstream = await fetch(route.url + pathAndQuery, {
        method: request.method,
        headers: upstreamRequestHeaders(request.headers, incomingUrl, clientIp),
        body: request.body,
        redirect: 'manual',
        signal,
        // @ts-expect-error Bun and Node need duplex for a streamed request body; not yet in the DOM types
        duplex: 'half',
      });
    } catch (error) {
      if ((error as Error).name === 'TimeoutError') {
        throw new PlatError('UPSTREAM_TIMEOUT', `function ${route.name} took longer than its timeout of ${route.timeoutMs / 1000} s`);
      }
      throw error;
    }
    return new Response(upstream.body, {
      status: upstream.status,
      statusText: upstream.statusText,
      headers: downstreamResponseHeaders(upstream.headers),
    });
  }
}
