import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Naming rules and the identifiers derived from them (workflow ids, image names, labels). */

export const FUNCTION_NAME_PATTERN = /^[a-z][a-z0-9-]{0,46}[a-z0-9]$|^[a-z]$/;
export const VERSION_PATTERN = /^v\d{8}-\d{6}-[0-9a-f]{4}$/;

export function functionNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return 'name is required';
  if (!FUNCTION_NAME_PATTERN.test(name)) {
    return `name "${name}" is not valid: use 1-48 lowercase letters, digits and dashes, starting with a letter and not ending with a dash`;
  }
  return undefined;
}

/** A version id that sorts by time: v20261129-031500-3fa2 (UTC, plus 4 hex digits against collisions). */
export function newVersion(now: Date, randomHex4: string): string {
  const iso = now.toISOString();
  const date = iso.slice(0, 10).replaceAll('-', '');
  const time = iso.slice(11, 19).replaceAll(':', '');
  return `v${date}-${time}-${randomHex4}`;
}

export const workflowIds = {
  entity: (fn: string) => `function/${fn}`,
  deploy: (fn: string, version: string) => `deploy/${fn}/${version}`,
  /** One per function and version: concurrent first requests for a version share its start. */
  /** The first instance's start, or the start that brings the version to `slot` instances (shared by gateways that want the same). */
  coldStart: (fn: string, version: string, slot = 1) => (slot > 1 ? `coldstart/${fn}/${version}/${slot}` : `coldstart/${fn}/${version}`),
  /** The registry's garbage collection: a Temporal Schedule (and its runs) per platform (task queue). */
  registryGc: (taskQueue: string) => `registry-gc/${taskQueue}`,
  /** An async call of a function (see CALL_ID_PATTERN). */
  call: (callId: string) => `call/${functionOfCall(callId)}/${callId}`,
};

/**
 * An async call's id: `<function>.<32 hex digits>`, and for a scheduled run the time the schedule
 * added, `-2026-12-03T10:00:00Z`. The function's name is in it (a name has no dot), so
 * `GET /calls/:id` finds the call's workflow without a search.
 */
export const CALL_ID_PATTERN = /^(?:[a-z][a-z0-9-]{0,46}[a-z0-9]|[a-z])\.[0-9a-f]{32}(?:-\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)?$/;

/** Whether a call was started by a schedule (its id carries the run's time). */
export function isScheduledCall(callId: string): boolean {
  return /-\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/.test(callId);
}

/** The function an async call belongs to. */
export function functionOfCall(callId: string): string {
  return callId.slice(0, callId.lastIndexOf('.'));
}

/** The registry repository (path part) of a function's images and uploaded sources. */
export function repositoryPath(fn: string): string {
  return `plat/fn-${fn}`;
}

/** The image repository as Docker names it, e.g. localhost:5001/plat/fn-hello */
export function imageRepository(registry: string, fn: string): string {
  return `${registry}/${repositoryPath(fn)}`;
}

export const LABELS = {
  managed: 'dev.plat.managed',
  function: 'dev.plat.function',
  version: 'dev.plat.version',
  /** The container's instance id (see Instance.instanceId). */
  instance: 'dev.plat.instance',
  /**
   * The task queue of the platform that made the container: a worker watches, reports and reaps
   * only its own platform's containers, so several platforms (say, a test run's) share one engine.
   */
  queue: 'dev.plat.queue',
} as const;

/**
 * The instance check (see Instance.instanceId): the gateway names the instance a request is for in
 * INSTANCE_HEADER; the runtime knows its own id from INSTANCE_ENV and answers a request for another
 * one with 421 and `REFUSED_HEADER: instance`. The runtimes' bootstraps spell these out themselves.
 */
export const INSTANCE_HEADER = 'x-plat-instance';
export const INSTANCE_ENV = 'PLAT_INSTANCE_ID';
export const REFUSED_HEADER = 'x-plat-refused';
/**
 * Sent by the platform's own checks (the worker's health and state probes): the runtime answers its
 * routes (/_/health, /_/state) only to a request that carries it, and the gateway drops every
 * inbound `x-plat-*` header, so through /function/NAME those paths are the function's own.
 */
export const PROBE_HEADER = 'x-plat-probe';
/** The platform's header prefix: only the gateway and the worker set such headers; a client's or a function's are dropped. */
export const PLATFORM_HEADER_PREFIX = 'x-plat-';

/**
 * A container's name: it follows from the function, the version and the instance id, which the
 * workflow chooses before it asks for the container, so a create that is retried (its activity
 * timed out, its worker died) finds the container the first attempt made instead of adding one.
 */
export function containerName(fn: string, version: string, instanceId: string): string {
  return `plat-${fn}-${version}-${instanceId.slice(0, 12)}`;
}

/** Search attributes on the entity and deploy workflows; scripts/infra.sh registers them. */
export const SEARCH_ATTRIBUTES = {
  function: defineSearchAttributeKey('PlatFunction', SearchAttributeType.KEYWORD),
  version: defineSearchAttributeKey('PlatVersion', SearchAttributeType.KEYWORD),
  runtime: defineSearchAttributeKey('PlatRuntime', SearchAttributeType.KEYWORD),
} as const;

/** A secret's name: also its file's name under /var/plat/secrets in the container. */
export const SECRET_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export function secretNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || !SECRET_NAME_PATTERN.test(name)) {
    return `secret name ${JSON.stringify(name)} is not valid: use 1-63 lowercase letters, digits, dots, dashes and underscores, starting with a letter or digit`;
  }
  return undefined;
}
