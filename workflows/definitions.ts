/**
 * The names clients use to reach the workflows: workflow types, queries, updates and signals.
 * Free of workflow code, so the gateway and activities import it without the workflow sandbox.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type {
  CallState,
  FunctionState,
  FunctionVersion,
  Instance,
  InstanceOutcome,
  InvokeKey,
  RegisterOutcome,
  RollbackOutcome,
  StepProgress,
} from '../lib/types';

export const WORKFLOW_TYPES = {
  deploy: 'deployFunction',
  entity: 'functionEntity',
  coldStart: 'coldStart',
  registryGc: 'collectRegistryGarbage',
  call: 'callFunction',
} as const;

/** An async call's state, open or ended. */
export const callQuery = defineQuery<CallState>('call');

export interface FunctionEntityInput {
  name: string;
  /** Carried over by continue-as-new. */
  state?: FunctionState;
  /** History length at which the entity continues as new, unless the server suggests it sooner (default ENTITY_HISTORY_LIMIT). */
  historyLimit?: number;
}

/** Well under the server's own suggestion (thousands of events): a describe replays little after a worker restart. */
export const ENTITY_HISTORY_LIMIT = 2000;

export interface RegisterInput {
  version: FunctionVersion;
  /** When the deploy started (its workflow's start time, the server's clock): orders overlapping deploys. */
  requestedAt: string;
  /** How many versions the function keeps (the worker's PLAT_VERSIONS_KEPT). */
  versionsKept?: number;
}

/** A container that answered a request, and when (ISO time). */
export interface InstanceUse {
  containerId: string;
  at: string;
}

export const describeQuery = defineQuery<FunctionState>('describe');
/** Sent with updateId = the version id: a retried registration is answered, not redone. */
export const registerVersionUpdate = defineUpdate<RegisterOutcome, [RegisterInput]>('registerVersion');
export const removeUpdate = defineUpdate<{ removedContainers: number }, []>('remove');
/** Makes a kept version the active one (rollback); without a version, the one active before. */
export const activateVersionUpdate = defineUpdate<RollbackOutcome, [{ version?: string }]>('activateVersion');
/** Sent by a cold start with updateId = the instance id and the cold start's run. */
export const instanceStartedUpdate = defineUpdate<InstanceOutcome, [{ instance: Instance; preview: boolean }]>('instanceStarted');
/**
 * A scale-out's hold on a place before it starts a container (updateId `reserve/<instance id>`):
 * refused (`full`) when the version runs or is starting `scale.max` instances already.
 */
export const reserveInstanceUpdate = defineUpdate<InstanceOutcome, [{ version: string; instanceId: string; preview: boolean }]>(
  'reserveInstance',
);
/** The gateways' batched report of which instances served requests: the idle rules count from it. */
/** Adds an invoke key (its hash: the key never reaches Temporal); the update id is `key/<id>`. */
export const addKeyUpdate = defineUpdate<InvokeKey, [InvokeKey]>('addKey');
/** Revokes an invoke key by id; false when the function has no such key. */
export const revokeKeyUpdate = defineUpdate<boolean, [{ id: string }]>('revokeKey');
export const instancesUsedSignal = defineSignal<[InstanceUse[]]>('instancesUsed');
/** A paused instance that a request resumed (the worker unpaused it for a gateway). */
export const instanceResumedSignal = defineSignal<[InstanceUse]>('instanceResumed');
/**
 * A container that died, was removed, or stopped answering: sent by the worker's engine watch and by
 * gateways. A gateway says why it stopped routing to it (the failure): it may still run, and is stopped.
 */
export const instanceGoneSignal = defineSignal<[string, string?]>('instanceGone');

export const progressQuery = defineQuery<StepProgress[]>('progress');
