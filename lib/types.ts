import type { InstanceUsage } from './events';
import type { FunctionConfig } from './function-config';

/** One built, pushed version of a function. */
export interface FunctionVersion {
  version: string;
  /** The image by digest, e.g. localhost:5001/plat/fn-hello@sha256:… */
  image: string;
  digest: string;
  config: FunctionConfig;
  sourceDigest: string;
  deployedAt: string;
}

/** A running container serving a function. */
export interface Instance {
  containerId: string;
  /**
   * A random id the container gets when it is created. The gateway sends it with every request over
   * TCP (`x-plat-instance`) and the runtime refuses a request that names another instance (421), so a
   * route can never reach a different container that took over the same bridge address. (On the
   * instance's socket, whose path holds the id, no other container can answer.)
   */
  instanceId: string;
  version: string;
  /** Where the gateway proxies to: the container on the functions' bridge, e.g. http://172.19.0.2:8080 */
  url: string;
  /**
   * The instance's Unix socket on the host, when its runtime serves one (lib/sockets.ts): the gateways
   * send its requests there instead of `url` (the platform's probes still go to `url`).
   */
  socket?: string;
  startedAt: string;
  /** Paused by the idle rules (memory kept, no CPU): a request resumes it. */
  state: 'running' | 'paused';
  /** The last request the gateways reported, or the start (ISO time): the idle rules count from it. */
  lastUsedAt: string;
  /** What it uses now: only in `GET /functions/:name?usage=true` (read from the engine then). */
  usage?: InstanceUsage;
  /** The answering gateway's requests on it now: only in `GET /functions/:name` (each gateway counts its own). */
  inFlight?: number;
}

/** Containers a switch replaced, stopped once the drain ends. */
export interface Retirement {
  containerIds: string[];
  /** When the drain ends (ISO time). */
  at: string;
  /** Why they stop, for the function's log: by default, the version that replaced theirs. */
  reason?: string;
}

/** What the function entity workflow holds and answers to `describe`. */
export interface FunctionState {
  name: string;
  createdAt: string;
  activeVersion?: string;
  /**
   * When the deploy that made activeVersion active started. Overlapping deploys are ordered by it:
   * the one that started last wins, and one that started earlier but registers later is recorded,
   * not activated.
   */
  activatedAt?: string;
  /** The version that was active before the current one: what `plat rollback` goes back to. */
  previousVersion?: string;
  /** Oldest first, at most `versionsKept` (plus the active and the previous one, always kept). */
  versions: FunctionVersion[];
  versionsKept?: number;
  instances: Instance[];
  /** Replaced containers still draining; carried over by continue-as-new. */
  retiring: Retirement[];
  /** Invoke keys, by their SHA-256 only (the key itself is shown once, at creation, and kept nowhere). */
  keys?: InvokeKey[];
  /** Set by removal, just before the entity workflow completes. */
  removed?: boolean;
}

/** What the entity answers a registration: whether the version now serves (see FunctionState.activatedAt). */
export interface RegisterOutcome {
  activated: boolean;
  activeVersion: string;
}

/** What a rollback answers. */
export interface RollbackOutcome {
  activeVersion: string;
  previousVersion?: string;
}

/** One line of `plat versions` / `GET /functions/:name/versions`, newest first. */
export interface VersionSummary {
  version: string;
  deployedAt: string;
  digest: string;
  image: string;
  runtime: string;
  active: boolean;
}

/** What the entity answers a started instance: it serves, or its container was removed. */
export type InstanceOutcome =
  | { accepted: true }
  /** `full`: the version runs `scale.max` instances already (another gateway started them). */
  | { accepted: false; reason: 'removed' | 'superseded' | 'full'; activeVersion?: string };

export const DEPLOY_STEPS = ['package', 'build', 'push', 'register'] as const;
export type DeployStep = (typeof DEPLOY_STEPS)[number];

/** What a deploy step shows while the Docker engine is away. */
export const WAITING_FOR_ENGINE = 'waiting for the Docker engine';

export interface StepProgress {
  step: DeployStep;
  status: 'pending' | 'running' | 'done' | 'failed';
  detail?: string;
  startedAt?: string;
  finishedAt?: string;
}

export interface DeployInput {
  name: string;
  version: string;
  config: FunctionConfig;
  sourceDigest: string;
  sourceSize: number;
}

export interface DeployResult {
  name: string;
  version: string;
  image: string;
  digest: string;
  /** False when a deploy that started later is already active: this version is kept, not served. */
  activated: boolean;
  /** The version that serves once the deploy ends. */
  activeVersion: string;
}

export interface ColdStartInput {
  name: string;
  version: FunctionVersion;
  /** A start for the version's preview URL (`NAME@VERSION`), which may be any kept version, not only the active one. */
  preview?: boolean;
  /**
   * The number of instances this start brings the version to, as the gateway saw it: 1 (or absent) is
   * the first, which may take over a running container the entity does not list; more is a scale-out,
   * always a new container.
   */
  slot?: number;
  /**
   * Containers the gateway stopped routing to (they failed a request: an answer that was not HTTP, say)
   * and may still run until their entity stops them: never taken over.
   */
  avoid?: string[];
}

/** Events the gateway streams while a deploy runs (`POST /functions?wait=true`), one JSON per line. */
export type DeployEvent =
  | { type: 'accepted'; name: string; version: string; workflowId: string }
  | { type: 'step'; step: DeployStep; status: StepProgress['status']; detail?: string }
  | { type: 'notice'; message: string }
  | { type: 'done'; result: DeployResult }
  | { type: 'error'; error: { code: string; message: string } };

/** One line of `GET /functions`. */
export interface FunctionSummary {
  name: string;
  version?: string;
  runtime?: string;
  updatedAt?: string;
}

/** A deploy the gateway accepted: `POST /functions` answers it, `?wait=true` streams its events. */
export interface Deployment {
  name: string;
  version: string;
  workflowId: string;
}

/** An invoke key as the function's entity keeps it: an id to list and revoke it by, and the key's hash. */
export interface InvokeKey {
  id: string;
  /** SHA-256 of the key, hex. */
  hash: string;
  createdAt: string;
}

/** A blob in the function's registry repository (an async call's request or answer body). */
export interface BlobRef {
  digest: string;
  size: number;
}

/** An async call as accepted: what the call workflow sends, on every attempt. */
export interface CallInput {
  callId: string;
  name: string;
  method: string;
  /** Path and query, as the function sees them. */
  path: string;
  /** The request's headers as the function gets them (no token, no hop-by-hop ones). */
  headers: Array<[string, string]>;
  body?: BlobRef;
  /** A schedule's body (function.json `schedules[].body`, 16 KiB at most), sent as it is. */
  inlineBody?: string;
  /** Where the result is POSTed when the call ends. */
  callbackUrl?: string;
  trigger: 'api' | 'schedule';
  /** The function's async rules when the call was accepted, in milliseconds. */
  retry: { retries: number; backoffMs: number; maxBackoffMs: number };
  acceptedAt: string;
}

export interface CallAttempt {
  attempt: number;
  startedAt: string;
  durationMs: number;
  /** The function's (or the platform's) status code; absent when no answer came. */
  status?: number;
  /** Why the attempt failed, when it did. */
  error?: string;
}

/** The answer a call ended with. */
export interface CallResult {
  status: number;
  headers: Array<[string, string]>;
  body?: BlobRef;
}

export type CallStatus = 'queued' | 'running' | 'succeeded' | 'failed';

/** What `GET /calls/:id` shows: the call's state, from its workflow. */
export interface CallState {
  callId: string;
  name: string;
  status: CallStatus;
  trigger: 'api' | 'schedule';
  acceptedAt: string;
  attempts: CallAttempt[];
  result?: CallResult;
  /** Whether the result reached the callback URL, when there is one. */
  callback?: 'pending' | 'delivered' | 'failed';
  endedAt?: string;
}
